"""Audience statistics: members and suppressions per region (with the tree's totals) and per interest.

Terms used throughout:

- ``members``: member rows (people on the list), suppressed or not;
- ``suppressed``: those of them whose address hash is in ``suppressions`` (never mailed);
- ``reachable``: ``members - suppressed``, what ``mailer lists count`` would count.

``AudienceStats.suppressions`` also counts suppressions with no member any more (forgotten members,
addresses that bounced before they were imported), which is why it can exceed ``suppressed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.models import Interest, Member, MemberInterest, Region, Suppression


@dataclass(frozen=True)
class RegionStats:
    """One region: its own members (home region exactly here) and its total including every region below."""

    slug: str
    name: str
    parent: str | None
    depth: int
    members: int
    suppressed: int
    total_members: int
    total_suppressed: int

    @property
    def reachable(self) -> int:
        return self.members - self.suppressed

    @property
    def total_reachable(self) -> int:
        return self.total_members - self.total_suppressed


@dataclass(frozen=True)
class InterestStats:
    slug: str
    name: str
    members: int
    suppressed: int

    @property
    def reachable(self) -> int:
        return self.members - self.suppressed


@dataclass(frozen=True)
class AudienceStats:
    members: int
    suppressed: int
    without_region: int
    without_region_suppressed: int
    suppressions: int
    regions: tuple[RegionStats, ...]
    interests: tuple[InterestStats, ...]

    @property
    def reachable(self) -> int:
        return self.members - self.suppressed

    def as_dict(self) -> dict[str, Any]:
        """A plain form for JSON, with the derived ``reachable`` figures included."""
        data = asdict(self)
        data["reachable"] = self.reachable
        for out, r in zip(data["regions"], self.regions, strict=True):
            out["reachable"], out["total_reachable"] = r.reachable, r.total_reachable
        for out, i in zip(data["interests"], self.interests, strict=True):
            out["reachable"] = i.reachable
        return data


def stats(session: Session, shape: Shape) -> AudienceStats:
    """Count members and suppressed members per region and interest, in one query each."""
    is_suppressed = func.count(Suppression.address_hash)
    by_region: dict[str | None, tuple[int, int]] = {}
    for slug, n, s in session.execute(
        select(Region.slug, func.count(Member.id), is_suppressed)
        .select_from(Member)
        .outerjoin(Region, Region.id == Member.region_id)
        .outerjoin(Suppression, Suppression.address_hash == Member.address_hash)
        .group_by(Region.slug)
    ):
        by_region[slug] = (int(n), int(s))

    by_interest: dict[str, tuple[int, int]] = {}
    for slug, n, s in session.execute(
        select(Interest.slug, func.count(MemberInterest.member_id), is_suppressed)
        .select_from(MemberInterest)
        .join(Interest, Interest.id == MemberInterest.interest_id)
        .join(Member, Member.id == MemberInterest.member_id)
        .outerjoin(Suppression, Suppression.address_hash == Member.address_hash)
        .group_by(Interest.slug)
    ):
        by_interest[slug] = (int(n), int(s))

    regions: list[RegionStats] = []
    for depth, r in shape.walk():
        own = by_region.get(r.slug, (0, 0))
        below = [by_region.get(d, (0, 0)) for d in shape.descendants(r.slug)]
        regions.append(
            RegionStats(
                slug=r.slug,
                name=r.name,
                parent=r.parent,
                depth=depth,
                members=own[0],
                suppressed=own[1],
                total_members=sum(b[0] for b in below),
                total_suppressed=sum(b[1] for b in below),
            )
        )
    # A region still in the database but gone from regions.toml keeps its members visible.
    for slug, (n, s) in sorted(
        (k, v) for k, v in by_region.items() if k is not None and k not in shape.regions
    ):
        regions.append(RegionStats(slug, slug, None, 0, n, s, n, s))

    interests = [
        InterestStats(i.slug, i.name, *by_interest.get(i.slug, (0, 0))) for i in shape.interests.values()
    ]
    for slug, (n, s) in sorted((k, v) for k, v in by_interest.items() if k not in shape.interests):
        interests.append(InterestStats(slug, slug, n, s))

    nowhere = by_region.get(None, (0, 0))
    return AudienceStats(
        members=sum(v[0] for v in by_region.values()),
        suppressed=sum(v[1] for v in by_region.values()),
        without_region=nowhere[0],
        without_region_suppressed=nowhere[1],
        suppressions=int(session.scalar(select(func.count()).select_from(Suppression)) or 0),
        regions=tuple(regions),
        interests=tuple(interests),
    )
