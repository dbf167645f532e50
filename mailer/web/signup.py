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

Networks (issue 12): the region a person chooses (or their postcode's) decides their network
(``networks.of_region``). The confirmation and "already subscribed" mails come From that network
and name it, and the confirm pages speak as it; once confirmed, the member gets the network's
welcome mail (``mailer.web.welcome``; a welcome that cannot be sent is logged and the sign-up
stands). ``/subscribe?network=SLUG`` is a network's own form: headed by it, listing its regions
(an unknown SLUG is a 404); ``/subscribe`` lists every network's regions, under each network's
name. When networks are declared (``lists/networks.toml``), only regions inside a network can be
chosen: a region outside every network (a parent above them, such as South East) would have nobody
to write to it, so the form does not offer it, refuses it if posted, and asks for a region when a
postcode leads to one. Without networks.toml every region is offered, as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from starlette.exceptions import HTTPException
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
from mailer.audience.networks import Network, networks_of
from mailer.audience.shape import Shape
from mailer.errors import InvalidInput, MailerError, TransportError
from mailer.slots import greeting_for
from mailer.web import confirmation
from mailer.web.context import Web, client_network, web
from mailer.web.forms import read_form, text, texts
from mailer.web.issues import query_network, sent_issues
from mailer.web.logs import redact, secrets_of
from mailer.web.mail import system_mail
from mailer.web.preferences import region_options
from mailer.web.ratelimit import hashed_key
from mailer.web.welcome import network_of_member, welcome_message

log = logging.getLogger("mailer.web")

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
    offered: Collection[str] | None = None,
) -> tuple[SignupData | None, SignupForm]:
    """Check a sign-up; the data to seal into the confirmation link, or None and the problems.

    ``offered``: the regions the form lists (None: every region one can sign up in,
    ``signup_regions``: with networks declared, those inside a network); a region chosen from the
    list must be one of them, and a postcode's region must belong to a network."""
    networked = signup_regions(shape, None)
    offered = offered if offered is not None else networked
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
        if region in shape.regions and (offered is None or region in offered):
            chosen = region
        else:
            errors["region"] = "Choose your region from the list."
    elif code:
        chosen = shape.region_for_postcode(code)
        if chosen is not None and networked is not None and chosen not in networked:
            chosen = None  # an area no network covers: nobody would write to them
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


def signup_regions(shape: Shape, network: Network | None) -> list[str] | None:
    """The regions one can sign up in: ``network``'s; with no network given, those of every
    declared network; None (every region) when the workspace declares none."""
    if network is not None and network.regions:
        return [
            slug for slug in shape.regions if any(top in network.regions for top in shape.ancestors(slug))
        ]
    if network is None and shape.networks:
        return [slug for n in shape.networks.values() for slug in signup_regions(shape, n) or []]
    return None


def form_network(w: Web, request: Request) -> Network | None:
    """The network ``?network=SLUG`` names (None: none named); 404 for one that is not ours."""
    try:
        return query_network(w.shape, w.settings, request.query_params.get("network"))
    except LookupError:
        raise HTTPException(404) from None


def _region_groups(w: Web, network: Network | None) -> list[tuple[str, list[tuple[str, str]]]]:
    """The form's regions: ("", every region) without networks or for one network; else one
    (network name, its regions) group per network."""
    if not w.shape.networks:
        return [("", region_options(w.shape))]
    chosen = [network] if network is not None else networks_of(w.shape, w.settings)
    groups = []
    for net in chosen:
        slugs = set(signup_regions(w.shape, net) or [])
        options = [(slug, label) for slug, label in region_options(w.shape) if slug in slugs]
        groups.append(("" if network is not None else net.name, options))
    return groups


def _form_page(
    w: Web, request: Request, form: SignupForm | None = None, *, status: int = 200, notice: str = ""
) -> Response:
    values = form.values if form else {}
    network = form_network(w, request)
    offered = signup_regions(w.shape, network)
    preset_region = request.query_params.get("region", "")
    if preset_region not in w.shape.regions or (offered is not None and preset_region not in offered):
        preset_region = ""
    return w.pages.page(
        request,
        "subscribe.html",
        {
            "action": "/subscribe" + (f"?network={network.slug}" if network is not None else ""),
            "groups": _region_groups(w, network),
            "interests": [w.shape.interests[s] for s in w.shape.interests],
            "wording": w.settings.consent_wording,
            "values": {
                "email": values.get("email", ""),
                "name": values.get("name", ""),
                "region": values.get("region", preset_region),
                "postcode": values.get("postcode", ""),
                "interests": values.get("interests", []),
                "consent": values.get("consent", False),
            },
            "errors": form.errors if form else {},
            "notice": notice,
            "honeypot": HONEYPOT,
            "several": len(w.shape.networks) > 1 and network is None,
        },
        status=status,
        csrf_scope="/subscribe",
        network=network,
    )


async def subscribe_page(request: Request) -> Response:
    return _form_page(web(request), request)


async def embed_page(request: Request) -> Response:
    """A page with the HTML of a small sign-up form to paste into another site (``?network=SLUG``:
    one network's form)."""
    w = web(request)
    network = form_network(w, request)
    scope = f"?network={network.slug}" if network is not None else ""
    snippet = w.pages.text(
        "embed_snippet.html",
        honeypot=HONEYPOT,
        wording=w.settings.consent_wording,
        scope=scope,
        network=network,
    )
    return w.pages.page(request, "embed.html", {"snippet": snippet}, network=network)


def _check_inbox(w: Web, request: Request, network: Network | None = None) -> Response:
    return w.pages.page(request, "check_inbox.html", network=network)


async def subscribe(request: Request) -> Response:
    w = web(request)
    form_of = form_network(w, request)  # before anything is counted: 404 for a network not ours
    wait = await w.hit(w.limits.network, client_network(request))
    if wait is not None:
        return w.pages.message(
            request,
            "Too many sign-ups",
            "There have been too many sign-ups from your connection. Please try again later.",
            status=429,
            headers={"Retry-After": str(int(wait) + 1)},
            network=form_of,
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
        offered=signup_regions(w.shape, form_of),
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
    network = network_of_member(w.shape, w.settings, data.region)  # the region decides
    if text(form, HONEYPOT, 1000):
        return _check_inbox(w, request, network)  # a bot: the usual answer, and no mail
    mailbox = hashed_key("mailbox", mailbox_key(data.email))
    if await w.hit(w.limits.mailbox, mailbox) is not None:
        return _check_inbox(w, request, network)  # enough mail to that mailbox for now; say nothing more
    digest = address_hash(data.email)
    member_id = await w.read(lambda s: already_subscribed(s, digest))
    if member_id is not None:
        prefs = tokens.sign("preferences", member_id, keys=w.keys)
        message = system_mail(
            w.pages,
            w.settings,
            "already.txt",
            to=data.email,
            network=network,
            preferences_url=tokens.link(w.settings.base_url, "preferences", prefs),
        )
    else:
        token = confirmation.seal(data, keys=w.keys)
        message = system_mail(
            w.pages,
            w.settings,
            "confirm.txt",
            to=data.email,
            network=network,
            confirm_url=f"{w.settings.base_url.rstrip('/')}/confirm/{token}",
            days=confirmation.MAX_AGE.days,
            greeting=greeting_for(data.name, w.settings.greeting, w.settings.greeting_without_name),
        )
    try:
        await w.send_mail(message)
    except TransportError as exc:
        if not exc.temporary:  # the relay refused this address for good
            refused = SignupForm(checked.values, {"email": "We could not send an email to this address."})
            return _form_page(w, request, refused, status=400)
        return _try_later(w, request, network)
    except MailerError:
        return _try_later(w, request, network)
    return _check_inbox(w, request, network)


def _try_later(w: Web, request: Request, network: Network | None = None) -> Response:
    return w.pages.message(
        request,
        "Please try again later",
        "We could not send the confirmation email just now. Please try again in a few minutes.",
        status=503,
        headers={"Retry-After": "300"},
        network=network,
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
    """GET: what will be saved, and the button, speaking as the region's network. Changes nothing."""
    w = web(request)
    data = confirmation.unseal(request.path_params["token"], keys=w.keys, now=w.clock())
    return w.pages.page(
        request,
        "confirm.html",
        {"action": request.url.path, **_summary(w, data)},
        csrf_scope=request.url.path,
        network=network_of_member(w.shape, w.settings, data.region),
    )


async def confirm(request: Request) -> Response:
    """POST: confirm the sign-up, then mail the welcome (a new or returning member only)."""
    w = web(request)
    data = confirmation.unseal(request.path_params["token"], keys=w.keys, now=w.clock())
    network = network_of_member(w.shape, w.settings, data.region)
    form = await read_form(request)
    if not w.csrf.check(request, form, request.url.path):
        return w.pages.form_expired(request)
    try:
        joined = network.slug if network is not None and w.shape.networks else ""
        done = await w.write(lambda s: confirm_signup(s, data, network=joined))
    except StaleConfirmation:
        return w.pages.message(
            request,
            "This link is out of date",
            "This confirmation link was sent before you unsubscribed, so it cannot subscribe you "
            "again. If you would like our emails again, please sign up once more.",
            status=409,
            link=("/subscribe", "Sign up again"),
            network=network,
        )
    welcomed = done.created or done.resubscribed
    if welcomed:
        welcomed = await _welcome(w, done.member_id, data)
    prefs = tokens.sign("preferences", done.member_id, keys=w.keys)
    return w.pages.page(
        request,
        "confirmed.html",
        {
            "preferences_path": tokens.LINK_PATHS["preferences"] + prefs,
            "welcomed": welcomed,
            **_summary(w, data),
        },
        network=network,
    )


async def _welcome(w: Web, member_id: int, data: SignupData) -> bool:
    """Mail the new member their welcome; if that fails, log it (the sign-up stands) and say so."""
    try:
        today = w.clock().astimezone(w.settings.zone).date()
        issues = await w.read(lambda s: sent_issues(s, w.cache))
        message = welcome_message(
            w.pages,
            w.settings,
            w.shape,
            issues,
            member_id=member_id,
            to=data.email,
            region=data.region,
            today=today,
            first_name=data.name,
        )
        await w.send_mail(message)
    except Exception as exc:  # a courtesy mail: whatever went wrong, the confirmation stands
        reason = redact(f"{type(exc).__name__}: {exc}", secrets_of(w.settings)).replace(data.email, "…")
        log.error("the welcome mail to member %s was not sent: %s", member_id, reason)
        return False
    return True


routes = [
    Route("/subscribe", subscribe_page, methods=["GET"]),
    Route("/subscribe", subscribe, methods=["POST"]),
    Route("/subscribe/embed", embed_page, methods=["GET"]),
    Route("/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/confirm/{token}", confirm, methods=["POST"]),
]
