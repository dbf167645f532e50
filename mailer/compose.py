"""Composing: which items, highlights and calendar entries a member sees (docs/architecture.md, Variants).
A member sees an item when the item's regions are empty or contain the member's region or an ancestor of it,
and the item's interests are empty or share one with the member's. An event follows the same rule with its
own regions and interests, inheriting its item's when it sets none, and shows only when its item shows;
calendar-only entries follow the rule with their own (empty: everyone). Events over before the issue's date
are left out of the calendar (one over several days shows until its last day); the calendar is sorted by
start, an all-day event by its first day. Highlights and the calendar follow the items a member sees.

Members who see the same items and calendar entries share one ``Variant`` (its ``key`` is a short
hash of what is visible), so rendering runs once per variant. ``plan`` groups an audience's members
by (region, interests) in SQL and maps each group to its variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import BigInteger, ColumnElement, Subquery, case, func, literal, select
from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.issue.schema import Digest, Event, Issue, Item, Newsletter
from mailer.models import Interest, Member, MemberInterest, Region

if TYPE_CHECKING:
    from pathlib import Path


class Loaded(Protocol):
    """What ``plan`` and the renderer need of a loaded issue (``mailer.issue.LoadedIssue``)."""

    @property
    def slug(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def issue(self) -> Issue: ...


@dataclass(frozen=True)
class CalendarEntry:
    """A dated entry of the calendar: an item's event, or a calendar-only entry (``item_id`` None).

    ``key`` is unique within the issue and stable: ``{item_id}-{n}`` for the item's n-th event
    (1-based), ``calendar-{n}`` for the n-th calendar-only entry. It names the entry's UID.
    """

    key: str
    event: Event
    item_id: str | None = None
    uid: str | None = None  # its own UID, when it has one from elsewhere (a digest's: the event's)

    @property
    def sort_key(self) -> tuple[datetime, bool]:
        # By date and time; an all-day entry before the timed ones of its day.
        return (self.event.wall_start, not self.event.all_day)


@dataclass(frozen=True)
class Highlight:
    item_id: str
    text: str


@dataclass(frozen=True)
class Variant:
    """What one group of members sees: items in the editor's order, their highlights, the calendar."""

    key: str
    label: str
    items: tuple[Item, ...]
    highlights: tuple[Highlight, ...]
    calendar: tuple[CalendarEntry, ...]

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items)


def highlight_of(item: Item) -> str | None:
    """The item's line in the highlights, or None for a report with no highlight."""
    value: object = item.highlight
    return value if isinstance(value, str) and value.strip() else None


def calendar_entries(issue: Issue) -> list[CalendarEntry]:
    """Every calendar entry of the issue, in the editor's order, with its key. A digest's entries
    are the events its run found, each keyed by its own UID (``Digest.calendar_uids``)."""
    if isinstance(issue, Digest):
        pairs = zip(issue.calendar_uids, issue.calendar, strict=True)
        return [CalendarEntry(uid, event, uid=uid) for uid, event in pairs]
    if not isinstance(issue, Newsletter):
        return []
    out = [
        CalendarEntry(f"{item.id}-{n}", event, item.id)
        for item in issue.items
        for n, event in enumerate(item.events, 1)
    ]
    out.extend(CalendarEntry(f"calendar-{n}", event) for n, event in enumerate(issue.calendar, 1))
    return out


def relevant_interests(issue: Issue) -> frozenset[str]:
    """Every interest the issue's items, events and calendar entries name: only these decide variants."""
    return _named(issue, "interests")


def mentioned_regions(issue: Issue) -> frozenset[str]:
    """Every region the issue's items, events and calendar entries name: of a member's region and
    its ancestors, only these decide what the member sees."""
    return _named(issue, "regions")


def _named(issue: Issue, field: str) -> frozenset[str]:
    """The union of ``field`` (``interests`` or ``regions``) over a newsletter's items, their events
    and its calendar; nothing for an alert."""
    if isinstance(issue, Digest):
        return frozenset(name for event in issue.calendar for name in getattr(event, field) or ())
    if not isinstance(issue, Newsletter):
        return frozenset()
    names: set[str] = set()
    for item in issue.items:
        names.update(getattr(item, field))
        for event in item.events:
            names.update(getattr(event, field) or ())
    for event in issue.calendar:
        names.update(getattr(event, field) or ())
    return frozenset(names)


def _is_past(event: Event, today: date) -> bool:
    """Past once its last day is over: an event over several days shows until it ends. A cancelled
    event (``cancelled: true``) is left out like a past one."""
    return event.last_day < today or event.cancelled


def _matches(
    regions: Sequence[str], interests: Sequence[str], seen_regions: frozenset[str], member: frozenset[str]
) -> bool:
    region_ok = not regions or any(r in seen_regions for r in regions)
    return region_ok and (not interests or any(i in member for i in interests))


def _key(kind: str, item_ids: Iterable[str], entry_keys: Iterable[str]) -> str:
    text = kind + "|" + ",".join(item_ids) + "|" + ",".join(entry_keys)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def variant_label(shape: Shape, region: str | None, interests: Iterable[str]) -> str:
    """``Kent · refugees``: the region's name and the interests, for people."""
    where = shape.regions[region].name if region in shape.regions else (region or "no region")
    chosen = sorted(interests)
    return f"{where} · {', '.join(chosen)}" if chosen else f"{where} · no interests"


def _variant(issue: Issue, items: list[Item], entries: list[CalendarEntry], label: str) -> Variant:
    entries = sorted(entries, key=lambda e: e.sort_key)
    highlights = tuple(Highlight(i.id, h) for i in items if (h := highlight_of(i)) is not None)
    key = _key(issue.kind, (i.id for i in items), (e.key for e in entries))
    return Variant(key, label, tuple(items), highlights, tuple(entries))


def compose(issue: Issue, shape: Shape, region: str | None, interests: frozenset[str]) -> Variant:
    """The variant a member in ``region`` (None: no region) with ``interests`` sees."""
    seen = frozenset(shape.ancestors(region)) if region in shape.regions else frozenset()
    label = variant_label(shape, region, interests)
    if isinstance(issue, Digest):
        return digest_variant(issue, seen, interests, label)
    if not isinstance(issue, Newsletter):
        return _variant(issue, [], [], label)
    items = [i for i in issue.items if _matches(i.regions, i.interests, seen, interests)]
    shown = {i.id: i for i in items}
    entries = []
    for entry in calendar_entries(issue):
        if _is_past(entry.event, issue.date):
            continue
        item = shown.get(entry.item_id) if entry.item_id is not None else None
        if entry.item_id is not None and item is None:
            continue
        ev = entry.event
        regions = ev.regions if ev.regions is not None else (item.regions if item else [])
        wanted = ev.interests if ev.interests is not None else (item.interests if item else [])
        if _matches(regions, wanted, seen, interests):
            entries.append(entry)
    return _variant(issue, items, entries, label)


def digest_variant(issue: Digest, seen: frozenset[str], interests: frozenset[str], label: str) -> Variant:
    """A digest's variant: the events of its run that a member whose region and its ancestors are
    ``seen``, with ``interests``, would see (an event's regions and interests are its own, resolved
    from its item when the run found it). None at all is a variant with an empty calendar: the
    members who would get it get no digest (``mailer.events.digest``)."""
    entries = [
        entry
        for entry in calendar_entries(issue)
        if not _is_past(entry.event, issue.date)
        and _matches(entry.event.regions or [], entry.event.interests or [], seen, interests)
    ]
    return _variant(issue, [], entries, label)


def compose_all(issue: Issue) -> Variant:
    """The editor's full issue: every item, every highlight, every calendar entry not yet past."""
    if isinstance(issue, Digest):
        entries = [e for e in calendar_entries(issue) if not _is_past(e.event, issue.date)]
        return _variant(issue, [], entries, "Every event")
    if not isinstance(issue, Newsletter):
        return _variant(issue, [], [], "Full issue")
    entries = [e for e in calendar_entries(issue) if not _is_past(e.event, issue.date)]
    return _variant(issue, list(issue.items), entries, "Full issue (every item)")


# ---------------------------------------------------------------------------------------------
# Planning a send: the audience's members grouped by what they see


@dataclass(frozen=True)
class Group:
    """Members of one region with one set of (relevant) interests, and the variant they get."""

    region: str | None
    interests: frozenset[str]
    members: int
    variant_key: str


@dataclass
class PlannedVariant:
    variant: Variant
    members: int = 0
    groups: list[Group] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The largest group's label, and how many other groups share this variant."""
        others = len(self.groups) - 1
        if others <= 0:
            return self.variant.label
        return f"{self.variant.label} and {others} more group{'s' if others > 1 else ''}"


def _parse_interests(text: str | None) -> frozenset[str]:
    return frozenset(s for s in (text or "").split(",") if s)


@dataclass
class VariantPlan:
    """The distinct variants an audience gets, with member counts; ``recipients`` streams who gets which.

    ``variants`` is ordered by number of members, most first, then by key.
    """

    slug: str
    audience: str
    issue: Issue
    shape: Shape
    condition: ColumnElement[bool]
    variants: list[PlannedVariant]

    @property
    def total(self) -> int:
        return sum(v.members for v in self.variants)

    def variant(self, key: str) -> Variant:
        for planned in self.variants:
            if planned.variant.key == key:
                return planned.variant
        raise KeyError(key)

    def variant_for(self, region: str | None, interests: frozenset[str]) -> Variant:
        """The variant of a (region, interests) group; one that appeared after planning is added."""
        interests = interests & relevant_interests(self.issue)
        for planned in self.variants:
            for group in planned.groups:
                if group.region == region and group.interests == interests:
                    return planned.variant
        variant = compose(self.issue, self.shape, region, interests)
        for planned in self.variants:
            if planned.variant.key == variant.key:
                planned.groups.append(Group(region, interests, 0, variant.key))
                return planned.variant
        self.variants.append(PlannedVariant(variant, 0, [Group(region, interests, 0, variant.key)]))
        return variant

    def recipients(self, session: Session, chunk_size: int = 5000) -> Iterator[list[tuple[int, str]]]:
        """(member_id, variant_key) of every member of the audience, in id order, ``chunk_size`` at a time.

        Two plain queries per chunk (:func:`read_members`), never ORM objects.
        """
        by_group: dict[tuple[str | None, frozenset[str]], str] = {}
        relevant = relevant_interests(self.issue)
        for chunk in read_members(session, self.condition, relevant, chunk_size=chunk_size):
            out = []
            for m in chunk:
                group = (m.region, m.interests)
                key = by_group.get(group)
                if key is None:
                    key = by_group[group] = self.variant_for(*group).key
                out.append((m.id, key))
            yield out


@dataclass(frozen=True, slots=True)
class MemberRead:
    """One member as variants see them: home region (slug and id) and the relevant interests chosen."""

    id: int
    region: str | None
    region_id: int | None
    interests: frozenset[str]


def read_members(
    session: Session,
    condition: ColumnElement[bool],
    relevant: Iterable[str],
    *,
    chunk_size: int = 5000,
    limit: int | None = None,
) -> Iterator[list[MemberRead]]:
    """The members matching ``condition`` in id order, ``chunk_size`` at a time (at most ``limit``),
    each with the ``relevant`` interests they chose: two plain queries per chunk (members, then
    their interests), never ORM objects. Pages by id, so a caller may write rows for a chunk (say,
    their deliveries) before asking for the next."""
    relevant = sorted(relevant)
    last_id, left = 0, limit
    while left is None or left > 0:
        size = chunk_size if left is None else min(chunk_size, left)
        rows = session.execute(
            select(Member.id, Region.slug, Member.region_id)
            .outerjoin(Region, Member.region_id == Region.id)
            .where(condition, Member.id > last_id)
            .order_by(Member.id)
            .limit(size)
        ).all()
        if not rows:
            return
        first, last_id = rows[0][0], rows[-1][0]
        chosen: dict[int, set[str]] = {}
        if relevant:
            for member_id, slug in session.execute(
                select(MemberInterest.member_id, Interest.slug)
                .join(Interest, Interest.id == MemberInterest.interest_id)
                .where(MemberInterest.member_id.between(first, last_id), Interest.slug.in_(relevant))
            ):
                chosen.setdefault(member_id, set()).add(slug)
        yield [MemberRead(m, slug, rid, frozenset(chosen.get(m, ()))) for m, slug, rid in rows]
        if left is not None:
            left -= len(rows)
        if len(rows) < size:
            return


#: Up to this many interests that decide variants, a member's are one integer: a bit each.
MASK_BITS = 62


def interest_bits(relevant: Iterable[str]) -> dict[str, int]:
    """The bit of each interest that decides variants (by slug, in slug order): a member's relevant
    interests are the sum of their bits (``member_masks``)."""
    return {slug: 1 << i for i, slug in enumerate(sorted(relevant))}


def member_masks(session: Session, condition: ColumnElement[bool], bits: dict[str, int]) -> Subquery:
    """One row per member matching ``condition``: ``member_id``, ``region_id`` and ``mask``, the sum
    of the ``bits`` of the interests they chose (0: none of them).

    One pass: members joined to all their interests and grouped by member, each interest weighed by
    a CASE (an interest that decides nothing weighs 0). Looking up each relevant interest of each
    member (``interest_id IN (…)``) would be an index search per member and interest instead.
    """
    ids: dict[str, int] = {}
    if bits:
        ids = dict(
            session.execute(select(Interest.slug, Interest.id).where(Interest.slug.in_(list(bits)))).all()
        )
    if not ids:  # nobody can have chosen an interest the database does not know
        return (
            select(
                Member.id.label("member_id"),
                Member.region_id.label("region_id"),
                literal(0, BigInteger).label("mask"),
            )
            .where(condition)
            .subquery()
        )
    weight = case(*[(MemberInterest.interest_id == i, bits[s]) for s, i in ids.items()], else_=0)
    return (
        select(
            Member.id.label("member_id"),
            Member.region_id.label("region_id"),
            func.coalesce(func.sum(weight), 0).label("mask"),
        )
        .select_from(Member)
        .outerjoin(MemberInterest, MemberInterest.member_id == Member.id)
        .where(condition)
        .group_by(Member.id)
        .subquery()
    )


def group_counts(
    session: Session, condition: ColumnElement[bool], relevant: frozenset[str]
) -> dict[tuple[str | None, frozenset[str]], int]:
    """Members matching ``condition`` per (home region, relevant interests chosen), with one GROUP
    BY: over (region, interest mask) when the relevant interests fit in ``MASK_BITS``
    (:func:`counts_by_mask`), else over the interests' names joined in a string."""
    if len(relevant) <= MASK_BITS:
        return counts_by_mask(session, condition, relevant)
    return counts_by_name(session, condition, relevant)


def counts_by_mask(
    session: Session, condition: ColumnElement[bool], relevant: frozenset[str]
) -> dict[tuple[str | None, frozenset[str]], int]:
    """``group_counts`` grouped by (region id, interest mask): integers, one row per member first."""
    bits = interest_bits(relevant)
    per_member = member_masks(session, condition, bits)
    counts = session.execute(
        select(per_member.c.region_id, per_member.c.mask, func.count()).group_by(
            per_member.c.region_id, per_member.c.mask
        )
    ).all()
    slugs = dict(session.execute(select(Region.id, Region.slug)).all()) if counts else {}
    groups: dict[tuple[str | None, frozenset[str]], int] = {}
    for region_id, mask, n in counts:
        chosen = frozenset(s for s, b in bits.items() if int(mask) & b)
        group = (slugs.get(region_id) if region_id is not None else None, chosen)
        groups[group] = groups.get(group, 0) + int(n)
    return groups


def counts_by_name(
    session: Session, condition: ColumnElement[bool], relevant: frozenset[str]
) -> dict[tuple[str | None, frozenset[str]], int]:
    """``group_counts`` grouped by (region, the relevant interests' names joined): any number of them."""
    per_member = (
        select(
            Member.id.label("member_id"),
            Region.slug.label("region"),
            func.aggregate_strings(Interest.slug, ",").label("interests"),
        )
        .outerjoin(Region, Member.region_id == Region.id)
        .outerjoin(MemberInterest, MemberInterest.member_id == Member.id)
        .outerjoin(Interest, (Interest.id == MemberInterest.interest_id) & Interest.slug.in_(relevant))
        .where(condition)
        .group_by(Member.id, Region.slug)
        .subquery()
    )
    rows = session.execute(
        select(per_member.c.region, per_member.c.interests, func.count()).group_by(
            per_member.c.region, per_member.c.interests
        )
    ).all()
    groups: dict[tuple[str | None, frozenset[str]], int] = {}
    for region, interests, n in rows:
        group = (region, _parse_interests(interests))
        groups[group] = groups.get(group, 0) + int(n)
    return groups


def plan(
    session: Session, loaded: Loaded, shape: Shape, audience: str | None = None, network: str = ""
) -> VariantPlan:
    """Group the audience's members (default: the issue's ``audience``) into the variants they get.

    One query counts members per (region, relevant interests) group with GROUP BY; each group is
    composed once and groups that see the same things share a variant. Only members who would
    really be mailed count (``mailable.reachable``: not suppressed, subscribed, and not gone from
    ``network``, the network it speaks as, "" for a workspace's only one).
    """
    from mailer.audience.mailable import reachable
    from mailer.audience.segments import compile_segment

    issue = loaded.issue
    expression = audience or issue.audience
    condition = reachable(compile_segment(expression, shape), network)
    groups = group_counts(session, condition, relevant_interests(issue))
    # Groups whose regions and interests meet the issue's alike see the same variant: composed once.
    mentioned = mentioned_regions(issue)
    composed: dict[tuple[frozenset[str], frozenset[str]], Variant] = {}
    by_key: dict[str, PlannedVariant] = {}
    for (region, interests), n in sorted(
        groups.items(), key=lambda g: (-g[1], g[0][0] or "", sorted(g[0][1]))
    ):
        seen = frozenset(shape.ancestors(region)) & mentioned if region in shape.regions else frozenset()
        variant = composed.get((seen, interests))
        if variant is None:
            variant = composed[seen, interests] = compose(issue, shape, region, interests)
        planned = by_key.setdefault(variant.key, PlannedVariant(variant))
        planned.members += n
        planned.groups.append(Group(region, interests, n, variant.key))
    variants = sorted(by_key.values(), key=lambda p: (-p.members, p.variant.key))
    return VariantPlan(loaded.slug, expression, issue, shape, condition, variants)
