"""The archive of sent issues: ``/archive/`` (with an Atom feed), each issue's full public edition
at ``/archive/{slug}/``, and the "view in browser" link of each variant at ``/archive/{slug}/{key}``.

No personal data is shown: the slot markers left in rendered variants (the member's name, their
unsubscribe and preferences links) are replaced with neutral text and a link to a page explaining
that those links are personal (``NEUTRAL_SLOTS``).

Each issue speaks as its network (``mailer.archive.issue_network``): its public edition is rendered as that
network. With several networks (``lists/networks.toml``) the archive lists each network's issues
under its name, ``/archive/?network=SLUG`` shows one network's (headed as that network), and
``/archive/feed.atom?network=SLUG`` is its feed; an unknown ``network`` is a 404.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mailer.archive import (
    SentIssue,
    issue_network,
    query_network,
    sent_issue,
    sent_issues,
    started_campaign,
    variant_html,
)
from mailer.audience.networks import Network, networks_of
from mailer.compose import compose_all
from mailer.errors import MailerError
from mailer.identity import Identity, campaign_identity
from mailer.render import Renderer
from mailer.settings import Settings
from mailer.slots import fill_slots
from mailer.web.context import Web, web

ATOM = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"

EDITION_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # A rendered issue has inline styles and remote images, and never any script.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data: 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


def neutral_slots(settings: Settings) -> dict[str, str]:
    """What replaces each slot marker in a public copy."""
    links = settings.base_url.rstrip("/") + "/links"
    return {"name": "reader", "unsubscribe_url": links, "preferences_url": links}


def neutralise(html: str, settings: Settings) -> str:
    """``html`` with every slot marker replaced by neutral text (HTML-escaped); unknown ones emptied."""
    return fill_slots(html, neutral_slots(settings), html=True, missing="")


def _edition(w: Web, sent: SentIssue) -> str:
    """The full public edition of a sent issue (every item), rendered once and kept."""
    key = ("edition", sent.campaign_id, id(sent.issue))
    if key not in w.cache:
        renderer = Renderer(w.settings, _identity(w, sent))
        rendered = renderer.render(compose_all(sent.issue), sent)
        w.cache[key] = neutralise(rendered.html, w.settings)
    html: str = w.cache[key]
    return html


def _identity(w: Web, sent: SentIssue) -> Identity:
    """Who the edition speaks as: its network (``issue_network``) and, as when it was sent, the
    local group its audience is alone about."""
    network = issue_network(w.shape, w.settings, sent)
    try:
        slug = network.slug if w.shape.networks else ""
        return campaign_identity(w.settings, slug, sent.issue.audience, shape=w.shape)
    except MailerError:  # an audience that no longer resolves
        return Identity(network)


def _issue_url(settings: Settings, slug: str) -> str:
    return f"{settings.base_url.rstrip('/')}/archive/{slug}/"


def chosen_network(w: Web, request: Request) -> Network | None:
    """The network ``?network=`` names (None: every network); 404 for one that is not ours."""
    try:
        return query_network(w.shape, w.settings, request.query_params.get("network"))
    except LookupError:
        raise HTTPException(404) from None


def by_network(
    w: Web, issues: list[SentIssue], only: Network | None
) -> list[tuple[Network, list[SentIssue]]]:
    """``issues`` under their networks, in the workspace's order (only ``only``'s, if given)."""
    networks = [only] if only is not None else networks_of(w.shape, w.settings)
    groups: dict[str, list[SentIssue]] = {n.slug: [] for n in networks}
    for sent in issues:
        slug = issue_network(w.shape, w.settings, sent).slug
        if slug in groups:
            groups[slug].append(sent)
    return [(n, groups[n.slug]) for n in networks]


async def index(request: Request) -> Response:
    w = web(request)
    only = chosen_network(w, request)
    issues = await w.read(lambda s: sent_issues(s, w.cache))
    groups = by_network(w, issues, only)
    context = {
        "groups": groups,
        "issues": [sent for _n, found in groups for sent in found],
        "several": len(networks_of(w.shape, w.settings)) > 1,
        "only": only,
        "feed": "/archive/feed.atom" + (f"?network={only.slug}" if only is not None else ""),
    }
    return w.pages.page(request, "archive.html", context, network=only)


def atom_feed(issues: list[SentIssue], settings: Settings, network: Network | None = None) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of the sent issues, newest first: ``network``'s (its name in the
    title, its own id and self link), else the organisation's of every network."""
    ET.register_namespace("", ATOM)

    def el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    def stamp(sent: SentIssue) -> datetime:
        return sent.sent_at or datetime.combine(sent.issue.date, time(), UTC)

    base = settings.base_url.rstrip("/")
    query = f"?network={network.slug}" if network is not None else ""
    name = network.name if network is not None else settings.organisation
    feed = ET.Element(f"{{{ATOM}}}feed")
    el(feed, "id", f"{base}/archive/{query}")
    el(feed, "title", f"{name}: newsletter archive")
    updated = max((stamp(s) for s in issues), default=datetime(2024, 1, 1, tzinfo=UTC))
    el(feed, "updated", updated.astimezone(UTC).isoformat(timespec="seconds"))
    el(feed, "link", href=f"{base}/archive/feed.atom{query}", rel="self", type="application/atom+xml")
    el(feed, "link", href=f"{base}/archive/{query}", rel="alternate", type="text/html")
    author = el(feed, "author")
    el(author, "name", name)
    for sent in issues:
        entry = el(feed, "entry")
        el(entry, "id", _issue_url(settings, sent.slug))
        el(entry, "title", sent.title)
        el(entry, "updated", stamp(sent).astimezone(UTC).isoformat(timespec="seconds"))
        el(entry, "published", stamp(sent).astimezone(UTC).isoformat(timespec="seconds"))
        el(entry, "link", href=_issue_url(settings, sent.slug), rel="alternate", type="text/html")
        summary = sent.issue.preheader or getattr(sent.issue, "intro", "") or sent.subject
        el(entry, "summary", " ".join(summary.split()))
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))


async def feed(request: Request) -> Response:
    w = web(request)
    only = chosen_network(w, request)
    issues = await w.read(lambda s: sent_issues(s, w.cache))
    if only is not None:
        issues = [sent for _n, found in by_network(w, issues, only) for sent in found]
    return Response(atom_feed(issues, w.settings, only), media_type=ATOM_TYPE)


async def edition(request: Request) -> Response:
    """The full public edition of a sent issue."""
    w = web(request)
    slug = request.path_params["slug"]
    sent = await w.read(lambda s: sent_issue(s, w.cache, slug))
    if sent is None:
        raise HTTPException(404)
    return HTMLResponse(_edition(w, sent), headers=EDITION_HEADERS)


async def variant(request: Request) -> Response:
    """A stored variant, as its members got it, with the personal slots made neutral."""
    w = web(request)
    slug, key = request.path_params["slug"], request.path_params["key"]
    html = await w.read(lambda s: variant_html(s, slug, key))
    if html is None:
        raise HTTPException(404)
    return HTMLResponse(neutralise(html, w.settings), headers=EDITION_HEADERS)


async def links(request: Request) -> Response:
    w = web(request)
    return w.pages.message(
        request,
        "Your personal links",
        "This is a public copy of one of our emails, so its links to unsubscribe and to change your "
        "preferences are not yours. Use the links at the foot of the email you received: they work "
        "at once, with no login.",
        link=("/subscribe", "Not a member yet? Sign up"),
    )


routes = [
    Route("/archive/", index, methods=["GET"]),
    Route("/archive/feed.atom", feed, methods=["GET"]),
    Route("/archive/{slug}/", edition, methods=["GET"]),
    Route("/archive/{slug}/{key}", variant, methods=["GET"]),
    Route("/links", links, methods=["GET"]),
]


IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


async def campaign_file(request: Request) -> Response:
    """An image from a started campaign's folder (``{base_url}/files/{slug}/{name}``, as the mail links)."""
    from starlette.responses import FileResponse

    w = web(request)
    slug, name = request.path_params["slug"], request.path_params["name"]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in IMAGE_TYPES or "/" in name or "\\" in name or name.startswith("."):
        raise HTTPException(404)
    started = await w.read(lambda s: started_campaign(s, slug))
    folder = w.settings.path("campaigns", slug).resolve()
    path = (folder / name).resolve()
    if started is None or path.parent != folder or not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, media_type=IMAGE_TYPES[suffix], headers={"X-Content-Type-Options": "nosniff"})


routes.append(Route("/files/{slug}/{name}", campaign_file, methods=["GET"]))
