"""Campaign control, for every sender at once: schedule, start, pause, resume, cancel; and status.

A campaign's status is the one switch every sender reads: ``queued`` or ``scheduled`` once
enqueued, ``sending`` while any sender may claim its deliveries (deferred ones included: it stays
``sending`` until their next attempts), ``paused`` (``resume`` goes on where it stopped),
``cancelled`` (every unsent delivery cancelled, for good) or ``sent`` (nothing pending, sending or
deferred; ``mailer campaigns retry`` can set it sending again for what failed for now). A running
engine reads it every ``STATUS_SECONDS`` and stops within that time plus the messages already on a
connection. Each change takes the campaign's row lock, so two editors (or two workers starting a
scheduled campaign) cannot both act on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import DeliveryError, UnknownName
from mailer.models import Campaign, Delivery, Region, utcnow
from mailer.sending.queue import STATES, find_campaign, retryable_counts
from mailer.settings import Settings

SEND_TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


def parse_send_time(text: str, zone: ZoneInfo | None = None) -> datetime:
    """``2025-11-17 08:00``, wall-clock time in ``zone`` (default: the ``timezone`` setting's
    default), as an aware UTC datetime."""
    zone = zone or ZoneInfo(Settings.timezone)
    for fmt in SEND_TIME_FORMATS:
        try:
            wall = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return wall.replace(tzinfo=zone).astimezone(UTC)
    raise DeliveryError(
        f"cannot read the time {text!r}",
        field="--at",
        hint=f'write it like "2025-11-17 08:00", in {zone.key} time',
    )


@dataclass(frozen=True)
class Control:
    """What a control command did to a campaign."""

    campaign: str
    status: str  # the campaign's status afterwards
    was: str
    changed: int = 0  # deliveries changed (cancelled, or put back in the queue)

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "status": self.status, "was": self.was, "changed": self.changed}


def _campaign_for_update(session: Session, slug: str) -> Campaign:
    query = select(Campaign).where(Campaign.slug == slug).with_for_update()
    campaign = session.scalars(query).one_or_none()
    if campaign is None:
        raise UnknownName(
            f"campaign {slug!r} has not been sent or scheduled", hint=f"mailer campaigns send {slug}"
        )
    return campaign


def start_campaign(db: Database, slug: str) -> Control:
    """Mark an enqueued campaign ``sending``: every worker takes part from its next look."""
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        check_sendable(was, slug)
        campaign.status, campaign.status_reason = "sending", ""
        campaign.started_at = campaign.started_at or utcnow()
        return Control(slug, campaign.status, was)


def schedule_campaign(db: Database, slug: str, when: datetime) -> Control:
    """Mark an enqueued campaign ``scheduled`` for ``when`` (UTC); a running worker starts it then."""
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        check_sendable(was, slug)
        if was == "sending":
            raise DeliveryError(
                f"campaign {slug!r} is sending already", hint=f"pause it first: mailer campaigns pause {slug}"
            )
        campaign.status, campaign.status_reason, campaign.scheduled_at = "scheduled", "", when
        return Control(slug, "scheduled", was)


def start_due(db: Database, now: datetime | None = None) -> list[str]:
    """Start every scheduled campaign whose time has come; their slugs (any worker may call it)."""
    now = now or utcnow()
    with db.session() as session:
        due = session.scalars(
            select(Campaign)
            .where(Campaign.status == "scheduled", Campaign.scheduled_at <= now)
            .with_for_update(skip_locked=True)
        ).all()
        for campaign in due:
            campaign.status, campaign.status_reason = "sending", ""
            campaign.started_at = campaign.started_at or now
        return [c.slug for c in due]


def sending_campaigns(db: Database) -> list[tuple[int, str]]:
    """(id, slug) of every campaign being sent, the oldest first."""
    with db.session() as session:
        rows = session.execute(
            select(Campaign.id, Campaign.slug).where(Campaign.status == "sending").order_by(Campaign.id)
        ).all()
    return [(int(i), str(s)) for i, s in rows]


def pause_campaign(db: Database, slug: str, reason: str = "paused by an editor") -> Control:
    """Stop every sender of the campaign; what they hold goes back to the queue (``resume`` goes on)."""
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        if was not in ("sending", "queued", "scheduled", "paused"):
            raise DeliveryError(f"campaign {slug!r} is {was}: there is nothing to pause")
        campaign.status, campaign.status_reason = "paused", reason
        return Control(slug, "paused", was)


def resume_campaign(db: Database, slug: str) -> Control:
    """Set a paused (or queued) campaign sending again, where it stopped."""
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        if was not in ("paused", "queued", "sending"):
            raise DeliveryError(
                f"campaign {slug!r} is {was}: only a paused campaign can be resumed",
                hint="`mailer campaigns status` shows it",
            )
        campaign.status, campaign.status_reason = "sending", ""
        campaign.started_at = campaign.started_at or utcnow()
        return Control(slug, "sending", was)


def cancel_campaign(db: Database, slug: str) -> Control:
    """Cancel every delivery not yet sent, claimed ones included; nothing more of it goes out.

    A claimed delivery keeps its ``claimed_by``: if its message was already on a connection when
    the sender noticed, the outcome is still recorded (``sent``), so the counts stay true.
    """
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        if was in ("sent", "cancelled"):
            raise DeliveryError(f"campaign {slug!r} is {was} already: there is nothing to cancel")
        campaign.status, campaign.status_reason = "cancelled", "cancelled by an editor"
        campaign.finished_at = utcnow()
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.campaign_id == campaign.id,
                Delivery.status.in_(("pending", "sending", "deferred")),
            )
            .values(status="cancelled", lease_until=None, next_attempt_at=None)
        )
        return Control(slug, "cancelled", was, int(result.rowcount))  # type: ignore[attr-defined]


def check_sendable(status: str, slug: str) -> None:
    if status == "sent":
        raise DeliveryError(
            f"campaign {slug!r} has been sent already",
            hint=f"`mailer campaigns status {slug}` shows it; `mailer campaigns retry {slug}` sends again "
            "what failed for temporary reasons",
        )
    if status == "cancelled":
        raise DeliveryError(f"campaign {slug!r} was cancelled", hint="copy it to a new slug to send it again")


# ---------------------------------------------------------------------------------------------
# status


def next_steps(
    slug: str,
    counts: dict[str, int],
    next_attempt_at: datetime | None,
    *,
    retryable: int = 0,
    zone: ZoneInfo | None = None,
    now: datetime | None = None,
) -> list[str]:
    """What an editor can do about the deliveries of ``slug`` that are deferred, of unknown outcome
    or failed for temporary reasons: one sentence each, with the command."""
    steps = []
    deferred, unknown = counts.get("deferred", 0), counts.get("unknown", 0)
    if deferred:
        when = _when(next_attempt_at, zone, now)
        steps.append(
            f"{deferred} deferred after temporary failures; the next attempt is due {when}: "
            f"`mailer campaigns send {slug}` then sends those due "
            "(a running `mailer worker` does it by itself); to try them now: "
            f"`mailer campaigns retry {slug}`"
        )
    if unknown:
        steps.append(
            f"{unknown} with an unknown outcome: the whole message went out but no reply came, so the relay "
            "may have delivered it and it is not resent by itself; to send it again (the member may get "
            f"it twice): `mailer campaigns retry {slug} --unknown`"
        )
    if retryable:
        steps.append(
            f"{retryable} failed for temporary reasons (given up, or refused with a 4xx); "
            f"to try them again now: `mailer campaigns retry {slug}`"
        )
    return steps


def _when(at: datetime | None, zone: ZoneInfo | None, now: datetime | None) -> str:
    if at is None:
        return "now"
    zone = zone or ZoneInfo("UTC")
    text = at.astimezone(zone).strftime("%Y-%m-%d %H:%M") + f" ({zone.key})"
    seconds = (at - (now or utcnow())).total_seconds()
    if seconds <= 0:
        return f"now (since {text})"
    minutes = round(seconds / 60)
    span = f"{minutes} minute(s)" if minutes < 120 else f"{minutes / 60:.1f} hours"
    return f"at {text}, in {span}"


@dataclass
class CampaignStatus:
    slug: str
    status: str
    reason: str
    total: int
    counts: dict[str, int]
    by_region: list[tuple[str, dict[str, int]]]
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None = None  # the earliest next attempt of a deferred delivery
    retryable: int = 0  # failed deliveries `mailer campaigns retry` would send again

    @property
    def waiting(self) -> bool:
        """Sending, with only deferred deliveries left: sending again (or a worker) goes on when due."""
        return (
            self.status == "sending"
            and bool(self.counts.get("deferred"))
            and not any(self.counts.get(s) for s in ("pending", "sending"))
        )

    def next_steps(self, zone: ZoneInfo | None = None) -> list[str]:
        """What to do about deferred, unknown and retryable deliveries, with the commands."""
        return next_steps(self.slug, self.counts, self.next_attempt_at, retryable=self.retryable, zone=zone)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "status": self.status,
            "reason": self.reason,
            "total": self.total,
            "counts": {s: self.counts.get(s, 0) for s in STATES},
            "by_region": {label: counts for label, counts in self.by_region},
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "retryable": self.retryable,
            "next_steps": self.next_steps(),
        }


def campaign_status(db: Database, shape: Shape, slug: str) -> CampaignStatus:
    """Counts by state, overall and by region, of a campaign's deliveries."""
    with db.session() as session:
        campaign = find_campaign(session, slug)
        if campaign is None:
            raise UnknownName(
                f"campaign {slug!r} has not been sent", hint="send it with `mailer campaigns send`"
            )
        # Grouped by the region's id, named after: no join per delivery.
        rows = session.execute(
            select(Delivery.region_id, Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign.id)
            .group_by(Delivery.region_id, Delivery.status)
        ).all()
        slugs = dict(session.execute(select(Region.id, Region.slug)).all()) if rows else {}
        counts: Counter[str] = Counter()
        regions: dict[str, dict[str, int]] = {}
        for region_id, state, n in rows:
            region = slugs.get(region_id) if region_id is not None else None
            label = shape.label(region) if region in shape.regions else (region or "(no region)")
            regions.setdefault(label, {})[state] = int(n)
            counts[state] += int(n)
        next_attempt_at = None
        if counts.get("deferred"):
            next_attempt_at = session.scalar(
                select(func.min(Delivery.next_attempt_at)).where(
                    Delivery.campaign_id == campaign.id, Delivery.status == "deferred"
                )
            )
        retryable = retryable_counts(session, campaign.id)["failed"] if counts.get("failed") else 0
        return CampaignStatus(
            slug=slug,
            status=campaign.status,
            reason=campaign.status_reason,
            total=sum(counts.values()),
            counts=dict(counts),
            by_region=sorted(regions.items()),
            started_at=campaign.started_at,
            finished_at=campaign.finished_at,
            next_attempt_at=next_attempt_at,
            retryable=retryable,
        )
