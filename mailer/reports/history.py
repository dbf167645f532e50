"""The list over time: members joined and lost per month, and those still reachable by region.

See :mod:`mailer.reports` for how months and regions are chosen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.models import Member, Region, Suppression
from mailer.reports.campaign import NO_REGION

# -- the list over time -------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """Members over time, month by month (``YYYY-MM``, UTC)."""

    months: tuple[str, ...]
    groups: tuple[str, ...]  # the region labels members are grouped by (NO_REGION last)
    members: dict[str, tuple[int, ...]]  # group → reachable members at the end of each month
    joined: tuple[int, ...]
    left: dict[str, tuple[int, ...]]  # suppression reason → suppressions in each month

    @property
    def left_total(self) -> tuple[int, ...]:
        return tuple(sum(v[i] for v in self.left.values()) for i in range(len(self.months)))

    @property
    def reachable(self) -> tuple[int, ...]:
        return tuple(sum(v[i] for v in self.members.values()) for i in range(len(self.months)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "months": [
                {
                    "month": month,
                    "joined": self.joined[i],
                    "left": self.left_total[i],
                    "left_by_reason": {reason: v[i] for reason, v in self.left.items() if v[i]},
                    "reachable": self.reachable[i],
                    "by_region": {group: self.members[group][i] for group in self.groups},
                }
                for i, month in enumerate(self.months)
            ],
            "regions": list(self.groups),
        }


def month_of(session: Session, column: Any) -> ColumnElement[str]:
    """``YYYY-MM`` of a timestamp column, in SQL, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, literal_column("'YYYY-MM'"))
    return func.strftime(literal_column("'%Y-%m'"), column)


def history(
    session: Session, shape: Shape, *, months: int | None = None, now: datetime | None = None
) -> History:
    """Members joined and lost per month, and reachable members by region; the last ``months`` only
    if given (the counts before them still count towards the reachable totals)."""
    region_slugs = dict(session.execute(select(Region.id, Region.slug)).all())
    joined_rows = session.execute(
        select(Member.region_id, month_of(session, Member.created_at), func.count()).group_by(
            Member.region_id, month_of(session, Member.created_at)
        )
    ).all()
    lost_rows = session.execute(
        select(Member.region_id, month_of(session, Suppression.created_at), func.count())
        .join(Suppression, Suppression.address_hash == Member.address_hash)
        .group_by(Member.region_id, month_of(session, Suppression.created_at))
    ).all()
    reason_rows = session.execute(
        select(month_of(session, Suppression.created_at), Suppression.reason, func.count()).group_by(
            month_of(session, Suppression.created_at), Suppression.reason
        )
    ).all()

    slugs = [region_slugs.get(r) if r is not None else None for r, _m, _n in [*joined_rows, *lost_rows]]
    group_of = _grouping(shape, [s for s in slugs if s is not None])

    def group(region_id: int | None) -> str:
        slug = region_slugs.get(region_id) if region_id is not None else None
        return group_of(slug)

    current = (now or datetime.now(UTC)).strftime("%Y-%m")
    seen_months = (
        {m for _r, m, _n in joined_rows} | {m for _r, m, _n in lost_rows} | {m for m, _r, _n in reason_rows}
    )
    all_months = _month_range(min(seen_months | {current}), max(seen_months | {current}))
    index = {m: i for i, m in enumerate(all_months)}

    net: dict[str, list[int]] = defaultdict(lambda: [0] * len(all_months))
    joined = [0] * len(all_months)
    for region_id, month, n in joined_rows:
        net[group(region_id)][index[month]] += n
        joined[index[month]] += n
    for region_id, month, n in lost_rows:
        net[group(region_id)][index[month]] -= n
    left: dict[str, list[int]] = defaultdict(lambda: [0] * len(all_months))
    for month, reason, n in reason_rows:
        left[reason][index[month]] += n

    members: dict[str, tuple[int, ...]] = {}
    for name, deltas in net.items():
        running, out = 0, []
        for d in deltas:
            running += d
            out.append(running)
        members[name] = tuple(out)
    start = max(0, len(all_months) - months) if months else 0
    order = sorted(members, key=lambda g: (g == NO_REGION, g))
    return History(
        months=tuple(all_months[start:]),
        groups=tuple(order),
        members={g: members[g][start:] for g in order},
        joined=tuple(joined[start:]),
        left={reason: tuple(v[start:]) for reason, v in sorted(left.items())},
    )


def _grouping(shape: Shape, slugs: Iterable[str]) -> Callable[[str | None], str]:
    """A function from a region slug to the label of its group: its ancestor at the shallowest depth
    of the tree at which the given regions fall into more than one group."""
    known = [s for s in set(slugs) if s in shape.regions]

    def at_depth(slug: str, depth: int) -> str:
        chain = list(reversed(shape.ancestors(slug)))  # top first
        return chain[min(depth, len(chain) - 1)]

    depth = 0
    max_depth = max((len(shape.ancestors(s)) - 1 for s in known), default=0)
    while depth < max_depth and len({at_depth(s, depth) for s in known}) <= 1:
        depth += 1

    def group_of(slug: str | None) -> str:
        if slug is None:
            return NO_REGION
        if slug not in shape.regions:
            return slug
        return shape.regions[at_depth(slug, depth)].name

    return group_of


def _month_range(first: str, last: str) -> list[str]:
    year, month = map(int, first.split("-"))
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return out
