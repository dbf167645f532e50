"""Checking a campaign: ``mailer campaigns check`` reports every problem instead of raising.

``audience_warnings`` are the warnings that need the members (an item no member of the audience
would see, an audience with no members, members whose address mailer cannot send to), and
``network_warnings`` one for an audience that reaches members of other networks than the issue's.
``check_campaign`` loads the issue and gathers, in one pass, its errors, the file's warnings
(``mailer.issue.lint``: they run on what was read even when there are errors), the network's
(``mailer.issue.lint.network_problems``: an unknown or ambiguous network is an error, regions
outside it a warning; they too run on what was read) and, when the file is valid, these into a
``CheckResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mailer.errors import ContentError, Problem
from mailer.issue.lint import network_problems
from mailer.issue.load import LoadedIssue, campaign_path, load_campaign
from mailer.issue.schema import Newsletter
from mailer.issue.yaml_loader import Lines, Loc, field_name, read_yaml

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import Session

    from mailer.audience.shape import Shape
    from mailer.db import Database
    from mailer.settings import Settings


def audience_warnings(
    session: Session, loaded: LoadedIssue, shape: Shape, network: str = ""
) -> list[Problem]:
    """Warnings that need the members: an item (or calendar entry, or an event targeted on its own)
    that no member of the issue's audience would see, and an audience with no members at all.

    A member sees an item when the item's regions are empty or contain the member's region or an
    ancestor of it, and the item's interests are empty or share one with the member's.
    """
    from sqlalchemy import exists, or_, select

    from mailer.audience.mailable import reachable
    from mailer.audience.segments import compile_segment
    from mailer.models import Interest, Member, MemberInterest, Region

    issue = loaded.issue
    # Who would really be mailed (as a send counts them): not those gone from ``network``'s mail.
    audience = reachable(compile_segment(issue.audience, shape), network)

    def any_member(*conditions: ColumnElement[bool]) -> bool:
        # select(Member.id) names the table: for `audience: all` the conditions alone do not
        # (`all` compiles to TRUE and the suppression check is correlated), and a bare
        # EXISTS(… WHERE …) would have no FROM at all.
        return session.scalar(select(exists(select(Member.id).where(*conditions)))) is True

    if not any_member(audience):
        return [
            loaded.problem(
                f"no member is in the audience {issue.audience!r}",
                "audience",
                hint="check the audience, or import the members first (mailer lists import)",
            )
        ]
    out: list[Problem] = unmailable_warnings(session, loaded, audience)
    if not isinstance(issue, Newsletter):  # an alert, or a digest (its events come from the calendar)
        return out

    def anyone(regions: list[str], interests: list[str]) -> bool:
        conditions = [audience]
        if regions:
            below = select(Region.id).where(or_(*(Region.path.like(shape.path(r) + "%") for r in regions)))
            conditions.append(Member.region_id.in_(below))
        if interests:
            chosen = select(Interest.id).where(Interest.slug.in_(interests))
            conditions.append(
                exists().where(MemberInterest.member_id == Member.id, MemberInterest.interest_id.in_(chosen))
            )
        return any_member(*conditions)

    def targeting(regions: list[str], interests: list[str]) -> str:
        parts = [
            f"regions {', '.join(regions)}" if regions else "",
            f"interests {', '.join(interests)}" if interests else "",
        ]
        return " and ".join(p for p in parts if p)

    hint = "check its regions and interests; it may be fine if members are still to be imported"
    for i, item in enumerate(issue.items):
        if not anyone(item.regions, item.interests):
            out.append(
                loaded.problem(
                    f"no member in the audience would see item {item.id!r} "
                    f"({targeting(item.regions, item.interests)})",
                    f"items[{i}]",
                    hint=hint,
                )
            )
            continue
        for j, e in enumerate(item.events):
            if e.regions is None and e.interests is None:
                continue
            regions = item.regions if e.regions is None else e.regions
            interests = item.interests if e.interests is None else e.interests
            if not anyone(regions, interests):
                out.append(
                    loaded.problem(
                        f"no member in the audience would see this event ({targeting(regions, interests)})",
                        f"items[{i}].events[{j}]",
                        hint=hint,
                    )
                )
    for j, e in enumerate(issue.calendar):
        regions, interests = e.regions or [], e.interests or []
        if not anyone(regions, interests):
            out.append(
                loaded.problem(
                    "no member in the audience would see this calendar entry "
                    f"({targeting(regions, interests)})",
                    f"calendar[{j}]",
                    hint=hint,
                )
            )
    return out


#: How many unmailable addresses a warning names; the rest are counted.
UNMAILABLE_SHOWN = 3


def unmailable_warnings(
    session: Session, loaded: LoadedIssue, audience: ColumnElement[bool]
) -> list[Problem]:
    """A warning when members of the audience have an address mailer cannot send to: one whose local
    part is not ASCII (it would need SMTPUTF8, which mailer does not use; the import and the sign-up
    form refuse such addresses, but a database filled by an older version may hold some). Every send
    skips them, so the editor learns it here, before sending, with the first few named."""
    from sqlalchemy import LargeBinary, cast, func, select

    from mailer.models import Member

    if session.get_bind().dialect.name == "postgresql":
        non_ascii = func.octet_length(Member.email) != func.length(Member.email)
    else:  # SQLite's length() counts characters, and bytes of a BLOB
        non_ascii = func.length(cast(Member.email, LargeBinary)) != func.length(Member.email)
    query = select(Member.email).where(audience, non_ascii).order_by(Member.id)
    shown = list(session.scalars(query.limit(UNMAILABLE_SHOWN)))
    if not shown:
        return []
    count = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    names = ", ".join(repr(email if len(email) <= 80 else email[:80] + "…") for email in shown)
    more = f" and {count - len(shown)} more" if count > len(shown) else ""
    members = "1 member" if count == 1 else f"{count} members"
    return [
        loaded.problem(
            f"{members} of the audience cannot be mailed and will be skipped: {names}{more} "
            "(a non-ASCII local part needs SMTPUTF8, which mailer does not use)",
            "audience",
            hint="import an ASCII address for each, then remove the old one with "
            "`mailer members forget ADDRESS`",
        )
    ]


def network_warnings(
    session: Session, loaded: LoadedIssue, shape: Shape, settings: Settings | None
) -> list[Problem]:
    """A warning when the audience reaches members of networks other than the one the issue speaks
    as: an interest-only alert (``interest:refugees``) in a workspace of several networks goes to
    every network's members, each mailed as this one (its From, footer and unsubscribe). An audience
    that names a region outside the network is warned about already (``lint.network_problems``)."""
    from sqlalchemy import func, select

    from mailer.audience import networks
    from mailer.audience.segments import compile_segment
    from mailer.errors import ConfigError
    from mailer.models import Member, Region
    from mailer.settings import Settings

    if len(shape.networks) < 2:
        return []
    issue = loaded.issue
    # With networks declared, settings only name the default network, which none of these use.
    settings = settings if settings is not None else Settings()
    try:
        network = networks.campaign_network(shape, settings, issue.network, audience=issue.audience)
    except ConfigError:
        return []  # an unknown or ambiguous network is an error of its own (network_problems)
    for region in networks.audience_regions(issue.audience, shape):
        owner = networks.of_region(shape, settings, region)
        if owner is None or owner.slug != network.slug:
            return []  # the audience names a region outside the network: lint warns about it
    rows = session.execute(
        select(Region.slug, func.count(Member.id))
        .select_from(Member)
        .outerjoin(Region, Region.id == Member.region_id)
        .where(compile_segment(issue.audience, shape))
        .group_by(Region.slug)
    )
    reached: dict[str, int] = {}
    for region, count in rows:
        owner = networks.of_region(shape, settings, region)
        name = owner.slug if owner is not None else "no network"
        reached[name] = reached.get(name, 0) + count
    others = [slug for slug in reached if slug not in (network.slug, "no network")]
    if not others:
        return []
    order = [n.slug for n in shape.networks.values()] + ["no network"]
    counts = ", ".join(f"{slug} {reached[slug]:,}" for slug in order if slug in reached)
    count = len([slug for slug in reached if slug != "no network"])
    regions = sorted(network.regions)
    narrow = (
        f"region:{regions[0]}"
        if len(regions) == 1
        else "(" + " or ".join(f"region:{r}" for r in regions) + ")"
    )
    return [
        loaded.problem(
            f"this audience reaches members of {count} networks ({counts}) but the message speaks as "
            f"{network.name}",
            "audience",
            hint=f"narrow it with `and {narrow}`, or name with `network:` the network it is for",
        )
    ]


@dataclass(frozen=True)
class CheckResult:
    """What ``mailer campaigns check`` found: errors (the issue cannot be sent), warnings, notes."""

    slug: str
    path: Path
    errors: list[Problem]
    warnings: list[Problem]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_campaign(
    workspace: Path,
    slug: str,
    shape: Shape | None,
    database: Database | None,
    settings: Settings | None = None,
) -> CheckResult:
    """Check ``campaigns/<slug>/issue.yaml`` and report every problem instead of raising.

    Every error and every warning comes back at once: a file with errors still gets the warnings of
    what could be read, and the network's problems (an unknown or ambiguous network; regions outside
    it). With a database and a valid file, the audience warnings run too (an item no member would
    see); otherwise a note says they did not. ``settings`` name the network of a workspace without
    ``lists/networks.toml``. Raises ``UnknownName`` only if there is no such campaign.
    """
    path = campaign_path(workspace, slug)
    notes: list[str] = []
    try:
        loaded = load_campaign(workspace, slug, shape)
    except ContentError as exc:
        if database is not None and shape is not None:
            notes.append("the audience was not checked against the members: fix the errors first")
        errors, warnings = _with_network(path, shape, settings, exc.problems, exc.warnings)
        return CheckResult(slug, path, errors, warnings, notes)
    errors, warnings = _with_network(path, shape, settings, [], list(loaded.warnings))
    if errors:
        notes.append("the audience was not checked against the members: fix the errors first")
    elif database is None or shape is None:
        notes.append("the audience was not checked against the members: no database")
    else:
        with database.session() as session:
            network = _network_slug(loaded, shape, settings)
            warnings.extend(audience_warnings(session, loaded, shape, network))
            warnings.extend(network_warnings(session, loaded, shape, settings))
    warnings.sort(key=lambda p: p.line or 0)
    return CheckResult(slug, path, errors, warnings, notes)


def _with_column(problem: Problem, lines: Lines) -> Problem:
    """An error at a field of the file with the column of its value (of its key when the value
    starts on a line of its own)."""
    if problem.severity != "error" or problem.field is None or problem.column is not None:
        return problem
    at = next((at for loc, at in lines.items() if loc and field_name(loc) == problem.field), None)
    if at is None or at.line != problem.line:
        return problem
    return replace(problem, column=at.value_column if at.value_line == at.line else at.column)


def _network_slug(loaded: LoadedIssue, shape: Shape, settings: Settings | None) -> str:
    """The slug of the network the issue speaks as, as a send names it ("" for a workspace's only
    network, or when that is unknown or ambiguous: an error of its own)."""
    from mailer.audience import networks
    from mailer.errors import ConfigError
    from mailer.settings import Settings

    if not shape.networks:
        return ""
    try:
        issue = loaded.issue
        return networks.campaign_network(
            shape, settings or Settings(), issue.network, audience=issue.audience
        ).slug
    except ConfigError:
        return ""


def _with_network(
    path: Path, shape: Shape | None, settings: Settings | None, errors: list[Problem], warnings: list[Problem]
) -> tuple[list[Problem], list[Problem]]:
    """``errors`` and ``warnings`` with the network's problems of the file as read added."""
    if shape is None or any(p.field is None for p in errors):
        return errors, warnings  # a file refused whole (its syntax, its size) is not read again
    problems: list[Problem] = []
    try:
        data, lines = read_yaml(path.read_text(encoding="utf-8"), path, problems)
    except (OSError, UnicodeDecodeError):
        return errors, warnings
    if not isinstance(data, dict):
        return errors, warnings

    def locate(loc: Loc) -> int | None:
        while loc not in lines and loc:
            loc = loc[:-1]
        return lines[loc][0] if loc in lines else None

    skip = frozenset(p.field for p in errors if p.field)
    found = [_with_column(p, lines) for p in network_problems(data, path, locate, shape, settings, skip=skip)]
    errors = sorted(
        [*errors, *(p for p in found if p.severity == "error")], key=lambda p: (p.line or 0, p.field or "")
    )
    warnings = sorted([*warnings, *(p for p in found if p.severity == "warning")], key=lambda p: p.line or 0)
    return errors, warnings


__all__ = ["CheckResult", "audience_warnings", "check_campaign", "network_warnings", "unmailable_warnings"]
