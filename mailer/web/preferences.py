"""Preferences at ``/p/{token}`` (the link in every footer): name, home region, interests, networks.

A member leaves one interest by unticking it, or everything with the "Stop all emails" button (a
suppression, source "link"). In a workspace of several networks (``lists/networks.toml``) the form
has a "Networks" fieldset too, a box per network, ticked unless the member left it: unticking
leaves that network's mail, ticking rejoins it (``consent.save_networks``); with one network the
page is as before. Every form carries a CSRF value. Saving goes through ``consent``: each saved
change appends its line to the consent log (``preferences``, ``leave-network``, ``join-network``);
an unchanged form appends nothing. A member who has unsubscribed sees that, and how to sign up again
(only a confirmed sign-up lifts a suppression): the page never resubscribes anyone, and they cannot
rejoin a network from it. The page speaks as the network of the link's campaign
(``page_network``). The form is ``consent.PreferencesForm``: a refused post shows the form again
with a message by field (``Pages.refused``) and changes nothing.

A preferences link works for ``Settings.preferences_link_days`` (90 by default) after it was sent,
so that a link found in an old mail or a log does not open a member's profile for ever. An older
link gets a page offering to mail a fresh one (``POST /p/{token}/renew``, with CSRF) to the member's
own address; the unsubscribe page offers the same (``mail_preferences_link``). Mailed links are
limited per member, go only to a member who has not unsubscribed, and the page says the same
whatever happened.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import events, tokens
from mailer.audience import consent
from mailer.audience.consent import MemberPreferences, Preferences, PreferencesForm
from mailer.audience.members import mail_address
from mailer.audience.networks import Network, member_network
from mailer.audience.shape import Shape
from mailer.db import Session
from mailer.errors import MailerError
from mailer.forms import FormRefused
from mailer.web.context import Web, in_range, web
from mailer.web.forms import posted, read_form
from mailer.web.mail import system_mail


def region_options(shape: Shape) -> list[tuple[str, str]]:
    """(slug, "South East › Kent") for every region, parents before children."""
    return [(r.slug, shape.label(r.slug)) for _depth, r in shape.walk()]


def page_network(w: Web, network: str | None, region: str | None = None) -> Network | None:
    """Who a page about a member speaks as: the network ``network`` (the slug of the link's
    campaign) if the workspace declares it, else the member's (``networks.member_network``: their
    region's, the organisation's for a region of no network or none); None (the workspace's
    default network) in a single-network workspace."""
    if not w.shape.networks:
        return None
    if network and network in w.shape.networks:
        return w.shape.networks[network]
    return member_network(w.shape, w.settings, region)


def network_choices(w: Web, kept: frozenset[str]) -> list[tuple[str, str, bool]]:
    """(slug, name, ticked) for each network of a workspace with several; [] with one."""
    if len(w.shape.networks) < 2:
        return []
    return [(slug, n.name, slug in kept) for slug, n in w.shape.networks.items()]


def _form_context(
    w: Web,
    request: Request,
    view: MemberPreferences,
    choice: Preferences | None = None,
    kept: frozenset[str] | None = None,
) -> dict[str, object]:
    path = request.url.path.removesuffix("/leave")
    if kept is None:
        kept = frozenset(w.shape.networks) - view.networks_left
    return {
        "action": path,
        "leave_action": path + "/leave",
        "regions": region_options(w.shape),
        "interests": [w.shape.interests[s] for s in w.shape.interests],
        "networks": network_choices(w, kept),
        "name": choice.name if choice else view.name,
        "region": choice.region if choice else view.region,
        "chosen": choice.interests if choice else view.interests,
        "suppressed": view.suppressed,
        "errors": {},
        "saved": None,
        "answers": [],
    }


async def _answers(w: Web, member_id: int) -> list[dict[str, str]]:
    """The member's answers to events still to come, each with its RSVP link to change it."""
    found = await w.read(lambda s: events.member_answers(s, member_id, since=w.clock()))
    return [
        {
            "title": a.event.title,
            "when": events.when_words(a.event, w.settings.zone),
            "answer": a.answer,
            "path": f"/rsvp/{a.event.uid}/"
            + tokens.sign("rsvp", member_id, keys=w.keys, campaign=a.campaign_id),
        }
        for a in found
        if not a.event.cancelled
    ]


def max_age(w: Web) -> timedelta:
    """How long a preferences link works."""
    return timedelta(days=w.settings.preferences_link_days)


async def _member(request: Request) -> tuple[Web, tokens.TokenData, MemberPreferences, Network | None]:
    """The member a current preferences link names, and the network the page speaks as; raises
    ``ExpiredToken`` for an old link (the app answers with ``expired_link``) and ``InvalidToken``
    for a bad one."""
    w = web(request)
    data = in_range(
        tokens.verify(request.path_params["token"], "preferences", keys=w.keys, max_age=max_age(w))
    )
    view, network = await w.read(
        lambda s: (consent.preferences_of(s, data.member_id), consent.network_of_campaign(s, data.campaign))
    )
    if view is None:  # erased since: the same page as for any bad link
        raise tokens.InvalidToken("member no longer exists")
    return w, data, view, page_network(w, network, view.region)


def _scope(request: Request) -> str:
    return tokens.LINK_PATHS["preferences"] + str(request.path_params["token"])


async def page(request: Request) -> Response:
    """GET: the form, filled in with the member's current choices. Writes nothing."""
    w, data, view, network = await _member(request)
    context = _form_context(w, request, view)
    context["answers"] = await _answers(w, data.member_id)
    return w.pages.page(request, "preferences.html", context, csrf_scope=_scope(request), network=network)


def _expired(w: Web, request: Request, network: Network | None) -> Response:
    return w.pages.message(
        request,
        "Please try again",
        "This form had expired, so nothing was changed. Go back, reload the page and save again.",
        status=403,
        network=network,
    )


async def save(request: Request) -> Response:
    """POST: save name, region, interests and (with several networks) the networks kept."""
    w, data, view, network = await _member(request)
    form = await read_form(request)
    if not w.csrf.check(request, form, _scope(request)):
        return _expired(w, request, network)
    fields = posted(form, PreferencesForm)
    try:
        checked = consent.check_preferences(fields, w.shape)
    except FormRefused as refused:
        context = _form_context(w, request, view, *consent.preferences_shown(refused.values, w.shape))
        scope = _scope(request)
        return w.pages.refused(
            request, "preferences.html", context, refused, csrf_scope=scope, network=network
        )
    choice, kept = checked.choice(), checked.kept_networks()

    def work(session: Session) -> list[str] | None:
        changes = consent.save_preferences(session, data.member_id, choice, campaign_id=data.campaign)
        if changes is None or kept is None:
            return changes
        networks = list(w.shape.networks)
        more = consent.save_networks(session, data.member_id, kept, networks, campaign_id=data.campaign)
        return changes + (more or [])

    changes = await w.write(work)
    if changes is None:
        now: MemberPreferences | None = await w.read(lambda s: consent.preferences_of(s, data.member_id))
        context = _form_context(w, request, now or view)
    else:
        context = _form_context(w, request, view, choice, kept)
        context["saved"] = changes
    return w.pages.page(request, "preferences.html", context, csrf_scope=_scope(request), network=network)


async def leave(request: Request) -> Response:
    """POST: unsubscribe from everything, every network (source "link")."""
    w, data, _view, network = await _member(request)
    form = await read_form(request)
    if not w.csrf.check(request, form, _scope(request)):
        return _expired(w, request, network)
    await w.write(
        lambda s: consent.unsubscribe_member(
            s, data.member_id, source="link", campaign_id=data.campaign, detail="preferences page"
        )
    )
    return w.pages.page(request, "unsubscribed.html", {"one_click": False, "left": None}, network=network)


# ---------------------------------------------------------------------------------------------
# Mailing a fresh link


async def mail_preferences_link(
    w: Web, request: Request, member_id: int, campaign: int | None, network: Network | None = None
) -> Response:
    """Mail a fresh preferences link to the member's own address (if they exist, have not
    unsubscribed and have not had too many such mails lately), and say the same in every case.
    The mail and the page speak as ``network`` (the link's campaign's)."""
    if await w.hit(w.limits.preference_mails, str(member_id)) is None:
        address = await w.read(lambda s: mail_address(s, member_id))
        if address is not None:
            token = tokens.sign("preferences", member_id, keys=w.keys, campaign=campaign)
            message = system_mail(
                w.pages,
                w.settings,
                "preferences.txt",
                to=address,
                network=network,
                network_choice=len(w.shape.networks) > 1,
                preferences_url=tokens.link(w.settings.base_url, "preferences", token),
                days=w.settings.preferences_link_days,
            )
            try:
                await w.send_mail(message)
            except MailerError:
                return w.pages.message(
                    request,
                    "Please try again later",
                    "We could not send the email just now. Please try again in a few minutes.",
                    status=503,
                    headers={"Retry-After": "300"},
                    network=network,
                )
    return w.pages.message(
        request,
        "Check your inbox",
        "If your address is on our list, we have sent it an email with a new link to your "
        f"preferences. The link works for {w.settings.preferences_link_days} days.",
        network=network,
    )


async def token_network(w: Web, data: tokens.TokenData) -> Network | None:
    """The network a page opened by a link speaks as: its campaign's (``page_network``)."""
    if not w.shape.networks or data.campaign is None:
        return None
    return page_network(w, await w.read(lambda s: consent.network_of_campaign(s, data.campaign)))


def _renew_path(token: str) -> str:
    return tokens.LINK_PATHS["preferences"] + token + "/renew"


async def expired_link(request: Request, exc: Exception) -> Response:
    """The page for a genuine preferences link that is too old: it offers to mail a fresh one."""
    assert isinstance(exc, tokens.ExpiredToken)
    w = web(request)
    action = _renew_path(str(request.path_params.get("token", "")))
    return w.pages.page(
        request,
        "expired.html",
        {"action": action, "days": w.settings.preferences_link_days},
        status=410,
        csrf_scope=action,
        network=await token_network(w, in_range(exc.data)),
    )


async def renew(request: Request) -> Response:
    """POST: mail a fresh preferences link to the member an old (or current) link names."""
    w = web(request)
    token = request.path_params["token"]
    data = in_range(tokens.verify(token, "preferences", keys=w.keys))  # genuine, however old
    form = await read_form(request)
    if not w.csrf.check(request, form, _renew_path(token)):
        return w.pages.form_expired(request, what="sent")
    network = await token_network(w, data)
    return await mail_preferences_link(w, request, data.member_id, data.campaign, network)


routes = [
    Route("/p/{token}", page, methods=["GET"]),
    Route("/p/{token}", save, methods=["POST"]),
    Route("/p/{token}/leave", leave, methods=["POST"]),
    Route("/p/{token}/renew", renew, methods=["POST"]),
]
