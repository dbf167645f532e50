"""Sending: campaigns, their stages and variants, the deliveries queue, the workers' rows and the
rate limits every process shares."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, UTCDateTime, utcnow


class Campaign(Base):
    """One send of an issue or alert. ``status``: draft, scheduled, sending, paused, sent, cancelled."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # newsletter, alert
    title: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(500))
    audience: Mapped[str] = mapped_column(Text)
    issue_date: Mapped[str] = mapped_column(String(10))  # the issue's "today", ISO date
    source: Mapped[str] = mapped_column(Text, default="")  # the issue file as sent, for the archive
    status: Mapped[str] = mapped_column(String(32), default="draft", index=True)
    network: Mapped[str] = mapped_column(String(64), default="")  # the network it speaks as (a slug)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignStage(Base):
    """One stage of a campaign's send (docs/decisions.md, Stages): each ``send`` of a campaign adds
    the members of its audience (narrowed by ``segment``, capped by ``limit``, or only those added
    since the last stage) who have no delivery yet. ``recipients`` is how many it added."""

    __tablename__ = "campaign_stages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(Text, default="")
    limit: Mapped[int | None] = mapped_column(Integer)
    new_members: Mapped[bool] = mapped_column(Boolean, default=False)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Variant(Base):
    """What one group of members sees: rendered once, filled per recipient at send time."""

    __tablename__ = "variants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(500), default="")
    item_ids: Mapped[str] = mapped_column(Text, default="")  # space-separated, in editor order
    subject: Mapped[str] = mapped_column(String(500))
    preheader: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_variants_campaign_key", "campaign_id", "key", unique=True),)


class Delivery(Base):
    """One member's copy of one campaign: the queue the delivery engine works through.

    ``status``: pending, sending (claimed under a lease), deferred (tried again at ``next_attempt_at``),
    sent, failed, unknown (no reply after the final dot: never resent by itself), suppressed, skipped,
    cancelled. ``attempts``: the times it was taken from the queue and tried (see
    :mod:`mailer.sending.queue`).
    ``id`` names the delivery in the VERP return path (bounces+ID@…) and the Message-ID.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="")
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_deliveries_campaign_member", "campaign_id", "member_id", unique=True),
        Index("ix_deliveries_campaign_status", "campaign_id", "status", "id"),
    )


# --- inbound (docs/architecture.md, Trust boundaries): bounces, complaints and mailed unsubscribes ----------


class WorkerRow(Base):
    """A ``mailer worker`` process, as it last reported itself (see mailer/sending/worker.py).

    ``state``: running, stopped. A running worker whose ``heartbeat_at`` is older than a few
    heartbeats is lost (killed, or its machine is gone); its claims come back when their leases end.
    """

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    concurrency: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="running")
    campaign: Mapped[str] = mapped_column(String(200), default="")
    holding: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    rate: Mapped[float] = mapped_column(default=0.0)  # messages per second since the last heartbeat
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class RateBucket(Base):
    """A relay's token bucket, shared by every process sending through the relay.

    ``name`` is the relay's label and the limit (``smtp://relay:25 per second``); ``stamp`` is when
    ``tokens`` was last brought up to date, in seconds since the epoch by the database's clock.
    """

    __tablename__ = "rate_buckets"

    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    tokens: Mapped[float] = mapped_column(default=0.0)
    stamp: Mapped[float] = mapped_column(default=0.0)


# --- the web app's limits (docs/decisions.md, Trust boundaries): counted in the database, so they hold across


class RateHit(Base):
    """One counted action of the web app, for limits that every process and restart shares.

    ``scope`` names the limit (``signup-network``, ``signup-mailbox``, ``preferences-mail``); ``key``
    is what it is counted by: a network prefix (``203.0.113.0/24``), a hash of a normalised mailbox
    (never the address itself), a member id. Rows older than their limit's window are deleted as
    new hits come in.
    """

    __tablename__ = "rate_hits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_rate_hits_scope_key_time", "scope", "key", "created_at"),
        Index("ix_rate_hits_scope_time", "scope", "created_at"),
    )


class ChoreRun(Base):
    """When a worker's chore (reminders, purge, digests) last ran, and who holds it now."""

    __tablename__ = "chore_runs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str] = mapped_column(String(200), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(Text, default="")
