"""The snapshot of a send, in stages: one ``deliveries`` row per campaign and member, each pointing
at its variant, and nobody ever twice.

A campaign is sent in one stage or several (docs/decisions.md, Stages). Each stage (``enqueue`` with a
:class:`StageRequest`; a ``campaign_stages`` row numbered 1, 2, …) adds the members of the issue's
audience who have no delivery of the campaign yet: narrowed by a segment, capped at a number (the
longest-standing members first), or only those who joined since the previous stage. Suppressed
members and members who left the campaign's network (``network_leaves``) get no row. A stage that
finds nobody to add records nothing (the first stage of a new campaign excepted).

The rows are one ``INSERT … SELECT``: the database picks each member's variant through a temporary
table of the plan's groups (home region, and the bits of the interests that decide variants), so the
time grows with the members alone, never with variants × members, and no member becomes a Python
object. Members of a group that appeared after planning (they joined or changed meanwhile) are added
after it, composed as the plan would. A later stage takes the campaign's row lock first and adds only
members with no row (``NOT EXISTS``), so two editors (or an editor and the workers) never give
anyone the campaign twice, and the unique (campaign, member) index is the last word.

The issue as first sent is kept in ``campaigns.source``. A later stage whose issue file differs is
refused unless asked (``allow_changed``): the variants stored already go out as they were sent,
and only the variants new to that stage are made from the file as it is now.
"""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Session

from mailer.audience.mailable import not_left
from mailer.compose import MASK_BITS, interest_bits, member_masks, read_members, relevant_interests
from mailer.db import Database
from mailer.errors import DeliveryError
from mailer.events import sync_events
from mailer.models import (
    Campaign,
    CampaignStage,
    Delivery,
    Member,
    Region,
    utcnow,
)
from mailer.models import Variant as VariantRow
from mailer.sending.prepare import Prepared
from mailer.sending.queue import find_campaign


@dataclass(frozen=True)
class StageRequest:
    """What a stage adds: the members of the prepared audience (the issue's, narrowed by the
    segment given to ``prepare``) who have no delivery of the campaign yet; at most ``limit`` of
    them (the longest-standing first, by member id); with ``new_members`` only those who joined
    after the campaign's previous stage. ``segment`` is recorded with the stage (the narrowing
    itself is the prepared audience's). ``allow_changed``: add the stage although the issue file
    differs from the issue as first sent."""

    segment: str = ""
    limit: int | None = None
    new_members: bool = False
    allow_changed: bool = False

    @property
    def narrowed(self) -> bool:
        """Anything asked beyond "everyone in the audience who has not had it"."""
        return bool(self.segment) or self.limit is not None or self.new_members


@dataclass(frozen=True)
class StageInfo:
    """A stage of a campaign: what it asked for and how many members it added."""

    number: int
    segment: str
    limit: int | None
    new_members: bool
    recipients: int
    created_at: datetime | None = None  # None: not recorded (it added nobody)

    def describe(self) -> str:
        """``new members, region:canterbury, at most 50``; ``everyone not yet sent it`` if not narrowed."""
        parts = (["new members"] if self.new_members else []) + ([self.segment] if self.segment else [])
        if self.limit is not None:
            parts.append(f"at most {self.limit}")
        return ", ".join(parts) or "everyone not yet sent it"

    def line(self, zone: ZoneInfo | None = None) -> str:
        """``stage 2, 2025-11-18 09:30 (Europe/London): everyone not yet sent it: 120 member(s)``."""
        when = ""
        if self.created_at is not None:
            zone = zone or ZoneInfo("UTC")
            when = f", {self.created_at.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"
        return f"stage {self.number}{when}: {self.describe()}: {self.recipients} member(s)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "segment": self.segment,
            "limit": self.limit,
            "new_members": self.new_members,
            "recipients": self.recipients,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class StagePlan:
    """What a stage would add, counted before anything is written (``plan_stage``)."""

    number: int
    request: StageRequest
    eligible: int  # members of the audience it could add (no delivery yet, not left, …)
    since: datetime | None  # with new_members: members who joined after this

    @property
    def members(self) -> int:
        """How many it adds: the eligible members, at most ``limit``."""
        limit = self.request.limit
        return self.eligible if limit is None else min(self.eligible, limit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "segment": self.request.segment,
            "limit": self.request.limit,
            "new_members": self.request.new_members,
            "eligible": self.eligible,
            "members": self.members,
            "since": self.since.isoformat() if self.since else None,
        }


@dataclass(frozen=True)
class Enqueued:
    campaign_id: int
    created: bool  # False: the campaign was enqueued before (this call resumes it, or adds a stage)
    deliveries: int  # every delivery of the campaign, of every stage
    status: str
    stage: StageInfo | None = None  # the stage this call added (recipients 0: nobody to add); None: a resume


def enqueue(
    db: Database,
    prepared: Prepared,
    *,
    scheduled_at: datetime | None = None,
    stage: StageRequest | None = None,
) -> Enqueued:
    """Snapshot the audience into ``deliveries``: a new campaign's first stage, or with ``stage`` a
    later stage of one enqueued before. A campaign enqueued before and no ``stage`` is left as it
    is (the send resumes it).

    A stage adds its members with one ``INSERT … SELECT`` (:func:`_snapshot`), then the members of
    groups that appeared after planning (:func:`_late_joiners`), and records a ``campaign_stages``
    row if it added anyone (a new campaign's first stage always). A campaign that was ``sent`` and
    gets new deliveries is ``queued`` again (``scheduled`` with ``scheduled_at``).
    """
    issue = prepared.loaded.issue
    with db.session() as session:
        if stage is None:
            existing = find_campaign(session, prepared.slug)
            if existing is not None:
                return Enqueued(existing.id, False, _deliveries(session, existing.id), existing.status)
        else:
            existing = session.scalars(
                select(Campaign).where(Campaign.slug == prepared.slug).with_for_update()
            ).one_or_none()
        request = stage or StageRequest(segment=_segment_of(prepared))
        if existing is None:
            if request.new_members:
                raise _not_sent_yet(prepared.slug)
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
                network=prepared.network,
            )
            session.add(campaign)
            session.flush()
        else:
            campaign = existing
            if campaign.status == "cancelled":
                raise DeliveryError(
                    f"campaign {prepared.slug!r} was cancelled", hint="copy it to a new slug to send it again"
                )
            if not request.allow_changed:
                check_unchanged(campaign, prepared)
        number, since = _previous(session, campaign)
        began = utcnow()
        where = stage_conditions(campaign, request, since, first=existing is None)
        variants = _Variants(session, campaign.id, prepared)
        variants.add([p.variant.key for p in prepared.plan.variants])
        added = _snapshot(session, campaign.id, prepared, variants, where, request.limit)
        left = None if request.limit is None else request.limit - added
        added += _late_joiners(session, campaign.id, prepared, variants, where, left)
        variants.drop_unused()
        # The events members will answer, in step with what this stage sends (docs/events.md).
        settings = prepared.renderer.settings
        sync_events(session, issue, prepared.slug, began, settings=settings, network=campaign.network)
        info = StageInfo(number, request.segment, request.limit, request.new_members, added)
        if added or existing is None:
            session.add(
                CampaignStage(
                    campaign_id=campaign.id,
                    number=number,
                    segment=request.segment,
                    limit=request.limit,
                    new_members=request.new_members,
                    recipients=added,
                    created_at=began,
                )
            )
            info = StageInfo(number, request.segment, request.limit, request.new_members, added, began)
        if added and campaign.status == "sent":
            campaign.status = "scheduled" if scheduled_at else "queued"
            campaign.status_reason, campaign.finished_at = "", None
            campaign.scheduled_at = scheduled_at
        total = _deliveries(session, campaign.id)
        return Enqueued(campaign.id, existing is None, total, campaign.status, info)


def plan_stage(db: Database, prepared: Prepared, request: StageRequest) -> StagePlan:
    """Count what ``enqueue(…, stage=request)`` would add now, writing nothing; raise what it would."""
    with db.session() as session:
        campaign = find_campaign(session, prepared.slug)
        if campaign is None:
            if request.new_members:
                raise _not_sent_yet(prepared.slug)
            number, since = 1, None
            where = stage_conditions(None, request, None, first=True, network=prepared.network)
        else:
            if not request.allow_changed:
                check_unchanged(campaign, prepared)
            number, since = _previous(session, campaign)
            where = stage_conditions(campaign, request, since, first=False)
        if not where:  # a new campaign's first stage is the planned audience, counted already
            eligible: int | None = prepared.plan.total
        else:
            eligible = session.scalar(
                select(func.count()).select_from(Member).where(prepared.plan.condition, *where)
            )
    return StagePlan(number, request, int(eligible or 0), since if request.new_members else None)


def stage_conditions(
    campaign: Campaign | None,
    request: StageRequest,
    since: datetime | None,
    *,
    first: bool,
    network: str = "",
) -> list[ColumnElement[bool]]:
    """The conditions on ``Member`` a stage adds to the audience's: no delivery of the campaign yet
    (not needed in a new campaign's first stage), not left the campaign's network, and with
    ``new_members`` joined after ``since``."""
    where: list[ColumnElement[bool]] = []
    if campaign is not None and not first:
        where.append(~exists().where(Delivery.campaign_id == campaign.id, Delivery.member_id == Member.id))
    network = campaign.network if campaign is not None else network
    if network:
        where.append(not_left(network))
    if request.new_members and since is not None:
        where.append(Member.created_at > since)
    return where


def check_unchanged(campaign: Campaign, prepared: Prepared) -> None:
    """Refuse a later stage of an issue whose file differs from the issue as first sent."""
    path = prepared.loaded.path
    now = path.read_text(encoding="utf-8")
    if now == campaign.source:
        return
    was, is_ = campaign.source.splitlines(), now.splitlines()
    line = next((n for n, (a, b) in enumerate(zip(was, is_, strict=False), 1) if a != b), None)
    if line is None:
        line = min(len(was), len(is_)) + 1
    changed = sum(1 for d in difflib.ndiff(was, is_) if d[:1] in "+-")
    raise DeliveryError(
        f"the issue file changed since campaign {prepared.slug!r} was first sent "
        f"({changed} line(s) differ, the first at line {line}): earlier stages sent it as it was",
        path=path,
        line=line,
        hint="put the file back as it was sent, or add --allow-changed to send this stage anyway (members "
        "of a variant sent before get it as it was sent; variants new to this stage are made from the "
        "file as it is now); to send the changed issue to everyone again, copy it to a new slug",
    )


def stages_of(session: Session, campaign_id: int) -> list[StageInfo]:
    """The recorded stages of a campaign, in order."""
    rows = session.scalars(
        select(CampaignStage).where(CampaignStage.campaign_id == campaign_id).order_by(CampaignStage.number)
    ).all()
    return [StageInfo(r.number, r.segment, r.limit, r.new_members, r.recipients, r.created_at) for r in rows]


def campaign_stages(db: Database, slug: str) -> list[StageInfo]:
    """The recorded stages of campaign ``slug`` (none if it has not been sent)."""
    with db.session() as session:
        campaign = find_campaign(session, slug)
        return [] if campaign is None else stages_of(session, campaign.id)


def _previous(session: Session, campaign: Campaign) -> tuple[int, datetime]:
    """(the number of the next stage, when the previous one was made). A campaign sent before
    stages were recorded counts as one stage, made when the campaign was."""
    number, at = session.execute(
        select(func.max(CampaignStage.number), func.max(CampaignStage.created_at)).where(
            CampaignStage.campaign_id == campaign.id
        )
    ).one()
    if number is None:
        had = session.scalar(select(Delivery.id).where(Delivery.campaign_id == campaign.id).limit(1))
        return (2 if had is not None else 1), campaign.created_at
    return int(number) + 1, at


def _deliveries(session: Session, campaign_id: int) -> int:
    total = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign_id)
    )
    return int(total or 0)


def _segment_of(prepared: Prepared) -> str:
    """The narrowing of a prepared audience, as recorded with a stage ("" when it is the issue's)."""
    audience = prepared.audience
    return "" if audience == prepared.loaded.issue.audience else audience


def _not_sent_yet(slug: str) -> DeliveryError:
    return DeliveryError(
        f"campaign {slug!r} has not been sent: --new-members adds those who joined after an earlier stage",
        field="--new-members",
        hint=f"send its first stage first: mailer campaigns send {slug}",
    )


class _Variants:
    """The campaign's variant rows: those stored by earlier stages, and new ones inserted as they are
    first needed (several at once)."""

    def __init__(self, session: Session, campaign_id: int, prepared: Prepared) -> None:
        self.session = session
        self.campaign_id = campaign_id
        self.prepared = prepared
        self.ids: dict[str, int] = {
            str(k): int(i)
            for k, i in session.execute(
                select(VariantRow.key, VariantRow.id).where(VariantRow.campaign_id == campaign_id)
            )
        }
        self.new: list[int] = []

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
            self.new.extend(int(i) for _k, i in returned)

    def drop_unused(self) -> None:
        """Delete the rows this stage inserted that no delivery points at (planned, but nobody of
        that group was left to add)."""
        if not self.new:
            return
        used = set(
            self.session.scalars(
                select(Delivery.variant_id)
                .where(Delivery.campaign_id == self.campaign_id, Delivery.variant_id.in_(self.new))
                .distinct()
            )
        )
        unused = [i for i in self.new if i not in used]
        if unused:
            self.session.execute(delete(VariantRow).where(VariantRow.id.in_(unused)))


def _snapshot(
    session: Session,
    campaign_id: int,
    prepared: Prepared,
    variants: _Variants,
    where: list[ColumnElement[bool]],
    limit: int | None,
) -> int:
    """One ``INSERT … SELECT`` of the members of a planned group who meet the stage's ``where``
    (at most ``limit``, in member order): each member's group is (home region, the bits of the
    relevant interests they chose: :func:`~mailer.compose.member_masks`, the plan's own grouping),
    joined to a temporary table of the plan's groups and their variant ids. Returns how many rows
    it added."""
    the_plan = prepared.plan
    relevant = relevant_interests(the_plan.issue)
    if len(relevant) > MASK_BITS or limit == 0:
        return 0  # _late_joiners takes everyone, 5,000 at a time
    bits = interest_bits(relevant)
    region_ids = dict(session.execute(select(Region.slug, Region.id)).all())
    rows = []
    for planned in the_plan.variants:
        for group in planned.groups:
            if group.region is not None and group.region not in region_ids:
                continue  # a region removed since planning: its members, if any, come later
            rows.append(
                {
                    "region_id": region_ids[group.region] if group.region is not None else 0,
                    "mask": sum(bits[s] for s in group.interests if s in bits),
                    "variant_id": variants.ids[planned.variant.key],
                }
            )
    if not rows:
        return 0
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
        member = member_masks(session, and_(the_plan.condition, *where), bits)
        chosen = (
            select(
                literal(campaign_id),
                member.c.member_id,
                groups.c.variant_id,
                member.c.region_id,
                literal("pending"),
            )
            .select_from(member)
            .join(
                groups,
                and_(
                    groups.c.region_id == func.coalesce(member.c.region_id, 0),
                    groups.c.mask == member.c.mask,
                ),
            )
            .order_by(member.c.member_id)
        )
        if limit is not None:
            chosen = chosen.limit(limit)
        result = session.execute(
            insert(Delivery)
            .from_select(["campaign_id", "member_id", "variant_id", "region_id", "status"], chosen)
            .execution_options(preserve_rowcount=True)  # the rows it added (psycopg keeps none without)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
    finally:
        if connection.dialect.name != "postgresql":
            groups.drop(connection)


def _late_joiners(
    session: Session,
    campaign_id: int,
    prepared: Prepared,
    variants: _Variants,
    where: list[ColumnElement[bool]],
    limit: int | None,
) -> int:
    """Members of the stage the snapshot did not take (a group that appeared after planning): their
    variant is composed as ``recipients`` would, 5,000 at a time, at most ``limit``. Usually none.
    Returns how many rows it added."""
    the_plan = prepared.plan
    if limit is not None and limit <= 0:
        return 0
    taken = (
        select(Delivery.id)
        .where(Delivery.campaign_id == campaign_id, Delivery.member_id == Member.id)
        .correlate(Member)
        .exists()
    )
    added = 0
    condition = and_(the_plan.condition, ~taken, *where)
    for chunk in read_members(session, condition, relevant_interests(the_plan.issue), limit=limit):
        keys = [the_plan.variant_for(m.region, m.interests).key for m in chunk]
        variants.add(keys)
        session.execute(
            insert(Delivery),
            [
                {
                    "campaign_id": campaign_id,
                    "member_id": m.id,
                    "variant_id": variants.ids[key],
                    "region_id": m.region_id,
                    "status": "pending",
                }
                for m, key in zip(chunk, keys, strict=True)
            ],
        )
        added += len(chunk)
    return added
