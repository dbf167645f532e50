"""What every desk page needs: who is signed in, the CSRF scope of their forms, refusals, limits.

Every request with the desk's cookie looks its session up in the database (``sessions.lookup``),
so a revoked session is refused at once. Every desk form carries a CSRF value (``mailer.web.csrf``)
whose scope is the signed-in session (``desk:<part of the session's id>``), or ``desk:anon`` before
signing in: a value from another session, or from before signing in, is refused with 403, and so
is a POST without one, whatever it asks.

A page handler says what it needs by its decorator, and gets it as arguments: ``desk_page`` (who is
signed in; nobody is sent to sign in), ``admin_page`` (an admin; others 403), ``desk_form`` and
``admin_form`` (the same for a form's POST, with its CSRF value checked and its fields read).
Every desk page and form but signing in and out (which are for nobody too: ``signin``) is
guarded by one of them, so each is checked the one way.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any, overload

from starlette.background import BackgroundTasks
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailer.audience.networks import Network, networks_of
from mailer.desk import people, sessions
from mailer.desk.notifications import Notice
from mailer.desk.people import Person
from mailer.errors import MailerError
from mailer.forms import FormRefused
from mailer.limits import Limit
from mailer.settings import Settings
from mailer.web.context import Web, web
from mailer.web.forms import read_form
from mailer.web.mail import system_mail
from mailer.web.pages import PAGE_HEADERS

log = logging.getLogger("mailer.web.desk")

ANON_SCOPE = "desk:anon"


@dataclass(frozen=True)
class DeskLimits:
    """Sign-in limits, counted in the database like sign-up's (``mailer.web.ratelimit``): link
    requests per client network (IPv4 /24, IPv6 /64; 429 beyond) and links mailed per address
    (beyond, the usual page and no mail). Tests set ``app.state.desk_limits``."""

    requests_per_client: int = 10
    client_window: float = 600.0
    links_per_address: int = 5
    address_window: float = 3600.0
    passwords_per_address: int = 10
    """Password attempts for one address in ``address_window`` (429 beyond, whoever it is)."""

    @property
    def client(self) -> Limit:
        return Limit("desk-sign-in-network", self.requests_per_client, timedelta(seconds=self.client_window))

    @property
    def passwords(self) -> Limit:
        return Limit(
            "desk-password-address", self.passwords_per_address, timedelta(seconds=self.address_window)
        )

    @property
    def address(self) -> Limit:
        return Limit("desk-sign-in-address", self.links_per_address, timedelta(seconds=self.address_window))


def limits(request: Request) -> DeskLimits:
    found = getattr(request.app.state, "desk_limits", None)
    return found if isinstance(found, DeskLimits) else DeskLimits()


@dataclass(frozen=True)
class Signed:
    """A signed-in request: the person and their session."""

    person: Person
    session: sessions.Current

    @property
    def scope(self) -> str:
        return f"desk:{self.session.short}"


def cookie_value(request: Request) -> str:
    return request.cookies.get(sessions.cookie_name(web(request).settings), "")


async def signed_in(request: Request) -> Signed | None:
    """The person signed in on this request, looked up in the database now; None if nobody is
    (no cookie, or a session unknown, revoked, expired, or of a disabled person)."""
    value = cookie_value(request)
    if not value or not sessions.well_formed(value):
        return None
    w = web(request)
    now = w.clock()

    def read(s: Any) -> Signed | None:
        current = sessions.lookup(s, value, now=now)
        if current is None:
            return None
        person = people.person(s, current.user_id)
        return None if person is None else Signed(person, current)

    found = await w.read(read)
    if found is not None and sessions.due_touch(found.session, now):
        await w.write(lambda s: sessions.touch(s, found.session.id, now=now))
    return found


def page(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    signed: Signed | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    network: Network | None = None,
) -> Response:
    """A desk page (``web/desk/<name>``) with its forms' CSRF value for ``signed``'s session,
    speaking as ``network`` (its heading and colours; the workspace's default when None)."""
    w = web(request)
    values = {"person": signed.person if signed else None, **(context or {})}
    return w.pages.page(
        request,
        f"desk/{name}",
        values,
        status=status,
        headers=headers,
        csrf_scope=signed.scope if signed else ANON_SCOPE,
        network=network,
    )


def message(
    request: Request,
    title: str,
    text: str,
    *,
    signed: Signed | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A desk page with a heading, a paragraph and, given ``link=(path, words)``, a link."""
    context = {"title": title, "text": text, **extra}
    return page(request, "message.html", context, signed=signed, status=status, headers=headers)


def redirect(path: str) -> Response:
    """303 to a path of ours (never a host)."""
    assert path.startswith("/") and not path.startswith("//")
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})


def forbidden(request: Request, signed: Signed | None) -> Response:
    return message(
        request,
        "Not allowed",
        "Your roles on the desk do not allow this. Ask an admin of your network if you need it.",
        signed=signed,
        status=403,
        link=("/desk/", "Back to your desk"),
    )


def sign_in_first(request: Request) -> Response:
    return message(
        request,
        "Please sign in",
        "You are not signed in, or your session has ended, so nothing was changed. Sign in and try again.",
        signed=None,
        status=403,
        link=("/desk/sign-in", "Sign in"),
    )


def form_expired(request: Request, signed: Signed | None) -> Response:
    return message(
        request,
        "Please try again",
        "This form had expired, so nothing was changed. Go back, reload the page and press the button again.",
        signed=signed,
        status=403,
    )


@dataclass(frozen=True)
class Posted:
    """A desk form post that passed its CSRF check: the form and who is signed in (if anyone)."""

    form: FormData
    signed: Signed | None


FormReader = Callable[[Request], Awaitable[FormData | None]]
"""Reads a form post's fields; None when the post is larger than the form may be."""


async def posted(request: Request, read: FormReader = read_form) -> Posted | Response:
    """Read a desk form post (by ``read``; ``mailer.web.forms.read_form`` unless a form is larger):
    413 when it is too large, 403 without a valid CSRF value for the signed-in session (or for
    nobody, before signing in)."""
    w = web(request)
    form = await read(request)
    signed = await signed_in(request)
    if form is None:
        return message(
            request,
            "Too much text",
            "The form was larger than it can be, so nothing was changed.",
            signed=signed,
            status=413,
        )
    if not w.csrf.check(request, form, signed.scope if signed else ANON_SCOPE):
        return form_expired(request, signed)
    return Posted(form, signed)


def not_found(request: Request, signed: Signed | None, what: str = "network") -> Response:
    """404 for a network (or form, contribution…) that the URL names and that is not there."""
    return message(request, "Page not found", f"There is no {what} of that name.", signed=signed, status=404)


class Answered(Exception):
    """A page's answer given early, from a helper (no such network: 404; not theirs: 403; an
    issue with errors: 409): raised, and returned as it is by the desk's page and form decorators,
    so a helper returns what the page needs or raises, and no caller checks which."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


Endpoint = Callable[[Request], Awaitable[Response]]
FormPage = Callable[[Request, Signed, FormRefused], Awaitable[Response]]
"""Shows a form again after ``FormRefused``: the values as posted, an error at each field."""
PageHandler = Callable[[Request, Signed], Awaitable[Response]]
FormHandler = Callable[[Request, FormData, Signed], Awaitable[Response]]


def _guard_page(handler: PageHandler, *, admin: bool) -> Endpoint:
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            return redirect("/desk/sign-in")
        if admin and not signed.person.is_admin:
            return forbidden(request, signed)
        try:
            return await handler(request, signed)
        except Answered as answer:
            return answer.response

    return endpoint


def _guard_form(
    handler: FormHandler, *, admin: bool, read: FormReader = read_form, refused: FormPage | None = None
) -> Endpoint:
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        got = await posted(request, read)
        if not isinstance(got, Posted):
            return got
        signed = got.signed
        if signed is None:
            return sign_in_first(request)
        if admin and not signed.person.is_admin:
            return forbidden(request, signed)
        try:
            return await handler(request, got.form, signed)
        except Answered as answer:
            return answer.response
        except FormRefused as refusal:
            if refused is None:
                raise
            return await refused(request, signed, refusal)

    return endpoint


def desk_page(handler: PageHandler) -> Endpoint:
    """A desk page for someone signed in: the handler gets who it is; anyone else is sent to
    ``/desk/sign-in`` (a page, unlike a form, may send them there and lose nothing)."""
    return _guard_page(handler, admin=False)


def admin_page(handler: PageHandler) -> Endpoint:
    """A desk page for an admin (of every network, or of one): as ``desk_page``, and 403 for
    someone signed in who is no admin."""
    return _guard_page(handler, admin=True)


@overload
def desk_form(handler: FormHandler) -> Endpoint: ...


@overload
def desk_form(
    *, read: FormReader = read_form, refused: FormPage | None = None
) -> Callable[[FormHandler], Endpoint]: ...


def desk_form(
    handler: FormHandler | None = None, *, read: FormReader = read_form, refused: FormPage | None = None
) -> Endpoint | Callable[[FormHandler], Endpoint]:
    """A desk form's POST: the handler gets the form and who posted it. A CSRF value not of the
    poster's session gets 403 (``form_expired``), and a post by nobody 403 (``sign_in_first``):
    in both cases nothing was changed, which the page says. ``@desk_form(read=…)`` reads a form
    larger than ``read_form`` takes (an issue's: ``compose``). A handler that raises
    ``mailer.forms.FormRefused`` gets its form shown again by ``refused`` (status 400), the one
    place a refused form is rendered."""
    if handler is None:
        return lambda given: _guard_form(given, admin=False, read=read, refused=refused)
    return _guard_form(handler, admin=False, read=read, refused=refused)


@overload
def admin_form(handler: FormHandler) -> Endpoint: ...


@overload
def admin_form(*, refused: FormPage) -> Callable[[FormHandler], Endpoint]: ...


def admin_form(
    handler: FormHandler | None = None, *, refused: FormPage | None = None
) -> Endpoint | Callable[[FormHandler], Endpoint]:
    """A desk form's POST for an admin: as ``desk_form``, and 403 for someone who is no admin."""
    if handler is None:
        return lambda given: _guard_form(given, admin=True, refused=refused)
    return _guard_form(handler, admin=True)


def network_slugs(w: Web) -> dict[str, str]:
    """Each network's slug in URLs → its key in roles ("" for the one network of a workspace
    without ``lists/networks.toml``)."""
    if not w.shape.networks:
        return {networks_of(w.shape, w.settings)[0].slug: ""}
    return {slug: slug for slug in w.shape.networks}


def slug_of(w: Web, key: str) -> str:
    """The URL slug of the network a role's key names."""
    return networks_of(w.shape, w.settings)[0].slug if not w.shape.networks else key


def no_store(response: Response) -> Response:
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def set_cookie(response: Response, settings: Settings, value: str) -> None:
    """The session's cookie (``sessions.cookie_name``): HttpOnly, SameSite=Lax, Secure on https."""
    secure = settings.base_url.startswith("https://")
    response.set_cookie(
        sessions.cookie_name(settings),
        value,
        max_age=int(sessions.MAX_AGE.total_seconds()),
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def clear_cookie(response: Response, settings: Settings) -> None:
    secure = settings.base_url.startswith("https://")
    response.delete_cookie(
        sessions.cookie_name(settings), path="/", secure=secure, httponly=True, samesite="lax"
    )


def notice_mail(w: Web, notice: Notice) -> EmailMessage:
    """The mail of a desk ``Notice`` (``mailer.desk.notifications``), built as the web app's
    system mails are (``mailer.web.mail.system_mail``)."""
    return system_mail(
        w.pages, w.settings, notice.template, to=notice.to, network=notice.network, **notice.context
    )


def send_notices(request: Request, response: Response, notices: Iterable[Notice | None]) -> Response:
    """Mail ``notices`` after ``response`` has gone (a failure is logged, never shown: the page's
    work is done either way)."""
    w = web(request)
    mails = [notice_mail(w, n) for n in notices if n is not None]
    if not mails:
        return response

    async def send_all() -> None:
        for mail in mails:
            try:
                await w.send_mail(mail)
            except MailerError as exc:
                log.error("a desk notice to %s was not mailed: %s", mail["To"], exc.message)

    previous = response.background
    tasks = BackgroundTasks()
    if previous is not None:
        tasks.add_task(previous)
    tasks.add_task(send_all)
    response.background = tasks
    return response
