"""Signing in to the desk by a one-time link, and signing out.

1. ``GET /desk/sign-in``: a form asking for an email address.
2. ``POST /desk/sign-in`` (CSRF): for a person on the desk, a one-time link is mailed through the
   web app's system mail (``mailer.web.mail``), after the page has been sent; the page says the
   same whatever the address ("if you have an account, a link is on its way"), so it never tells a
   stranger who is on the desk. Limited per client network (429 beyond) and per address (beyond,
   the usual page and no mail), counted in the database (``mailer.web.ratelimit``).
3. ``GET /desk/sign-in/{token}``: a page with a "Sign in" button; opening the link changes nothing
   (mail scanners fetch links).
4. ``POST /desk/sign-in/{token}`` (CSRF): uses the link up, starts a session, sets the cookie, and
   sends the browser to ``/desk/``. A used, expired, unknown or malformed link gets the same 400
   page, which never shows the token.
5. ``POST /desk/sign-out`` (CSRF): ends this session and clears the cookie.

Optionally, a password (``passwords``, Argon2id): given on the sign-in form with the address, it
signs in at once (limited per address as well; a wrong password, an address without one and an
unknown address get the same answer); ``POST /desk/password`` (``common.desk_form``: signed in,
CSRF) sets or removes one. The other forms here are for nobody too, so they read their post with
``common.posted`` themselves.
"""

from __future__ import annotations

from email.message import EmailMessage

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.audience.addresses import normalise
from mailer.desk import audit, notifications, passwords, sessions
from mailer.errors import InvalidInput, MailerError
from mailer.limits import hashed_key
from mailer.web.context import client_network, web
from mailer.web.desk.common import (
    Posted,
    Signed,
    clear_cookie,
    cookie_value,
    desk_form,
    limits,
    log,
    message,
    notice_mail,
    page,
    posted,
    redirect,
    set_cookie,
    signed_in,
)
from mailer.web.forms import text

LINK_MINUTES = notifications.LINK_MINUTES


async def sign_in_page(request: Request) -> Response:
    if await signed_in(request) is not None:
        return redirect("/desk/")
    notice = "You are signed out." if "signed-out" in request.query_params else ""
    return page(
        request, "sign_in.html", {"values": {"email": ""}, "errors": {}, "notice": notice}, signed=None
    )


def _check_mail(request: Request) -> Response:
    return page(request, "check_mail.html", {"minutes": LINK_MINUTES}, signed=None)


async def sign_in(request: Request) -> Response:
    w = web(request)
    got = await posted(request)
    if not isinstance(got, Posted):
        return got
    if got.signed is not None:
        return redirect("/desk/")
    wait = await w.hit(limits(request).client, client_network(request))
    if wait is not None:
        return message(
            request,
            "Too many sign-in requests",
            "There have been too many sign-in requests from your connection. Please try again later.",
            signed=None,
            status=429,
            headers={"Retry-After": str(int(wait) + 1)},
        )
    typed = text(got.form, "email", 320)
    try:
        address = normalise(typed)
    except InvalidInput:
        return page(
            request,
            "sign_in.html",
            {
                "values": {"email": typed},
                "errors": {"email": "Enter your email address, like name@example.org."},
                "notice": "",
            },
            signed=None,
            status=400,
        )
    password = _password(got.form)
    if password:
        return await _with_password(request, address, password)
    if await w.hit(limits(request).address, hashed_key("desk-address", address)) is not None:
        return _check_mail(request)  # enough links to that address for now; say nothing more
    now = w.clock()

    token = await w.write(lambda s: sessions.mail_link(s, address, now=now))
    response = _check_mail(request)
    if token is not None:
        mail = notice_mail(w, notifications.sign_in_link(w.settings, address, token))
        response.background = BackgroundTask(_send, request, mail)
    return response


def _password(form: FormData, name: str = "password") -> str:
    """A password field as typed (not stripped: its spaces are part of it), cut to a bound."""
    value = form.get(name)
    return value[: passwords.MAX_LENGTH + 1] if isinstance(value, str) else ""


async def _with_password(request: Request, address: str, password: str) -> Response:
    """Sign in with a password: limited per address too (429 beyond, whoever the address is);
    a wrong password, an address without one and an unknown address get the same answer."""
    w = web(request)
    wait = await w.hit(limits(request).passwords, hashed_key("desk-password", address))
    if wait is not None:
        return message(
            request,
            "Too many sign-in attempts",
            "There have been too many attempts to sign in with a password for this address. Please "
            "wait, or leave the password empty to get a link by email.",
            signed=None,
            status=429,
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user_id, digest = await w.read(lambda s: passwords.stored(s, address))
    signed_as = await run_in_threadpool(passwords.verify, user_id, digest, password)
    now = w.clock()
    if signed_as is None:
        if user_id is not None:
            await w.write(
                lambda s: audit.record(
                    s, "sign-in.refused", by=None, object=address, detail="wrong password", now=now
                )
            )
        return page(
            request,
            "sign_in.html",
            {
                "values": {"email": address},
                "errors": {
                    "password": "That email address and password do not match. Leave the password "
                    "empty to get a link by email instead."
                },
                "notice": "",
            },
            signed=None,
            status=400,
        )
    agent = request.headers.get("user-agent", "")

    value = await w.write(
        lambda s: sessions.start_with_password(s, signed_as, address, now=now, user_agent=agent)
    )
    response = redirect("/desk/")
    set_cookie(response, w.settings, value)
    return response


@desk_form
async def set_password(request: Request, form: FormData, signed: Signed) -> Response:
    """POST /desk/password: set (twice the same) or remove the signed-in person's password."""
    w = web(request)
    now = w.clock()
    if text(form, "action", 20) == "remove":
        await w.write(lambda s: passwords.clear_password(s, signed.person.id, now=now))
        return redirect("/desk/?done=password-removed")
    new, again = _password(form), _password(form, "again")
    why = passwords.problem(new, email=signed.person.email)
    if why is None and new != again:
        why = "The two passwords are not the same."
    if why is not None:
        return message(
            request,
            "Your password is not changed",
            why,
            signed=signed,
            status=400,
            link=("/desk/#password", "Back to your desk"),
        )
    await w.write(lambda s: passwords.set_password(s, signed.person.id, new, now=now))
    return redirect("/desk/?done=password-set")


async def _send(request: Request, mail: EmailMessage) -> None:
    """Send the sign-in mail after the page has gone (so how long it takes tells nobody whether
    the address has an account); a failure is logged, never shown."""
    try:
        await web(request).send_mail(mail)
    except MailerError as exc:
        log.error("the desk's sign-in mail was not sent: %s", exc.message)


def _bad_link(request: Request) -> Response:
    return message(
        request,
        "This sign-in link does not work",
        f"It may have been used already, or be more than {LINK_MINUTES} minutes old. Ask for a new "
        "one: it comes by email in a minute.",
        signed=None,
        status=400,
        link=("/desk/sign-in", "Get a new sign-in link"),
    )


async def link_page(request: Request) -> Response:
    """GET: the button. Changes nothing."""
    w = web(request)
    token = request.path_params["token"]
    now = w.clock()
    user = await w.read(lambda s: sessions.link_user(s, token, now=now))
    if user is None:
        return _bad_link(request)
    signed = await signed_in(request)  # the form posts in this browser's session, if it has one
    return page(request, "link.html", {"action": request.url.path, "email": user.email}, signed=signed)


async def use_link(request: Request) -> Response:
    """POST: use the link up, start a session, set the cookie."""
    w = web(request)
    form_or_refusal = await posted(request)
    if not isinstance(form_or_refusal, Posted):
        return form_or_refusal
    token = request.path_params["token"]
    now = w.clock()
    agent = request.headers.get("user-agent", "")
    earlier = form_or_refusal.signed

    ending = earlier.session.id if earlier is not None else None
    value = await w.write(
        lambda s: sessions.start_with_link(s, token, now=now, user_agent=agent, ending=ending)
    )
    if value is None:
        return _bad_link(request)
    response = redirect("/desk/")
    set_cookie(response, w.settings, value)
    return response


async def sign_out(request: Request) -> Response:
    w = web(request)
    got = await posted(request)
    if not isinstance(got, Posted):
        return got
    response = redirect("/desk/sign-in?signed-out=1")
    signed = got.signed
    if signed is not None:
        now = w.clock()

        await w.write(
            lambda s: sessions.sign_out(
                s, signed.session.id, by=signed.person.id, email=signed.person.email, now=now
            )
        )
    if cookie_value(request):
        clear_cookie(response, w.settings)
    return response


routes = [
    Route("/desk/sign-in", sign_in_page, methods=["GET"]),
    Route("/desk/sign-in", sign_in, methods=["POST"]),
    Route("/desk/sign-in/{token}", link_page, methods=["GET"]),
    Route("/desk/sign-in/{token}", use_link, methods=["POST"]),
    Route("/desk/sign-out", sign_out, methods=["POST"]),
    Route("/desk/password", set_password, methods=["POST"]),
]
