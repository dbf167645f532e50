"""The members' side on the web: unsubscribe, preferences, sign-up, the archive and calendar feeds.

``create_app(settings)`` builds the Starlette (ASGI) app that ``mailer serve`` runs with uvicorn.
"""

from __future__ import annotations

from mailer.web.app import create_app

__all__ = ["create_app"]
