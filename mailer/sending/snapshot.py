"""The snapshot of a send: one ``deliveries`` row per campaign and member, each pointing at its variant.

``enqueue`` writes the campaign, its variants and its deliveries in one transaction; suppressed
members get no row (the audience's condition excludes them), and a campaign already enqueued is
left as it is (the send resumes it). The deliveries are one ``INSERT … SELECT``: the database
picks each member's variant through a temporary table of the plan's groups (home region, and the
bits of the interests that decide variants), so the time grows with the members alone, never with
variants × members, and no member becomes a Python object. Members of a group that appeared after
planning (they joined or changed meanwhile) are added after it, composed as the plan would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Session

from mailer.compose import relevant_interests
from mailer.db import Database
from mailer.models import Campaign, Delivery, Interest, Member, MemberInterest, Region
from mailer.models import Variant as VariantRow
from mailer.sending.prepare import Prepared
from mailer.sending.queue import find_campaign


@dataclass(frozen=True)
class Enqueued:
    campaign_id: int
    created: bool  # False: the campaign was enqueued before, and this send resumes it
    deliveries: int
    status: str


def enqueue(db: Database, prepared: Prepared, *, scheduled_at: datetime | None = None) -> Enqueued:
    """Snapshot the audience into ``deliveries``, once. A campaign already enqueued is left as it is.

    The snapshot is one ``INSERT … SELECT`` (:func:`_snapshot`): the database picks each member's
    variant through a small table of the plan's groups, so the time grows with the members alone,
    not with variants × members, and no member becomes a Python object. Members of a group that
    appeared after planning (they joined meanwhile) are added after it, one query per 5,000.
    """
    issue = prepared.loaded.issue
    with db.session() as session:
        existing = find_campaign(session, prepared.slug)
        if existing is not None:
            total = session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.campaign_id == existing.id)
            )
            return Enqueued(existing.id, False, int(total or 0), existing.status)
        campaign = Campaign(
            slug=prepared.slug,
            kind=issue.kind,
            title=issue.title,
            subject=issue.subject,
            audience=prepared.audience,
            issue_date=issue.date.isoformat(),
            source=prepared.loaded.path.read_text(encoding="utf-8"),
            status="scheduled" if scheduled_at else "queued",
            scheduled_at=scheduled_at,
        )
        session.add(campaign)
        session.flush()
        variants = _Variants(session, campaign.id, prepared)
        variants.add([p.variant.key for p in prepared.plan.variants])
        _snapshot(session, campaign.id, prepared, variants)
        _late_joiners(session, campaign.id, prepared, variants)
        per_variant = dict(
            session.execute(
                select(Delivery.variant_id, func.count())
                .where(Delivery.campaign_id == campaign.id)
                .group_by(Delivery.variant_id)
            ).all()
        )
        total = sum(per_variant.values())
        unused = [i for i in variants.ids.values() if i not in per_variant]
        if unused:  # planned, but nobody of that group is left
            session.execute(delete(VariantRow).where(VariantRow.id.in_(unused)))
        return Enqueued(campaign.id, True, total, campaign.status)


class _Variants:
    """The campaign's variant rows, inserted as they are first needed (several at once)."""

    def __init__(self, session: Session, campaign_id: int, prepared: Prepared) -> None:
        self.session = session
        self.campaign_id = campaign_id
        self.prepared = prepared
        self.ids: dict[str, int] = {}

    def add(self, keys: list[str]) -> None:
        labels = {p.variant.key: p.label for p in self.prepared.plan.variants}
        rows = []
        for key in dict.fromkeys(k for k in keys if k not in self.ids):
            r = self.prepared.render(key)
            v = self.prepared.plan.variant(key)
            rows.append(
                {
                    "campaign_id": self.campaign_id,
                    "key": key,
                    "label": labels.get(key, v.label),
                    "item_ids": " ".join(v.item_ids),
                    "subject": r.subject,
                    "preheader": r.preheader,
                    "text": r.text,
                    "html": r.html,
                }
            )
        if rows:
            returned = self.session.execute(
                insert(VariantRow).returning(VariantRow.key, VariantRow.id), rows
            ).all()
            self.ids.update({str(k): int(i) for k, i in returned})


#: Above this many interests that decide variants, the snapshot falls back to Python (a bit each).
_MASK_BITS = 62


def _snapshot(session: Session, campaign_id: int, prepared: Prepared, variants: _Variants) -> None:
    """One ``INSERT … SELECT`` of every member of a planned group: each member's group is (home
    region, the bits of the relevant interests they chose), joined to a temporary table of the plan's
    groups and their variant ids."""
    the_plan = prepared.plan
    relevant = sorted(relevant_interests(the_plan.issue))
    if len(relevant) > _MASK_BITS:
        return  # _late_joiners takes everyone, 5,000 at a time
    interest_ids = dict(
        session.execute(select(Interest.slug, Interest.id).where(Interest.slug.in_(relevant))).all()
    )
    bit = {slug: 1 << i for i, slug in enumerate(relevant)}
    region_ids = dict(session.execute(select(Region.slug, Region.id)).all())
    rows = []
    for planned in the_plan.variants:
        for group in planned.groups:
            if group.region is not None and group.region not in region_ids:
                continue  # a region removed since planning: its members, if any, come later
            rows.append(
                {
                    "region_id": region_ids[group.region] if group.region is not None else 0,
                    "mask": sum(bit[s] for s in group.interests if s in bit),
                    "variant_id": variants.ids[planned.variant.key],
                }
            )
    if not rows:
        return
    groups = Table(
        f"mailer_plan_groups_{uuid.uuid4().hex[:8]}",  # a name of its own: never one left behind
        MetaData(),
        Column("region_id", Integer, primary_key=True),
        Column("mask", BigInteger, primary_key=True),
        Column("variant_id", Integer),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    connection = session.connection()
    groups.create(connection)
    try:
        session.execute(insert(groups), rows)
        mask: ColumnElement[Any]
        if interest_ids:
            weight = case(
                *[(MemberInterest.interest_id == i, bit[s]) for s, i in interest_ids.items()], else_=0
            )
            mask = (
                select(func.coalesce(func.sum(weight), 0))
                .where(
                    MemberInterest.member_id == Member.id,
                    MemberInterest.interest_id.in_(list(interest_ids.values())),
                )
                .correlate(Member)
                .scalar_subquery()
            )
        else:
            mask = literal(0, BigInteger)
        chosen = (
            select(
                literal(campaign_id),
                Member.id,
                groups.c.variant_id,
                Member.region_id,
                literal("pending"),
            )
            .select_from(Member)
            .join(
                groups,
                and_(groups.c.region_id == func.coalesce(Member.region_id, 0), groups.c.mask == mask),
            )
            .where(the_plan.condition)
            .order_by(Member.id)
        )
        session.execute(
            insert(Delivery).from_select(
                ["campaign_id", "member_id", "variant_id", "region_id", "status"], chosen
            )
        )
    finally:
        if connection.dialect.name != "postgresql":
            groups.drop(connection)


def _late_joiners(session: Session, campaign_id: int, prepared: Prepared, variants: _Variants) -> None:
    """Members of the audience the snapshot did not take (a group that appeared after planning):
    their variant is composed as ``recipients`` would, 5,000 at a time. Usually none."""
    the_plan = prepared.plan
    relevant = relevant_interests(the_plan.issue)
    last_id = 0
    taken = (
        select(Delivery.id)
        .where(Delivery.campaign_id == campaign_id, Delivery.member_id == Member.id)
        .correlate(Member)
        .exists()
    )
    while True:
        rows = session.execute(
            select(Member.id, Region.slug, Member.region_id)
            .outerjoin(Region, Member.region_id == Region.id)
            .where(the_plan.condition, ~taken, Member.id > last_id)
            .order_by(Member.id)
            .limit(5000)
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
        keys = [the_plan.variant_for(region, frozenset(chosen.get(m, ()))).key for m, region, _ in rows]
        variants.add(keys)
        session.execute(
            insert(Delivery),
            [
                {
                    "campaign_id": campaign_id,
                    "member_id": m,
                    "variant_id": variants.ids[key],
                    "region_id": region_id,
                    "status": "pending",
                }
                for (m, _, region_id), key in zip(rows, keys, strict=True)
            ],
        )
