"""The web app: ``create_app(settings)`` builds the Starlette (ASGI) application.

Routes, by concern:

- ``/u/{token}``: unsubscribe (GET/HEAD page; POST one-click or button; POST ``/preferences``
  mails a preferences link)                                                   ``unsubscribe.py``
- ``/p/{token}``, ``/p/{token}/leave``, ``/p/{token}/renew``: preferences     ``preferences.py``
- ``/subscribe[?network=SLUG]``, ``/subscribe/embed``, ``/confirm/{token}``: sign-up (and the
  welcome mail, ``welcome.py``)                                                ``signup.py``
- ``/archive/[?network=SLUG]``, ``/archive/feed.atom[?network=SLUG]``, ``/archive/{slug}/[{key}]``,
  ``/files/…``                                                                 ``archive.py``
- ``/calendar/``, ``/calendar/{region}.ics``, ``/calendar/all.ics``, ``/calendar/event/{uid}.ics``
                                                                               ``calendars.py``
- ``/rsvp/{uid}/{token}``: a member's answer to an event; ``/events/{uid}`` and
  ``/events/{uid}/confirm/{token}``: the public event page, confirmed by mail   ``events.py``
- ``/admin/``, ``/admin/campaigns/{slug}``: reports, HTTP Basic (MAILER_ADMIN_PASSWORD)   ``admin.py``
- ``/desk/…``: the editorial desk (sign-in by mailed link, people and roles)    ``desk/``
- ``/healthz``, ``/metrics``: for a load balancer and Prometheus                 ``health.py``

``mailer serve`` runs it in one or several processes through ``factory()``, which reads the
workspace named by ``MAILER_WORKSPACE`` (docs/decisions.md, Serving). Past ``web_max_requests``
requests at once a process answers 503 with Retry-After (``health.Guard``).

A bad, forged or truncated token gets the same plain 400 page, whatever was wrong with it; a
genuine preferences link past its age gets a page offering to mail a fresh one (410).

Whatever arrives, the app answers with a page, never a crash (``tests/hostile/test_http.py`` drives
every route with hostile values): only the hosts of ``base_url`` (and ``web_hosts``; localhost when
``base_url`` is local) are served, so no page or redirect ever names a host an attacker sent; a
path or query holding control characters (NUL, CR, LF) gets 400 before any route sees it; a busy
or unreachable database gets 503 with Retry-After. No page shows an error's details.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mailer import tokens
from mailer.audience.shape import Shape, load_shape
from mailer.db import Database, DriverError, open_database, writer_database
from mailer.errors import ConfigError, TokenError
from mailer.settings import Settings, load
from mailer.web import admin, archive, assets, calendars, events, health, preferences, signup, unsubscribe
from mailer.web.context import Limits, SendMail, Web, web
from mailer.web.csrf import Csrf
from mailer.web.desk.routes import routes as desk_routes
from mailer.web.logs import redact, secrets_of
from mailer.web.mail import relay_sender
from mailer.web.pages import Pages

log = logging.getLogger("mailer.web")

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
MAX_URL = 4096


async def home(request: Request) -> Response:
    """The front page: with several networks, each with its sign-up and archive links."""
    w = web(request)
    return w.pages.page(request, "home.html", {"networks": list(w.shape.networks.values())})


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


async def _database_error(request: Request, exc: Exception) -> Response:
    """A busy or unreachable database (or one refusing a value): try again later, nothing shown."""
    w = web(request)
    detail = redact(f"{request.method} {request.url.path}: {exc}", secrets_of(w.settings))
    log.error("database error on %s", detail)
    return w.pages.message(
        request,
        "Please try again later",
        "We cannot answer just now. Please try again in a few minutes.",
        status=503,
        headers={"Retry-After": "60"},
    )


async def _crash(request: Request, exc: Exception) -> Response:
    """Anything else: a plain page that reveals nothing (the server logs the error, redacted)."""
    return web(request).pages.message(request, "Something went wrong", "Please try again.", status=500)


def allowed_hosts(settings: Settings) -> list[str]:
    """The Host names the app answers to: base_url's, ``web_hosts``, and localhost when base_url
    is local."""
    base = (urlsplit(settings.base_url).hostname or "").lower()
    base = f"[{base}]" if ":" in base else base  # an IPv6 address, as a Host header writes it
    hosts = [base] if base else []
    for host in (h.strip().lower() for h in settings.web_hosts.split(",")):
        if host and "*" not in host[1:] and (host == "*" or not host.startswith("*") or host[:2] == "*."):
            hosts.append(host)
    if not base or base in LOCAL_HOSTS:
        hosts += list(LOCAL_HOSTS)
    return list(dict.fromkeys(hosts))


class RefuseControlCharacters:
    """400 for a request whose path or query holds a control character (NUL, CR, LF, …) or is
    over ``MAX_URL`` long: no route, database or file name ever sees one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = str(scope.get("path", ""))
            query = unquote(bytes(scope.get("query_string", b"")).decode("latin-1"))
            if len(path) + len(query) > MAX_URL or any(c < " " or c == "\x7f" for c in path + query):
                response = PlainTextResponse("Bad request: this address is not valid.", status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
    if behind), ``send_mail`` to sending through ``settings.relays``, ``limits`` to
    ``Limits.from_settings(settings)`` and ``clock`` (the current time, aware) to the system clock;
    tests pass their own.
    """
    if not settings.secrets:
        raise ConfigError(
            "the web app needs the key for signed links",
            field="secret",
            hint="set MAILER_SECRET or create .mailer-secret (mailer serve creates one)",
        )
    shape = shape if shape is not None else load_shape(settings.path("lists"))
    db = database if database is not None else open_database(settings)
    writer = (
        writer_database(settings.sqlalchemy_url, settings.address_keys)
        if db.engine.dialect.name == "sqlite"
        else db
    )
    csrf = Csrf(settings.secrets, secure=settings.base_url.startswith("https://"))
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    state = Web(
        settings=settings,
        shape=shape,
        db=db,
        writer=writer,
        pages=Pages(settings, csrf, list(shape.networks.values())),
        csrf=csrf,
        limits=limits or Limits.from_settings(settings),
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

    metrics = health.Metrics(db, settings)
    routes = [
        Route("/", home, methods=["GET"]),
        *health.routes,
        *unsubscribe.routes,
        *preferences.routes,
        *signup.routes,
        *archive.routes,
        *calendars.routes,
        *events.routes,
        *admin.routes,
        *desk_routes,
        assets.route,
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(health.Guard, metrics=metrics, limit=settings.web_max_requests),
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings), www_redirect=False),
            Middleware(RefuseControlCharacters),
        ],
        exception_handlers={
            tokens.ExpiredToken: preferences.expired_link,
            TokenError: _bad_token,
            HTTPException: _http_error,
            DriverError: _database_error,  # busy, unreachable, refusing a value (mailer.db)
            Exception: _crash,
        },
        lifespan=lifespan,
    )
    app.state.web = state
    app.state.metrics = metrics
    return app


def factory() -> Starlette:
    """The app of the workspace named by ``MAILER_WORKSPACE`` (or the current folder): what each
    web process of ``mailer serve`` runs (uvicorn's ``factory=True``)."""
    return create_app(load())
