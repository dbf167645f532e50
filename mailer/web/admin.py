"""The organisers' report pages at ``/admin/``, behind HTTP Basic auth.

- ``/admin/``: the list over time (members by region, joined and lost) and every issue's
  unsubscribes and bounces, with links to each campaign;
- ``/admin/campaigns/{slug}``: one campaign's report, the same page as
  ``mailer campaigns report SLUG --html FILE``.

The password is ``MAILER_ADMIN_PASSWORD`` (``Settings.admin_password``); any user name is accepted.
Without a password set, the pages are closed (403). Pages are plain HTML with inline SVG charts: no
JavaScript, no cookies; they are never cached.

Guessing is slowed per address (an IPv4 address, or an IPv6 /64), in the database
(``mailer.limits``, ``login_attempts``) so that it holds across processes and restarts: after
``Limits.admin_failures`` wrong passwords, each further one locks the address out for twice as long
as the last (1 s, 2 s, 4 s, … up to ``Limits.admin_lock_max``), and while it is locked out every
request gets 429 with Retry-After, the right password included. A right password clears the count;
so does a day without failures.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mailer import reports as report
from mailer.errors import UnknownName
from mailer.limits import has_failures, locked_for, record_failure, record_success
from mailer.web.context import client_ip, web
from mailer.web.pages import PAGE_HEADERS
from mailer.web.ratelimit import network_of

REALM = 'Basic realm="mailer reports", charset="UTF-8"'


def _password_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None


def attempt_key(host: str) -> str:
    """What failed log-ins are counted by: the IPv4 address, or the IPv6 /64 (one customer's)."""
    try:
        if ipaddress.ip_address(host).version == 4:
            return host
    except ValueError:
        return host[:64] or "unknown"
    return network_of(host)


async def check(request: Request) -> Response | None:
    """None if the request may see the admin pages, else the response refusing it."""
    w = web(request)
    expected = w.settings.admin_password
    if not expected:
        return w.pages.message(
            request,
            "Reports are closed",
            "The report pages need a password: set MAILER_ADMIN_PASSWORD where the web app runs.",
            status=403,
        )
    key = attempt_key(client_ip(request))
    now = w.clock()
    wait = await w.read(lambda s: locked_for(s, key, now))
    if wait is not None:
        return _too_many(request, wait)
    given = _password_of(request)
    if given is None:  # no password yet: ask for one (not a failure)
        return _ask(request)
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        await w.write(lambda s: record_failure(s, key, now, w.limits.admin_lockout))
        return _ask(request)
    if await w.read(lambda s: has_failures(s, key)):
        await w.write(lambda s: record_success(s, key))
    return None


def _ask(request: Request) -> Response:
    return web(request).pages.message(
        request,
        "Password needed",
        "The report pages need the organisers' password.",
        status=401,
        headers={"WWW-Authenticate": REALM},
    )


def _too_many(request: Request, wait: float) -> Response:
    return web(request).pages.message(
        request,
        "Too many wrong passwords",
        "There have been too many wrong passwords from your connection. Please wait and try again.",
        status=429,
        headers={"Retry-After": str(int(wait + 0.999))},
    )


def _html(body: str) -> HTMLResponse:
    return HTMLResponse(body, headers=dict(PAGE_HEADERS))


async def index(request: Request) -> Response:
    refused = await check(request)
    if refused is not None:
        return refused
    w = web(request)
    page = await w.read(lambda s: report.page_data(s, w.shape, w.settings.organisation, now=w.clock()))
    nav = [(f"/admin/campaigns/{i.slug}", f"{i.issue_date}: {i.title}") for i in reversed(page.issues)]
    return _html(report.render_page(w.settings, page, template="web/admin.html", nav=nav))


async def campaign(request: Request) -> Response:
    refused = await check(request)
    if refused is not None:
        return refused
    w = web(request)
    slug = request.path_params["slug"]
    try:
        page = await w.read(
            lambda s: report.page_data(s, w.shape, w.settings.organisation, slug, now=w.clock())
        )
    except UnknownName:
        return w.pages.message(
            request, "Page not found", "No campaign of that name has been sent.", status=404
        )
    return _html(
        report.render_page(w.settings, page, template="web/admin.html", nav=[("/admin/", "All reports")])
    )


routes = [
    Route("/admin/", index, methods=["GET"]),
    Route("/admin/campaigns/{slug}", campaign, methods=["GET"]),
]
