"""Previews: what a member (or a kind of member) would get, written as files the editor can open.

The slot markers are filled with sample values (the member's name, or "Alex Example", and ``#``
for the personal links). ``watch`` re-renders whenever the issue file or a template changes.

A preview of one member says when that member would not get the issue (``member_warnings``): they
are outside its audience, or suppressed (unsubscribed, bounced, complained, erased); the preview is
still written, since the editor may be checking what such a member would have seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from mailer.audience import networks
from mailer.audience.addresses import normalise
from mailer.audience.segments import compile_segment
from mailer.audience.shape import Shape
from mailer.audience.suppression import suppression_of
from mailer.compose import Loaded, Variant, VariantPlan, compose, compose_all, plan, relevant_interests
from mailer.errors import ConfigError, MailerError, UnknownName, suggest
from mailer.identity import issue_identity
from mailer.models import Member
from mailer.render import RenderedVariant, Renderer
from mailer.settings import Settings
from mailer.slots import fill_slots, greeting_for

SAMPLE_NAME = "Alex Example"
FORMATS = ("html", "text")


def sample_values(name: str | None = None, first_name: str | None = None) -> dict[str, str]:
    """Values for the slot markers in a preview: a name, the greeting (by ``first_name``; a
    sample's is "Alex") and ``#`` for the personal links."""
    first = first_name if first_name is not None else ("" if name else SAMPLE_NAME.split()[0])
    return {
        "name": name or SAMPLE_NAME,
        "greeting": greeting_for(first),
        "unsubscribe_url": "#",
        "preferences_url": "#",
        "rsvp_token": "",  # an RSVP link without a token opens the event's public page
    }


def preview_dir(settings: Settings, slug: str) -> Path:
    """Where previews go by default: ``<workspace>/preview/<slug>/``."""
    return settings.path("preview", slug)


def check_choice(shape: Shape, region: str | None, interests: Sequence[str]) -> None:
    """Raise ``UnknownName`` for a region or interest the lists do not have."""
    if region is not None and region not in shape.regions:
        raise UnknownName(
            f"no region {region!r}", field="region", hint=suggest(region, shape.regions, "regions")
        )
    for name in interests:
        if name not in shape.interests:
            raise UnknownName(
                f"no interest {name!r}", field="interest", hint=suggest(name, shape.interests, "interests")
            )


@dataclass(frozen=True)
class MemberChoice:
    """A member's name, region and interests, as a preview needs them."""

    email: str
    name: str
    region: str | None
    interests: frozenset[str]
    member_id: int = 0
    address_hash: str = ""
    first_name: str = ""


def find_member(session: Session, email: str) -> MemberChoice:
    """The member with this address; ``UnknownName`` if there is none."""
    address = normalise(email)
    member = session.scalars(select(Member).where(Member.email == address)).first()
    if member is None:
        raise UnknownName(
            f"no member {address!r}",
            field="member",
            hint="check the address, or preview by --region and --interest instead",
        )
    return MemberChoice(
        member.email,
        member.name,
        member.region.slug if member.region else None,
        frozenset(i.slug for i in member.interests),
        member.id,
        member.address_hash,
        member.first_name,
    )


def member_warnings(
    session: Session,
    shape: Shape,
    loaded: Loaded,
    who: MemberChoice,
    audience: str | None = None,
    settings: Settings | None = None,
) -> list[str]:
    """Why ``who`` would not get the issue, if they would not: suppressed, or outside the audience
    (``audience``, default the issue's); and whether they are in another network than the issue's.
    Empty when a send would reach them as one of the issue's own network."""
    expression = audience or loaded.issue.audience
    suppressed = suppression_of(session, who.address_hash)
    if suppressed is not None:
        when = f", {suppressed.created_at:%Y-%m-%d}" if suppressed.created_at else ""
        return [
            f"{who.email} is suppressed ({suppressed.reason}{when}): no issue is sent to them, "
            "whatever the audience; this preview shows what they would have got"
        ]
    warnings = []
    condition = compile_segment(expression, shape)
    in_audience = session.scalar(
        select(exists(select(Member.id).where(Member.id == who.member_id, condition)))
    )
    if not in_audience:
        warnings.append(
            f"{who.email} is not in the audience {expression!r} "
            f"({shape.label(who.region) if who.region in shape.regions else 'no region'}): "
            "a send of this issue will not reach them"
        )
    other = other_network(shape, loaded, who, settings)
    if other:
        warnings.append(other)
    return warnings


def other_network(
    shape: Shape, loaded: Loaded, who: MemberChoice, settings: Settings | None = None
) -> str | None:
    """The warning for a member whose region belongs to another network than the issue's (or to
    none), or None. A workspace without ``lists/networks.toml`` is one network: always None."""
    if not shape.networks:
        return None
    settings = settings or Settings()
    issue = loaded.issue
    try:
        network = networks.campaign_network(shape, settings, issue.network, audience=issue.audience)
    except ConfigError:
        return None  # the issue's own problem: `campaigns check` and the send report it
    # The network owning their region, None for none (``of_region``): the warning tells a member of
    # no network's region apart from one of another network (``member_network`` would call both
    # the organisation's).
    theirs = networks.of_region(shape, settings, who.region)
    if theirs is not None and theirs.slug == network.slug:
        return None
    where = shape.label(who.region) if who.region in shape.regions else "no region"
    if theirs is None:
        return (
            f"{who.email} ({where}) is in no network's regions; this issue is {network.name}'s: "
            "they get it only if its audience reaches them"
        )
    return (
        f"{who.email} is in the {theirs.name} ({where}); this issue is {network.name}'s: "
        f"it speaks as {network.name}, and their way out leaves {network.name}'s mail"
    )


def write_variant(
    renderer: Renderer,
    variant: Variant,
    loaded: Loaded,
    out_dir: Path,
    *,
    stem: str,
    formats: Sequence[str] = FORMATS,
    name: str | None = None,
    first_name: str | None = None,
) -> list[Path]:
    """Render ``variant`` and write ``<stem>.html`` and/or ``<stem>.txt``, slots filled with samples."""
    rendered = renderer.render(variant, loaded)
    return write_rendered(rendered, out_dir, stem=stem, formats=formats, name=name, first_name=first_name)


def write_rendered(
    rendered: RenderedVariant,
    out_dir: Path,
    *,
    stem: str,
    formats: Sequence[str] = FORMATS,
    name: str | None = None,
    first_name: str | None = None,
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    values = sample_values(name, first_name)
    paths = []
    if "html" in formats:
        path = out_dir / f"{stem}.html"
        path.write_text(fill_slots(rendered.html, values, html=True), encoding="utf-8")
        paths.append(path)
    if "text" in formats:
        path = out_dir / f"{stem}.txt"
        path.write_text(fill_slots(rendered.text, values, html=False), encoding="utf-8")
        paths.append(path)
    return paths


def write_index(
    renderer: Renderer,
    variant_plan: VariantPlan,
    loaded: Loaded,
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
) -> Path:
    """Render every variant of the plan to ``<key>.html``/``.txt`` and write ``index.html`` linking them."""
    rows = []
    for planned in variant_plan.variants:
        write_variant(renderer, planned.variant, loaded, out_dir, stem=planned.variant.key, formats=formats)
        rows.append(planned)
    html = renderer.template(
        "preview_index.html.j2",
        {
            "slug": loaded.slug,
            "title": loaded.issue.title,
            "audience": variant_plan.audience,
            "total": variant_plan.total,
            "variants": rows,
            "formats": list(formats),
        },
    )
    path = out_dir / "index.html"
    path.write_text(html, encoding="utf-8")
    return path


@dataclass(frozen=True)
class PreviewRequest:
    """What to preview: one member, a kind of member (region and interests), the full issue, or all."""

    member: str | None = None
    region: str | None = None
    interests: tuple[str, ...] = ()
    full: bool = False
    formats: tuple[str, ...] = FORMATS
    audience: str | None = None

    @property
    def index(self) -> bool:
        return not (self.member or self.region or self.interests or self.full)


@dataclass(frozen=True)
class PreviewResult:
    paths: list[Path]
    label: str
    variants: int
    warnings: tuple[str, ...] = ()


def preview(
    settings: Settings,
    shape: Shape,
    loaded: Loaded,
    request: PreviewRequest,
    out_dir: Path,
    session: Session | None = None,
) -> PreviewResult:
    """Write the preview ``request`` asks for into ``out_dir``. A member or the index needs ``session``."""
    loaded_issue = loaded.issue
    identity = issue_identity(shape, settings, loaded_issue.network, loaded_issue.audience, path=loaded.path)
    renderer = Renderer(settings, identity)
    check_choice(shape, request.region, request.interests)
    if request.full:
        variant = compose_all(loaded.issue)
        paths = write_variant(renderer, variant, loaded, out_dir, stem="all", formats=request.formats)
        return PreviewResult(paths, variant.label, 1)
    if request.member:
        if session is None:
            raise MailerError("previewing a member needs the database", field="member")
        who = find_member(session, request.member)
        warnings = member_warnings(session, shape, loaded, who, request.audience, settings)
        variant = compose(loaded.issue, shape, who.region, who.interests)
        stem = "member-" + variant.key
        paths = write_variant(
            renderer,
            variant,
            loaded,
            out_dir,
            stem=stem,
            formats=request.formats,
            name=who.name or None,
            first_name=who.first_name,
        )
        return PreviewResult(paths, f"{who.email}: {variant.label}", 1, tuple(warnings))
    if request.region or request.interests:
        chosen = frozenset(request.interests)
        variant = compose(loaded.issue, shape, request.region, chosen)
        paths = write_variant(renderer, variant, loaded, out_dir, stem=variant.key, formats=request.formats)
        ignored = sorted(chosen - relevant_interests(loaded.issue))
        note = f" (no item names {', '.join(ignored)})" if ignored else ""
        return PreviewResult(paths, variant.label + note, 1)
    if session is None:
        raise MailerError("an index of all variants needs the database", hint="or preview --all")
    variant_plan = plan(session, loaded, shape, request.audience)
    index = write_index(renderer, variant_plan, loaded, out_dir, formats=request.formats)
    return PreviewResult([index], f"{len(variant_plan.variants)} variants", len(variant_plan.variants))


# ---------------------------------------------------------------------------------------------
# Watching


def watched_files(settings: Settings, issue_path: Path, exclude: Path | None = None) -> list[Path]:
    """The issue file, its folder's other files, and every template (the workspace's and the defaults).

    Files below ``exclude`` (the preview's own output folder) are left out, so writing a preview
    never triggers another.
    """
    files = [p for p in issue_path.parent.iterdir() if p.is_file()] if issue_path.parent.is_dir() else []
    if issue_path not in files:
        files.append(issue_path)
    for folder in settings.template_folders:
        if folder.is_dir():
            files.extend(p for p in folder.rglob("*") if p.is_file())
    if exclude is not None:
        out = exclude.resolve()
        files = [p for p in files if p == issue_path or not p.resolve().is_relative_to(out)]
    return sorted(files)


def _snapshot(paths: Iterable[Path]) -> dict[Path, tuple[int, int]]:
    out = {}
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        out[p] = (st.st_mtime_ns, st.st_size)
    return out


def watch(
    files: Callable[[], list[Path]],
    rebuild: Callable[[], object],
    stop: threading.Event,
    *,
    interval: float = 0.3,
    on_error: Callable[[MailerError], None] | None = None,
) -> int:
    """Poll ``files()`` (mtime and size) every ``interval`` seconds and call ``rebuild`` on any change.

    Runs until ``stop`` is set; returns how many times it rebuilt. A ``MailerError`` from ``rebuild``
    (a broken issue file mid-edit) goes to ``on_error`` and watching goes on.
    """
    seen = _snapshot(files())
    rebuilt = 0
    while not stop.wait(interval):
        now = _snapshot(files())
        if now == seen:
            continue
        seen = now
        try:
            rebuild()
            rebuilt += 1
        except MailerError as exc:
            if on_error is None:
                raise
            on_error(exc)
    return rebuilt
