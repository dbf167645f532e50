"""Sign-up with double opt-in: ``/subscribe`` (and an embeddable form), ``/confirm/{token}``.

1. ``POST /subscribe`` checks the form (name, email, region or postcode, interests, the consent box
   with the wording from ``Settings.consent_wording``), then mails the address: a confirmation link
   for a new (or unsubscribed) address, or "you are already subscribed; manage your preferences
   here" for a current member (``already_subscribed``). The page says the same in every
   case ("check your inbox"), so it never tells a stranger who is a member. Nothing is stored: the
   pending sign-up travels, encrypted, in the confirmation link (``mailer.web.confirmation``).
2. ``GET /confirm/{token}`` shows what will be saved and a button; it changes nothing.
3. ``POST /confirm/{token}`` (with a CSRF value) has ``confirm_signup`` create or update the
   member and append a ``subscribe`` event to the consent log with the time, source "signup" and the
   wording shown.

A suppressed address can come back only this way (``mailer.audience.consent``), and only for a
confirmation link issued after the suppression.

Against bots and mail-bombing: a honeypot field (``website``, hidden from people and screen
readers) that, when filled, gets the usual page and no mail; and limits counted in the database, so
that they hold across processes and restarts (``mailer.web.ratelimit``): form posts per client
network (IPv4 /24, IPv6 /64; 429 beyond), and mails per mailbox, with plus-tags and Gmail's dots
stripped (``consent.mailbox_key``; beyond, the usual page and no mail). A name holding a web or mail
address, or over 80 characters, is refused (``consent.signup_name_problem``), and no name a
stranger typed is ever put in a mail: anyone can ask for one to any address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import tokens
from mailer.audience.addresses import address_hash, clean_name, is_mailable, normalise
from mailer.audience.consent import (
    SignupData,
    StaleConfirmation,
    already_subscribed,
    confirm_signup,
    mailbox_key,
    signup_name_problem,
)
from mailer.audience.shape import Shape
from mailer.errors import InvalidInput, MailerError, TransportError
from mailer.web import confirmation
from mailer.web.context import Web, client_network, web
from mailer.web.forms import read_form, text, texts
from mailer.web.mail import system_mail
from mailer.web.preferences import region_options
from mailer.web.ratelimit import hashed_key

HONEYPOT = "website"
POSTCODE_LIMIT = 16
_POSTCODE = re.compile(r"[A-Z0-9 ]*")


@dataclass(frozen=True)
class SignupForm:
    """The form as posted (for showing it again) and the problems with it, by field."""

    values: dict[str, object]
    errors: dict[str, str]


def _postcode(value: str) -> str:
    return " ".join(value.upper().split())[:POSTCODE_LIMIT]


def validate_signup(
    shape: Shape,
    *,
    email: str,
    name: str,
    region: str,
    postcode: str,
    interests: list[str],
    consent: bool,
    wording: str,
    now: datetime,
) -> tuple[SignupData | None, SignupForm]:
    """Check a sign-up; the data to seal into the confirmation link, or None and the problems."""
    errors: dict[str, str] = {}
    address = ""
    try:
        address = normalise(email)
    except InvalidInput:
        errors["email"] = "Enter your email address, like name@example.org."
    if address and not is_mailable(address):
        errors["email"] = (
            "We cannot yet send to an address with accented or non-Latin letters before the @: "
            "please give another address."
        )
    cleaned = clean_name(name)
    problem = signup_name_problem(cleaned)
    if problem:
        errors["name"] = problem
    code = _postcode(postcode)
    if not _POSTCODE.fullmatch(code):
        errors["postcode"] = (
            "Enter a postcode like ME14 1HH (letters, digits and a space), or leave it empty."
        )
        code = ""
    chosen: str | None = None
    if region:
        if region in shape.regions:
            chosen = region
        else:
            errors["region"] = "Choose your region from the list."
    elif code:
        chosen = shape.region_for_postcode(code)
        if chosen is None and "postcode" not in errors:
            errors["region"] = (
                "We do not know the area of that postcode yet: choose your region from the list."
            )
    elif "postcode" not in errors:
        errors["region"] = "Choose your region, or give your postcode."
    if any(i not in shape.interests for i in interests):
        errors["interests"] = "Choose interests from the list."
    if not consent:
        errors["consent"] = "Tick the box to agree to receive our emails."
    values: dict[str, object] = {
        "email": email,
        "name": cleaned,
        "region": region,
        "postcode": code,
        "interests": [i for i in interests if i in shape.interests],
        "consent": consent,
    }
    form = SignupForm(values, errors)
    if errors:
        return None, form
    data = SignupData(
        email=address,
        name=cleaned,
        region=chosen,
        postcode=code,
        interests=tuple(sorted(set(interests))),
        wording=wording,
        issued_at=now,
    )
    return data, form


# ---------------------------------------------------------------------------------------------
# Routes


def _form_page(
    w: Web, request: Request, form: SignupForm | None = None, *, status: int = 200, notice: str = ""
) -> Response:
    values = form.values if form else {}
    preset_region = request.query_params.get("region", "")
    return w.pages.page(
        request,
        "subscribe.html",
        {
            "action": "/subscribe",
            "regions": region_options(w.shape),
            "interests": [w.shape.interests[s] for s in w.shape.interests],
            "wording": w.settings.consent_wording,
            "values": {
                "email": values.get("email", ""),
                "name": values.get("name", ""),
                "region": values.get("region", preset_region if preset_region in w.shape.regions else ""),
                "postcode": values.get("postcode", ""),
                "interests": values.get("interests", []),
                "consent": values.get("consent", False),
            },
            "errors": form.errors if form else {},
            "notice": notice,
            "honeypot": HONEYPOT,
        },
        status=status,
        csrf_scope="/subscribe",
    )


async def subscribe_page(request: Request) -> Response:
    return _form_page(web(request), request)


async def embed_page(request: Request) -> Response:
    """A page with the HTML of a small sign-up form to paste into another site."""
    w = web(request)
    snippet = w.pages.text("embed_snippet.html", honeypot=HONEYPOT, wording=w.settings.consent_wording)
    return w.pages.page(request, "embed.html", {"snippet": snippet})


def _check_inbox(w: Web, request: Request) -> Response:
    return w.pages.page(request, "check_inbox.html")


async def subscribe(request: Request) -> Response:
    w = web(request)
    wait = await w.hit(w.limits.network, client_network(request))
    if wait is not None:
        return w.pages.message(
            request,
            "Too many sign-ups",
            "There have been too many sign-ups from your connection. Please try again later.",
            status=429,
            headers={"Retry-After": str(int(wait) + 1)},
        )
    form = await read_form(request)
    consent = text(form, "consent", 10) == "yes"
    data, checked = validate_signup(
        w.shape,
        email=text(form, "email", 320),
        name=text(form, "name", 1000),
        region=text(form, "region", 100),
        postcode=text(form, "postcode", 100),
        interests=texts(form, "interests"),
        consent=consent,
        wording=w.settings.consent_wording,
        now=w.clock(),
    )
    if not w.csrf.check(request, form, "/subscribe"):
        # A post from an embedded form (another site) or an expired page: nothing is sent; the
        # form comes back filled in, with a fresh CSRF value, to check and send.
        return _form_page(
            w,
            request,
            SignupForm(checked.values, {}),
            status=403,
            notice="Please check your details and press Subscribe to finish signing up.",
        )
    if data is None:
        return _form_page(w, request, checked, status=400)
    if text(form, HONEYPOT, 1000):
        return _check_inbox(w, request)  # a bot: the usual answer, and no mail
    mailbox = hashed_key("mailbox", mailbox_key(data.email))
    if await w.hit(w.limits.mailbox, mailbox) is not None:
        return _check_inbox(w, request)  # enough mail to that mailbox for now; say nothing more
    digest = address_hash(data.email)
    member_id = await w.read(lambda s: already_subscribed(s, digest))
    if member_id is not None:
        prefs = tokens.sign("preferences", member_id, keys=w.keys)
        message = system_mail(
            w.pages,
            w.settings,
            "already.txt",
            to=data.email,
            preferences_url=tokens.link(w.settings.base_url, "preferences", prefs),
        )
    else:
        token = confirmation.seal(data, keys=w.keys)
        message = system_mail(
            w.pages,
            w.settings,
            "confirm.txt",
            to=data.email,
            confirm_url=f"{w.settings.base_url.rstrip('/')}/confirm/{token}",
            days=confirmation.MAX_AGE.days,
        )
    try:
        await w.send_mail(message)
    except TransportError as exc:
        if not exc.temporary:  # the relay refused this address for good
            refused = SignupForm(checked.values, {"email": "We could not send an email to this address."})
            return _form_page(w, request, refused, status=400)
        return _try_later(w, request)
    except MailerError:
        return _try_later(w, request)
    return _check_inbox(w, request)


def _try_later(w: Web, request: Request) -> Response:
    return w.pages.message(
        request,
        "Please try again later",
        "We could not send the confirmation email just now. Please try again in a few minutes.",
        status=503,
        headers={"Retry-After": "300"},
    )


def _summary(w: Web, data: SignupData) -> dict[str, object]:
    return {
        "email": data.email,
        "name": data.name,
        "region": w.shape.label(data.region) if data.region in w.shape.regions else "",
        "interests": [w.shape.interests[i].name for i in data.interests if i in w.shape.interests],
        "wording": data.wording,
    }


async def confirm_page(request: Request) -> Response:
    """GET: what will be saved, and the button. Changes nothing."""
    w = web(request)
    data = confirmation.unseal(request.path_params["token"], keys=w.keys, now=w.clock())
    return w.pages.page(
        request,
        "confirm.html",
        {"action": request.url.path, **_summary(w, data)},
        csrf_scope=request.url.path,
    )


async def confirm(request: Request) -> Response:
    """POST: confirm the sign-up."""
    w = web(request)
    data = confirmation.unseal(request.path_params["token"], keys=w.keys, now=w.clock())
    form = await read_form(request)
    if not w.csrf.check(request, form, request.url.path):
        return w.pages.form_expired(request)
    try:
        done = await w.write(lambda s: confirm_signup(s, data))
    except StaleConfirmation:
        return w.pages.message(
            request,
            "This link is out of date",
            "This confirmation link was sent before you unsubscribed, so it cannot subscribe you "
            "again. If you would like our emails again, please sign up once more.",
            status=409,
            link=("/subscribe", "Sign up again"),
        )
    prefs = tokens.sign("preferences", done.member_id, keys=w.keys)
    return w.pages.page(
        request,
        "confirmed.html",
        {"preferences_path": tokens.LINK_PATHS["preferences"] + prefs, **_summary(w, data)},
    )


routes = [
    Route("/subscribe", subscribe_page, methods=["GET"]),
    Route("/subscribe", subscribe, methods=["POST"]),
    Route("/subscribe/embed", embed_page, methods=["GET"]),
    Route("/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/confirm/{token}", confirm, methods=["POST"]),
]
