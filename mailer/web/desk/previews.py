"""Previews on the desk: what a member in a region with some interests, or a named member, gets.

- ``GET /desk/issues/{slug}/preview``: choose a region and interests, or a member by address; the
  variant's HTML in a sandboxed frame (``sandbox=""``) beside its plain text, at phone (375 px) or
  desktop (640 px: the email's 600 and its margins) width (a link switches, no JavaScript); and
  the list of the variants the
  audience gets, with their member counts, each a link to its preview.
- ``GET /desk/issues/{slug}/preview/frame``: the variant's HTML alone, for the frame, with a
  Content-Security-Policy that forbids scripts, forms and plugins (and ``sandbox``) whatever the
  issue holds; only the desk's own pages may frame it.

Editors, admins and approvers of the issue's network may preview it (an approver looks before
approving); everyone else gets 403. A member outside the issue's network is not shown (their
copy would show their name), except to an admin of every network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mailer import tokens
from mailer.audience.addresses import normalise
from mailer.audience.networks import Network
from mailer.compose import Variant, compose, compose_all, relevant_interests
from mailer.desk import previews as desk_previews
from mailer.desk.issuefile import IssueFile
from mailer.desk.issueform import region_hint
from mailer.errors import ContentError, InvalidInput, MailerError, TokenError
from mailer.identity import issue_identity
from mailer.issue.load import LoadedIssue, load_campaign
from mailer.preview import sample_values
from mailer.render import Renderer
from mailer.slots import fill_slots
from mailer.web.context import Web, web
from mailer.web.desk.common import Answered, Signed, desk_form, desk_page, forbidden, message, page, redirect
from mailer.web.desk.compose import allowed, network_of
from mailer.web.forms import text
from mailer.web.pages import PAGE_HEADERS

WIDTHS = {"phone": 375, "desktop": 640}
"""The frame's width: a phone's screen, and a desktop mail reader's (the email is 600 px wide)."""
FRAME_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; font-src https: data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)
PAGE_POLICY = PAGE_HEADERS["Content-Security-Policy"] + "; frame-src 'self'"
CACHE_SIZE = 16


@dataclass(frozen=True)
class Choice:
    """What to preview, from the query: a member (``who``: a signed token of their id, so that
    their address never sits in a URL or an access log: docs/data.md, Audit), or a region and
    interests. ``member`` is an address looked up by POST, never read from a query."""

    who: str = ""
    region: str = ""
    interests: tuple[str, ...] = ()
    width: str = "phone"
    member: str = ""

    @classmethod
    def of(cls, request: Request) -> Choice:
        q = request.query_params
        interests = tuple(sorted({i.strip()[:100] for i in q.getlist("interest") if i.strip()}))[:50]
        width = q.get("width", "phone")
        return cls(
            who=q.get("who", "").strip()[:64],
            region=q.get("region", "").strip()[:100],
            interests=interests,
            width=width if width in WIDTHS else "phone",
        )

    def url_query(self, **change: Any) -> str:
        values = {
            "who": self.who,
            "region": self.region,
            "interest": list(self.interests),
            "width": self.width,
        }
        values.update(change)
        pairs = [(k, v) for k, vs in values.items() for v in (vs if isinstance(vs, list) else [vs]) if v]
        return urlencode(pairs)


@dataclass(frozen=True)
class Shown:
    label: str
    html: str
    text: str
    warnings: tuple[str, ...] = ()


class Refused(Exception):
    """A choice that cannot be previewed; ``args[0]`` says why, for the page."""


async def _issue(request: Request, signed: Signed) -> tuple[LoadedIssue | None, IssueFile, Network | None]:
    """The issue of the URL (loaded, None when it has errors), its file and network, for someone
    who may preview it; else the refusal."""
    w = web(request)
    slug = request.path_params.get("slug", "")
    try:
        opened = await run_in_threadpool(IssueFile.open, w.settings.workspace, slug)
        data = opened.data()
    except MailerError:
        raise Answered(
            message(request, "Page not found", "There is no issue of that name.", signed=signed, status=404)
        ) from None
    network = network_of(w, data)
    if not allowed(signed.person, w, network, "compose", "approve"):
        raise Answered(forbidden(request, signed))
    try:
        loaded: LoadedIssue | None = await run_in_threadpool(
            load_campaign, w.settings.workspace, slug, w.shape
        )
    except ContentError:
        loaded = None
    return loaded, opened, network


async def _render(
    w: Web, signed: Signed, loaded: LoadedIssue, network: Network | None, choice: Choice, version: str
) -> Shown:
    """The chosen variant, rendered with sample values in its slots (remembered per file version)."""
    name: str | None = None
    first_name: str | None = None
    warnings: list[str] = []
    if choice.member or choice.who:
        address = choice.member or await _named(w, choice.who)
        picked = await w.read(
            lambda s: desk_previews.member(
                s,
                w.settings,
                w.shape,
                loaded,
                address,
                network=network,
                any_network=signed.person.admin_of_all,
            )
        )
        if picked is None:
            raise Refused("No member of this network has that address.")
        who, warnings = picked
        variant: Variant = compose(loaded.issue, w.shape, who.region, who.interests)
        label, name, first_name = f"{who.email}: {variant.label}", who.name or None, who.first_name
    elif choice.region or choice.interests:
        allowed_regions = set(region_hint(w.shape, network).split(", "))
        if choice.region and choice.region not in allowed_regions:
            raise Refused("Choose one of this network's regions.")
        unknown = [i for i in choice.interests if i not in w.shape.interests]
        if unknown:
            raise Refused("Choose interests from the list.")
        variant = compose(loaded.issue, w.shape, choice.region or None, frozenset(choice.interests))
        label = variant.label
    else:
        variant = compose_all(loaded.issue)
        label = variant.label
    cache: dict[Any, Shown] = w.cache.setdefault("desk-previews", {})
    key = (loaded.slug, version, variant.key, name, network.slug if network else "")
    if key in cache:
        found = cache[key]
        return Shown(label, found.html, found.text, tuple(warnings))

    def render() -> Shown:
        identity = issue_identity(
            w.shape, w.settings, loaded.issue.network, loaded.issue.audience, path=loaded.path
        )
        rendered = Renderer(w.settings, identity).render(variant, loaded)
        values = sample_values(name, first_name)
        return Shown(
            label,
            fill_slots(rendered.html, values, html=True),
            fill_slots(rendered.text, values, html=False),
            tuple(warnings),
        )

    shown = await run_in_threadpool(render)
    if len(cache) >= CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = shown
    return shown


async def _named(w: Web, who: str) -> str:
    """The address of the member a preview link's ``who`` token names; ``Refused`` when it is not
    a valid one (tampered, or older than a day)."""
    try:
        member_id = tokens.verify(who, "desk-member", keys=w.keys, max_age=timedelta(days=1)).member_id
    except TokenError:
        raise Refused("This preview link is out of date: look the member up again.") from None
    address = await w.read(lambda s: desk_previews.member_address(s, member_id))
    if address is None:
        raise Refused("No member of this network has that address.")
    return address


@desk_form
async def preview_lookup(request: Request, form: FormData, signed: Signed) -> Response:
    """A member looked up by address (posted, so it stays out of URLs and logs): recorded in the
    audit log, then shown by a link that names them with a signed token."""
    loaded, opened, network = await _issue(request, signed)
    w = web(request)
    width = text(form, "width", 20)
    given = text(form, "member", 320).strip()
    try:
        address = normalise(given)
    except InvalidInput:
        return await _page(request, signed, Choice(member=given, width=width if width in WIDTHS else "phone"))
    member_id = await w.write(
        lambda s: desk_previews.looked_up(s, address, by=signed.person.id, now=w.clock())
    )
    choice = Choice(member=address, width=width if width in WIDTHS else "phone")
    if member_id is None or loaded is None:
        return await _page(request, signed, choice)
    theirs = await w.read(
        lambda s: desk_previews.member(
            s, w.settings, w.shape, loaded, address, network=network, any_network=signed.person.admin_of_all
        )
    )
    if theirs is None:  # outside this network: the same answer as nobody's address
        return await _page(request, signed, choice)
    who = tokens.sign("desk-member", member_id, keys=w.keys, now=w.clock())
    return redirect(f"/desk/issues/{opened.slug}/preview?{Choice(who=who, width=choice.width).url_query()}")


@desk_page
async def preview_page(request: Request, signed: Signed) -> Response:
    return await _page(request, signed, Choice.of(request))


async def _page(request: Request, signed: Signed, choice: Choice) -> Response:
    got = await _issue(request, signed)
    loaded, opened, network = got
    w = web(request)
    slug = opened.slug
    if loaded is None:
        return message(
            request,
            "Fix the issue first",
            "The issue has errors, so it cannot be previewed yet. Its page shows each error at its field.",
            signed=signed,
            status=409,
            link=(f"/desk/issues/{slug}", "Back to the issue"),
        )
    refusal = ""
    shown: Shown | None = None
    try:
        shown = await _render(w, signed, loaded, network, choice, opened.version)
    except Refused as exc:
        refusal = str(exc.args[0])
    except MailerError as exc:
        refusal = exc.message
    variants: list[dict[str, Any]] = [
        {
            "label": v.label,
            "members": v.members,
            "query": Choice(region=v.region, interests=v.interests, width=choice.width).url_query(),
        }
        for v in await w.read(lambda s: desk_previews.audience(s, w.shape, loaded))
    ]
    total = sum(v["members"] for v in variants)
    regions = [r for r in region_hint(w.shape, network).split(", ") if r]
    context = {
        "title": f"Preview: {loaded.issue.title}",
        "slug": slug,
        "choice": choice,
        "shown": shown,
        "refusal": refusal,
        "frame": f"/desk/issues/{slug}/preview/frame?{choice.url_query()}",
        "width": WIDTHS[choice.width],
        "other_width": "desktop" if choice.width == "phone" else "phone",
        "other_query": choice.url_query(width="desktop" if choice.width == "phone" else "phone"),
        "regions": [(r, w.shape.label(r)) for r in regions],
        "interests": sorted(relevant_interests(loaded.issue)),
        "variants": variants,
        "total": total,
    }
    return page(
        request,
        "preview.html",
        context,
        signed=signed,
        network=network,
        status=400 if refusal else 200,
        headers={"Content-Security-Policy": PAGE_POLICY},
    )


@desk_page
async def preview_frame(request: Request, signed: Signed) -> Response:
    got = await _issue(request, signed)
    loaded, opened, network = got
    headers = {**PAGE_HEADERS, "Content-Security-Policy": FRAME_POLICY, "X-Frame-Options": "SAMEORIGIN"}
    if loaded is None:
        return HTMLResponse("<p>The issue has errors: fix them first.</p>", status_code=409, headers=headers)
    try:
        shown = await _render(web(request), signed, loaded, network, Choice.of(request), opened.version)
    except (Refused, MailerError):
        return HTMLResponse("<p>Nothing to show for this choice.</p>", status_code=400, headers=headers)
    return HTMLResponse(shown.html, headers=headers)


routes = [
    Route("/desk/issues/{slug}/preview", preview_page, methods=["GET"]),
    Route("/desk/issues/{slug}/preview", preview_lookup, methods=["POST"]),
    Route("/desk/issues/{slug}/preview/frame", preview_frame, methods=["GET"]),
]
