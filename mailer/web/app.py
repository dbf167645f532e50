"""The web app: ``create_app(settings)`` builds the Starlette (ASGI) application.

Routes, by concern:

- ``/u/{token}``: unsubscribe (GET/HEAD page; POST one-click or button)       ``unsubscribe.py``
- ``/p/{token}``, ``/p/{token}/leave``: preferences                           ``preferences.py``
- ``/subscribe``, ``/subscribe/embed``, ``/confirm/{token}``: sign-up          ``signup.py``
- ``/archive/``, ``/archive/feed.atom``, ``/archive/{slug}/[{key}]``, ``/files/…``  ``archive.py``
- ``/calendar/``, ``/calendar/{region}.ics``, ``/calendar/all.ics``, ``/calendar/event/{uid}.ics``
                                                                               ``calendars.py``
- ``/admin/``, ``/admin/campaigns/{slug}``: reports, HTTP Basic (MAILER_ADMIN_PASSWORD)   ``admin.py``

A bad, forged, truncated or expired token gets the same plain 400 page, whatever was wrong with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import tokens
from mailer.audience.shape import Shape, load_shape
from mailer.db import Database, open_database
from mailer.errors import ConfigError, TokenError
from mailer.settings import Settings
from mailer.web import admin, archive, calendars, preferences, signup, unsubscribe
from mailer.web.context import Limits, SendMail, Web, web
from mailer.web.csrf import Csrf
from mailer.web.mail import relay_sender
from mailer.web.pages import Pages
from mailer.web.writes import writer_database


async def home(request: Request) -> Response:
    return web(request).pages.page(request, "home.html")


async def _bad_token(request: Request, exc: Exception) -> Response:
    return web(request).pages.message(request, "This link does not work", tokens.PUBLIC_MESSAGE, status=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    w = web(request)
    if exc.status_code == 404:
        return w.pages.message(request, "Page not found", "There is no page at this address.", status=404)
    if exc.status_code == 405:
        return w.pages.message(
            request,
            "Not allowed",
            "This page cannot be used that way.",
            status=405,
            headers=dict(exc.headers or {}),
        )
    return w.pages.message(request, "Something went wrong", "Please try again.", status=exc.status_code)


def create_app(
    settings: Settings,
    *,
    shape: Shape | None = None,
    database: Database | None = None,
    send_mail: SendMail | None = None,
    limits: Limits | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """The members' web app for ``settings``' workspace.

    ``shape`` defaults to the workspace's lists, ``database`` to its database (opened, and migrated
    if behind), ``send_mail`` to sending through ``settings.relays``, ``limits`` to ``Limits()`` and
    ``clock`` (the current time, aware) to the system clock; tests pass their own.
    """
    if not settings.secrets:
        raise ConfigError(
            "the web app needs the key for signed links",
            field="secret",
            hint="set MAILER_SECRET or create .mailer-secret (mailer serve creates one)",
        )
    shape = shape if shape is not None else load_shape(settings.path("lists"))
    db = database if database is not None else open_database(settings)
    writer = writer_database(settings.sqlalchemy_url) if db.engine.dialect.name == "sqlite" else db
    csrf = Csrf(settings.secrets, secure=settings.base_url.startswith("https://"))
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    state = Web(
        settings=settings,
        shape=shape,
        db=db,
        writer=writer,
        pages=Pages(settings, csrf),
        csrf=csrf,
        limits=limits or Limits(),
        send_mail=send_mail or relay_sender(settings),
        **extra,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if writer is not db:
            writer.dispose()
        if database is None:
            db.dispose()

    routes = [
        Route("/", home, methods=["GET"]),
        *unsubscribe.routes,
        *preferences.routes,
        *signup.routes,
        *archive.routes,
        *calendars.routes,
        *admin.routes,
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={TokenError: _bad_token, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.web = state
    return app
