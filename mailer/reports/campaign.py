"""One campaign's figures, overall, by region and by variant; and the headline figures of every issue.

See :mod:`mailer.reports` for what each figure counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.errors import UnknownName
from mailer.events import Counts, EventCounts, campaign_counts
from mailer.inbound.classify import reply_status, status_kind
from mailer.models import BounceEvent, Campaign, ConsentEvent, Delivery, Region, Variant

if TYPE_CHECKING:
    from mailer.sending.snapshot import StageInfo

NO_REGION = "(no region)"
UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class Figures:
    """The counts of one campaign, or of one region or variant of it."""

    deliveries: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    unknown: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    policy: int = 0
    complaints: int = 0
    unsubscribes: int = 0

    @property
    def bounces(self) -> int:
        return self.hard_bounces + self.soft_bounces

    @staticmethod
    def names() -> list[str]:
        return [f.name for f in fields(Figures)]


LABELS = {
    "deliveries": "Deliveries",
    "sent": "Sent",
    "failed": "Failed at sending",
    "deferred": "Deferred (to retry)",
    "unknown": "Outcome unknown",
    "hard_bounces": "Hard bounces",
    "soft_bounces": "Soft bounces",
    "policy": "Blocked (policy)",
    "complaints": "Complaints",
    "unsubscribes": "Unsubscribes",
}


@dataclass(frozen=True)
class Row:
    """One region or variant of a report."""

    key: str
    label: str
    figures: Figures


@dataclass(frozen=True)
class CampaignReport:
    slug: str
    title: str
    subject: str
    kind: str
    status: str
    issue_date: str
    started_at: datetime | None
    finished_at: datetime | None
    total: Figures
    by_region: tuple[Row, ...]
    by_variant: tuple[Row, ...]
    next_steps: tuple[str, ...] = ()  # what to do about deferred, unknown and retryable deliveries
    stages: tuple[StageInfo, ...] = ()  # the stages it was sent in (docs/decisions.md, Stages), in order
    events: tuple[EventCounts, ...] = ()  # answers to its events, counted (no names: docs/events.md)

    @property
    def rsvp_total(self) -> Counts:
        """The answers to all its events, counted."""
        return Counts(*(sum(getattr(e.counts, n) for e in self.events) for n in ("yes", "no", "waitlist")))

    @property
    def rsvp_by_region(self) -> dict[str, Counts]:
        """The answers summed by the events' regions (an event for several regions counts in each;
        one for the whole audience under "")."""
        sums: dict[str, list[int]] = {}
        for e in self.events:
            for region in e.event.regions or ("",):
                add = sums.setdefault(region, [0, 0, 0])
                for i, n in enumerate((e.counts.yes, e.counts.no, e.counts.waitlist)):
                    add[i] += n
        return {r: Counts(*v) for r, v in sorted(sums.items())}

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "title": self.title,
            "subject": self.subject,
            "kind": self.kind,
            "status": self.status,
            "issue_date": self.issue_date,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "total": asdict(self.total),
            "by_region": [{"region": r.key, "label": r.label, **asdict(r.figures)} for r in self.by_region],
            "by_variant": [
                {"variant": r.key, "label": r.label, **asdict(r.figures)} for r in self.by_variant
            ],
            "next_steps": list(self.next_steps),
            "stages": [s.as_dict() for s in self.stages],
            "rsvps": {
                "total": self.rsvp_total.as_dict(),
                "by_region": {r or "(whole audience)": c.as_dict() for r, c in self.rsvp_by_region.items()},
                "events": [e.as_dict() for e in self.events],
            },
        }


def campaign_report(session: Session, shape: Shape, slug: str) -> CampaignReport:
    """The figures of campaign ``slug``; see the module docstring for what each one counts."""
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        known = session.scalars(select(Campaign.slug).order_by(Campaign.id)).all()
        raise UnknownName(
            f"no campaign {slug!r} has been sent",
            hint=("sent campaigns: " + ", ".join(known))
            if known
            else "send one with `mailer campaigns send`",
        )
    cid = campaign.id
    region_slugs = dict(session.execute(select(Region.id, Region.slug)).all())
    variants = {
        vid: (key, label or key)
        for vid, key, label in session.execute(
            select(Variant.id, Variant.key, Variant.label).where(Variant.campaign_id == cid)
        )
    }

    # Each delivery's (region, variant) and outcome counts, grouped in SQL.
    groups: dict[tuple[int | None, int], Counter[str]] = defaultdict(Counter)
    for region_id, variant_id, status, n in session.execute(
        select(Delivery.region_id, Delivery.variant_id, Delivery.status, func.count())
        .where(Delivery.campaign_id == cid)
        .group_by(Delivery.region_id, Delivery.variant_id, Delivery.status)
    ):
        counter = groups[(region_id, variant_id)]
        counter["deliveries"] += n
        if status in ("sent", "failed", "deferred", "unknown"):
            counter[status] += n

    # Bounces: failures at sending time (from the recorded reply) and bounce mails, worst kind each.
    where: dict[int, tuple[int | None, int]] = {}
    kinds: dict[int, set[str]] = defaultdict(set)
    for did, region_id, variant_id, code, error in session.execute(
        select(
            Delivery.id, Delivery.region_id, Delivery.variant_id, Delivery.last_code, Delivery.last_error
        ).where(Delivery.campaign_id == cid, Delivery.status == "failed")
    ):
        where[did] = (region_id, variant_id)
        kinds[did].add(status_kind(reply_status(code, error)))
    complained: set[int] = set()
    for did, region_id, variant_id, kind in session.execute(
        select(Delivery.id, Delivery.region_id, Delivery.variant_id, BounceEvent.kind)
        .join(Delivery, Delivery.id == BounceEvent.delivery_id)
        .where(BounceEvent.campaign_id == cid)
    ):
        where[did] = (region_id, variant_id)
        if kind == "complaint":
            complained.add(did)
        elif kind in ("hard", "soft", "policy"):
            kinds[did].add(kind)
    for did, found in kinds.items():
        worst = next((k for k in ("hard", "policy", "soft") if k in found), None)
        if worst is not None:
            groups[where[did]][
                {"hard": "hard_bounces", "soft": "soft_bounces", "policy": "policy"}[worst]
            ] += 1
    for did in complained:
        groups[where[did]]["complaints"] += 1

    # Unsubscribes attributed to this campaign in the consent log, once per address.
    seen: set[str] = set()
    for address_hash, region_id, variant_id in session.execute(
        select(ConsentEvent.address_hash, Delivery.region_id, Delivery.variant_id)
        .outerjoin(Delivery, (Delivery.member_id == ConsentEvent.member_id) & (Delivery.campaign_id == cid))
        .where(ConsentEvent.campaign == slug, ConsentEvent.action == "unsubscribe")
        .order_by(ConsentEvent.id)
    ):
        if address_hash in seen:
            continue
        seen.add(address_hash)
        groups[(region_id, variant_id if variant_id is not None else -1)]["unsubscribes"] += 1

    by_region: Counter[str] = Counter()
    region_counts: dict[str, Counter[str]] = defaultdict(Counter)
    variant_counts: dict[int, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for (region_id, variant_id), counter in groups.items():
        region_key = region_slugs.get(region_id, NO_REGION) if region_id is not None else NO_REGION
        region_counts[region_key].update(counter)
        variant_counts[variant_id].update(counter)
        total.update(counter)
        by_region[region_key] += counter["deliveries"]

    def label_of_region(key: str) -> str:
        return shape.label(key) if key in shape.regions else key

    region_rows = tuple(
        Row(key, label_of_region(key), _figures(c))
        for key, c in sorted(region_counts.items(), key=lambda kv: label_of_region(kv[0]))
    )
    variant_rows = tuple(
        Row(variants[vid][0], variants[vid][1], _figures(c))
        if vid in variants
        else Row(UNKNOWN, UNKNOWN, _figures(c))
        for vid, c in sorted(variant_counts.items(), key=lambda kv: -kv[1]["deliveries"])
    )
    return CampaignReport(
        slug=campaign.slug,
        title=campaign.title,
        subject=campaign.subject,
        kind=campaign.kind,
        status=campaign.status,
        issue_date=campaign.issue_date,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
        total=_figures(total),
        by_region=region_rows,
        by_variant=variant_rows,
        next_steps=tuple(_next_steps(session, campaign)),
        stages=tuple(_stages(session, campaign)),
        events=tuple(campaign_counts(session, campaign.slug)),
    )


def _next_steps(session: Session, campaign: Campaign) -> list[str]:
    """Deferred, unknown and retryable deliveries, and the command for each (as status says them)."""
    from mailer.sending.control import next_steps  # the sending stage, only when a report is made
    from mailer.sending.queue import retryable_counts

    counts = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign.id, Delivery.status.in_(("deferred", "unknown")))
            .group_by(Delivery.status)
        ).all()
    )
    first = session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.campaign_id == campaign.id, Delivery.status == "deferred"
        )
    )
    retryable = retryable_counts(session, campaign.id)["failed"]
    return next_steps(campaign.slug, counts, first, retryable=retryable)


def _stages(session: Session, campaign: Campaign) -> list[StageInfo]:
    from mailer.sending.snapshot import stages_of  # the sending stage, only when a report is made

    return stages_of(session, campaign.id)


def _figures(counter: Counter[str]) -> Figures:
    return Figures(**{name: int(counter.get(name, 0)) for name in Figures.names()})


# -- every issue ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueRow:
    slug: str
    title: str
    issue_date: str
    figures: Figures


def issues(session: Session, shape: Shape, *, last: int | None = 12) -> tuple[IssueRow, ...]:
    """The figures of each sent (or sending) campaign, oldest issue first; the ``last`` few only."""
    rows = session.execute(
        select(Campaign.slug, Campaign.title, Campaign.issue_date)
        .where(Campaign.status != "draft")
        .order_by(Campaign.issue_date, Campaign.id)
    ).all()
    if last:
        rows = rows[-last:]
    return tuple(
        IssueRow(slug, title, issue_date, campaign_report(session, shape, slug).total)
        for slug, title, issue_date in rows
    )
