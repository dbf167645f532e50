"""Every route of the desk, for ``mailer.web.app.create_app``."""

from __future__ import annotations

from mailer.web.desk import home, signin

routes = [*signin.routes, *home.routes]
