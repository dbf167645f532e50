"""Every route of the desk, for ``mailer.web.app.create_app``."""

from __future__ import annotations

from mailer.web.desk import compose, contributions, editing, events, home, previews, sendpage, signin

routes = [
    *signin.routes,
    *home.routes,
    *contributions.routes,
    *compose.routes,
    *previews.routes,
    *editing.routes,
    *sendpage.routes,
    *events.routes,
]
