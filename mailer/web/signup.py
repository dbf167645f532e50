"""Sign-up with double opt-in: ``/subscribe`` (and an embeddable form), ``/confirm/{token}``.

1. ``POST /subscribe`` checks the form (``consent.SignupForm``: name, email, region or postcode,
   interests, the consent box with the wording of the network the form is for, or of each network
   on the organisation's form, each beside its privacy notice (``networks.consent_text``,
   ``networks.privacy_url``); a refused form
   comes back with a message by field, ``Pages.refused``), then mails the address: a confirmation link
   for a new (or unsubscribed) address, or "you are already subscribed; manage your preferences
   here" for a current member (``already_subscribed``). The page says the same in every
   case ("check your inbox"), so it never tells a stranger who is a member. Nothing is stored: the
   pending sign-up travels, encrypted, in the confirmation link (``mailer.web.confirmation``).
2. ``GET /confirm/{token}`` shows what will be saved and a button; it changes nothing.
3. ``POST /confirm/{token}`` (with a CSRF value) has ``confirm_signup`` create or update the
   member and append a ``subscribe`` event to the consent log with the time, source "signup", the
   wording of the region's network (``consent.for_network``) and its version, the network and the
   form (``page`` or ``embed``, ``:<network>`` for a network's own). A sign-up is consent to that
   network only: a member it makes mailable gets no other network's mail until they tick it on
   their preferences page (``confirm_signup``'s ``others``).

A suppressed address can come back only this way (``mailer.audience.consent``), and only for a
confirmation link issued after the suppression.

Against bots and mail-bombing: a honeypot field (``website``, hidden from people and screen
readers) that, when filled, gets the usual page and no mail; and limits counted in the database, so
that they hold across processes and restarts (``mailer.limits``): form posts per client
network (IPv4 /24, IPv6 /64; 429 beyond), and mails per mailbox, with plus-tags and Gmail's dots
stripped (``consent.mailbox_key``; beyond, the usual page and no mail). A name holding a web or mail
address, or over 80 characters, is refused (``consent.signup_name_problem``), and no name a
stranger typed is ever put in a mail: anyone can ask for one to any address.

Networks (docs/decisions.md, Networks): the region a person chooses (or their postcode's) decides their
network (``networks.of_region``). The confirmation and "already subscribed" mails come From that network
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
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import tokens
from mailer.archive import query_network, sent_issues
from mailer.audience.addresses import address_hash
from mailer.audience.consent import (
    SignupData,
    SignupForm,
    StaleConfirmation,
    already_subscribed,
    check_signup,
    confirm_signup,
    for_network,
    mailbox_key,
    signup_regions,
    signup_shown,
)
from mailer.audience.networks import Network, consent_text, networks_of, privacy_url
from mailer.errors import MailerError, TransportError
from mailer.forms import FormRefused
from mailer.limits import hashed_key
from mailer.slots import greeting_for
from mailer.web import confirmation
from mailer.web.context import Web, client_network, web
from mailer.web.forms import posted, read_form, text
from mailer.web.logs import redact, secrets_of
from mailer.web.mail import system_mail
from mailer.web.preferences import region_options
from mailer.web.welcome import network_of_member, welcome_message

log = logging.getLogger("mailer.web")

HONEYPOT = "website"


# ---------------------------------------------------------------------------------------------
# Routes


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


@dataclass(frozen=True)
class Terms:
    """What the consent box of a form agrees to for one network: its wording and privacy notice."""

    network: Network
    wording: str
    privacy_url: str


def _terms(w: Web, network: Network | None) -> list[Terms]:
    """The consent wording and privacy notice of the network a form is for, or of each network
    when it is the whole organisation's form (one sign-up joins the network of the region chosen)."""
    chosen = [network] if network is not None else networks_of(w.shape, w.settings)
    return [Terms(n, consent_text(n, w.settings), privacy_url(n, w.settings)) for n in chosen]


def _form_page(
    w: Web,
    request: Request,
    values: dict[str, object] | None = None,
    *,
    refused: FormRefused | None = None,
    status: int = 200,
    notice: str = "",
) -> Response:
    """The sign-up form: empty (the region ``?region=`` names, if offered, chosen), or showing
    ``values`` again (``signup_shown``) with the ``refused`` post's message by field (400)."""
    values = values or {}
    network = form_network(w, request)
    offered = signup_regions(w.shape, network)
    preset_region = request.query_params.get("region", "")
    if preset_region not in w.shape.regions or (offered is not None and preset_region not in offered):
        preset_region = ""
    context = {
        "action": "/subscribe" + (f"?network={network.slug}" if network is not None else ""),
        "groups": _region_groups(w, network),
        "interests": [w.shape.interests[s] for s in w.shape.interests],
        "terms": _terms(w, network),
        "values": {
            "email": values.get("email", ""),
            "name": values.get("name", ""),
            "region": values.get("region", preset_region),
            "postcode": values.get("postcode", ""),
            "interests": values.get("interests", []),
            "consent": values.get("consent", False),
            "form": values.get("form", "page"),
        },
        "errors": {},
        "notice": notice,
        "honeypot": HONEYPOT,
        "several": len(w.shape.networks) > 1 and network is None,
    }
    if refused is not None:
        return w.pages.refused(
            request,
            "subscribe.html",
            context,
            refused,
            csrf_scope="/subscribe",
            network=network,
        )
    return w.pages.page(
        request, "subscribe.html", context, status=status, csrf_scope="/subscribe", network=network
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
        "embed_snippet.html", honeypot=HONEYPOT, terms=_terms(w, network), scope=scope, network=network
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
    fields = posted(form, SignupForm)
    shown = signup_shown(fields, w.shape)
    if not w.csrf.check(request, form, "/subscribe"):
        # A post from an embedded form (another site) or an expired page: nothing is sent; the
        # form comes back filled in, with a fresh CSRF value, to check and send.
        notice = "Please check your details and press Subscribe to finish signing up."
        return _form_page(w, request, shown, status=403, notice=notice)
    try:
        offered = signup_regions(w.shape, form_of)
        data = check_signup(fields, w.shape, wording="", now=w.clock(), offered=offered, scope=form_of)
    except FormRefused as refused:
        return _form_page(w, request, shown, refused=refused)
    network = network_of_member(w.shape, w.settings, data.region)  # the region decides
    data = for_network(data, network, w.settings)  # its wording, the one its form showed
    if text(form, HONEYPOT, 1000):
        return _check_inbox(w, request, network)  # a bot: the usual answer, and no mail
    mailbox = hashed_key("mailbox", mailbox_key(data.email))
    if await w.hit(w.limits.mailbox, mailbox) is not None:
        return _check_inbox(w, request, network)  # enough mail to that mailbox for now; say nothing more
    member_id = await w.read(lambda s: already_subscribed(s, address_hash(s, data.email)))
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
            bounced = FormRefused({"email": "We could not send an email to this address."}, values=fields)
            return _form_page(w, request, shown, refused=bounced)
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
        others = [slug for slug in w.shape.networks if slug != joined]
        done = await w.write(lambda s: confirm_signup(s, data, network=joined, others=others))
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
