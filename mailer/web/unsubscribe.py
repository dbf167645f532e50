"""Unsubscribe at ``/u/{token}``, the URL in every message's List-Unsubscribe header.

- GET and HEAD show a page with a button and change nothing: mail scanners follow links.
- A POST whose form says ``List-Unsubscribe=One-Click`` (RFC 8058; urlencoded or multipart)
  unsubscribes at once: no cookie, no CSRF value, no second step, and the answer is 200 with a small
  page, never a redirect. The signed token in the URL is what authorises it. Source "one-click".
- The page's own button posts the same URL with a CSRF value instead (source "link").
- The page's second button (``POST /u/{token}/preferences``, with CSRF) mails the member a link to
  their preferences: neither this page nor any other answer to an unsubscribe link carries a
  preferences link itself, so an unsubscribe link seen in a log or a forwarded mail opens no
  one's profile.

**Scope** (docs/decisions.md, Networks): an unsubscribe leaves the network the mail came from, the network
of the campaign the signed token names (``consent.unsubscribe_scoped``); nothing else in the request (a
form field, a header) can widen, narrow or move it. The page says so plainly ("Stop emails from
Central England Network. You will still get Kent Network's emails …"), and the page that confirms it
offers to stop all mail (``POST /u/{token}/all``, with CSRF: the suppression). In a workspace with
a single network, or for a campaign of the default network, leaving it is leaving all mail: the
suppression, exactly as before networks. Every page speaks as the campaign's network.

Either way it is recorded with its source and the campaign named in the token; repeating it is
harmless (the suppression or the network leave is added once; each request is logged in the consent
log). The write is one short transaction, retried when the database is busy, and every send checks
suppressions and network leaves again at each batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import tokens
from mailer.audience import consent
from mailer.audience.networks import Network
from mailer.db import Session
from mailer.web.context import Web, in_range, web
from mailer.web.forms import read_form
from mailer.web.preferences import mail_preferences_link, page_network

ONE_CLICK = ("List-Unsubscribe", "One-Click")


@dataclass(frozen=True)
class Scope:
    """What a link's unsubscribe leaves and who its pages speak as: ``left`` is the network left
    (None: all mail); ``others`` the names of the workspace's other networks."""

    network: Network | None
    left: Network | None
    others: tuple[str, ...]

    def context(self) -> dict[str, object]:
        """``left`` and ``others`` in words: "Kent Network's" (", " and " and " between several)."""
        names = [f"{name}'s" for name in self.others]
        others = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        return {"left": self.left, "others": others}


async def _scope(w: Web, data: tokens.TokenData) -> Scope:
    """The scope of an unsubscribe by the link ``data``: from the token's campaign alone."""
    if not w.shape.networks:
        return Scope(None, None, ())
    networks = list(w.shape.networks)
    slug, left = await w.read(
        lambda s: (
            consent.network_of_campaign(s, data.campaign),
            consent.unsubscribe_scope(s, data.campaign, networks),
        )
    )
    network = page_network(w, slug)
    if left is None:
        return Scope(network, None, ())
    others = tuple(n.name for n in w.shape.networks.values() if n.slug != left)
    return Scope(network, w.shape.networks[left], others)


def _path(token: str) -> str:
    return tokens.LINK_PATHS["unsubscribe"] + token


async def page(request: Request) -> Response:
    """GET/HEAD: the page with the button. Verifies the token; writes nothing."""
    w = web(request)
    token = request.path_params["token"]
    data = in_range(tokens.verify(token, "unsubscribe", keys=w.keys))
    scope = await _scope(w, data)
    path = _path(token)
    return w.pages.page(
        request,
        "unsubscribe.html",
        {"action": path, "preferences_action": path + "/preferences", **scope.context()},
        csrf_scope=path,
        network=scope.network,
    )


async def post(request: Request) -> Response:
    """POST: one-click (RFC 8058) or the page's button (with a CSRF value). Leaves the network of
    the token's campaign (all mail with a single network); any other form field is ignored."""
    w = web(request)
    token = request.path_params["token"]
    data = in_range(tokens.verify(token, "unsubscribe", keys=w.keys))
    form = await read_form(request)
    if form.get(ONE_CLICK[0]) == ONE_CLICK[1]:
        source = "one-click"
    elif w.csrf.check(request, form, _path(token)):
        source = "link"
    else:
        return w.pages.form_expired(request)
    networks = list(w.shape.networks)

    def work(session: Session) -> consent.Left | None:
        return consent.unsubscribe_scoped(
            session, data.member_id, source=source, campaign_id=data.campaign, networks=networks
        )

    await w.write(work)
    scope = await _scope(w, data)
    one_click = source == "one-click"
    context = {"one_click": one_click, **scope.context()}
    if scope.left is not None and not one_click:
        # The page offers to stop all mail too; a one-click answer goes to a mail provider, not a
        # person, and sets no cookie.
        context["all_action"] = _path(token) + "/all"
        return w.pages.page(
            request, "unsubscribed.html", context, csrf_scope=_path(token), network=scope.network
        )
    return w.pages.page(request, "unsubscribed.html", context, network=scope.network)


async def leave_all(request: Request) -> Response:
    """POST (with the page's CSRF value): stop all mail, every network: the suppression (source
    "link"), offered by the page that confirms leaving one network."""
    w = web(request)
    token = request.path_params["token"]
    data = in_range(tokens.verify(token, "unsubscribe", keys=w.keys))
    form = await read_form(request)
    if not w.csrf.check(request, form, _path(token)):
        return w.pages.form_expired(request)

    def work(session: Session) -> consent.Unsubscribed | None:
        return consent.unsubscribe_member(
            session,
            data.member_id,
            source="link",
            campaign_id=data.campaign,
            detail="all mail, unsubscribe page",
        )

    await w.write(work)
    scope = await _scope(w, data)
    return w.pages.page(request, "unsubscribed.html", {"one_click": False}, network=scope.network)


async def preferences_link(request: Request) -> Response:
    """POST (with the page's CSRF value): mail the member a link to their preferences."""
    w = web(request)
    token = request.path_params["token"]
    data = in_range(tokens.verify(token, "unsubscribe", keys=w.keys))
    form = await read_form(request)
    if not w.csrf.check(request, form, _path(token)):
        return w.pages.form_expired(request, what="sent")
    scope = await _scope(w, data)
    return await mail_preferences_link(w, request, data.member_id, data.campaign, scope.network)


routes = [
    Route("/u/{token}", page, methods=["GET"]),
    Route("/u/{token}", post, methods=["POST"]),
    Route("/u/{token}/all", leave_all, methods=["POST"]),
    Route("/u/{token}/preferences", preferences_link, methods=["POST"]),
]
