"""The database tables, as SQLAlchemy 2.0 typed models.

The audience: regions (a tree), interests, members with their interests and free-form fields, an
append-only consent log, and suppressions keyed by a hash of the normalised address. Suppression is
separate from membership: no import and no admin action removes one silently.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC everywhere and always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Region(Base):
    """A node of the region tree. ``path`` is ``/south-east/kent/`` so that a prefix finds descendants."""

    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    path: Mapped[str] = mapped_column(String(1000), index=True)


class Interest(Base):
    """A topic or team members opt into (refugees, MP advocacy, schools, …)."""

    __tablename__ = "interests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")


class Member(Base):
    """A person on the list. ``email`` is the normalised address; ``address_hash`` keys suppressions."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    postcode: Mapped[str] = mapped_column(String(16), default="")
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The name to greet them by ("" when not known: they are greeted "Hello,").
    first_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    # Whether they may be mailed (mailer.audience.mailable): subscribed, not-opted-in, unsubscribed,
    # cleaned; where that came from ("import:FILE:COLUMN=VALUE", "signup", "preferences", …) and when.
    status: Mapped[str] = mapped_column(String(16), default="subscribed", server_default="subscribed")
    status_source: Mapped[str] = mapped_column(Text, default="", server_default="")
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)

    region: Mapped[Region | None] = relationship(lazy="joined")
    interests: Mapped[list[Interest]] = relationship(secondary="member_interests", order_by="Interest.slug")
    fields: Mapped[list[MemberField]] = relationship(
        cascade="all, delete-orphan", order_by="MemberField.name"
    )


class MemberInterest(Base):
    __tablename__ = "member_interests"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    interest_id: Mapped[int] = mapped_column(
        ForeignKey("interests.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class MemberField(Base):
    """A free-form field from an extra CSV column (``student = yes``); segments can test it."""

    __tablename__ = "member_fields"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(1000), default="")

    __table_args__ = (Index("ix_member_fields_name_value", "name", "value"),)


class MemberChoice(Base):
    """A field a member set themselves (preferences page, sign-up, unsubscribe): ``name``,
    ``region``, ``interests`` or ``status``. An import never overwrites such a field (their choice
    is newer than any CRM row); see docs/import.md, "Members' own choices"."""

    __tablename__ = "member_choices"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    field: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # preferences, signup, one-click, link, mailto
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentEvent(Base):
    """One line of the consent log: appended to, never rewritten.

    ``address_hash`` outlives the member: erasing a member nulls ``member_id`` and keeps the rest,
    which holds no personal data.
    """

    __tablename__ = "consent_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))  # subscribe, confirm, unsubscribe, preferences, erase
    source: Mapped[str] = mapped_column(String(32))  # import, signup, one-click, link, mailto, bounce, admin
    wording: Mapped[str] = mapped_column(Text, default="")
    campaign: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Suppression(Base):
    """An address that must never be mailed again, by the hash of its normalised form."""

    __tablename__ = "suppressions"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))  # unsubscribe, hard-bounce, complaint, erasure, admin
    source: Mapped[str] = mapped_column(String(32))  # one-click, link, mailto, bounce, admin, import
    campaign: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NetworkLeave(Base):
    """A member who left one network's mail (docs/decisions.md, Networks): that network's campaigns skip
    them; other networks' mail is unchanged. Leaving all mail is a suppression, not rows here."""

    __tablename__ = "network_leaves"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # one-click, link, mailto, admin
    campaign: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_network_leaves_network", "network", "member_id"),)


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


class InboundMessage(Base):
    """One processed inbound mail (a bounce, a complaint, an unsubscribe, an auto-reply…).

    ``fingerprint`` (SHA-256 of the Message-ID, or of the bytes when there is none) makes processing
    idempotent: a message seen before is skipped, whichever source it comes from again.
    ``kind``: hard-bounce, soft-bounce, policy, delay, complaint, unsubscribe, auto-reply, unknown.
    """

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(998), default="")
    source: Mapped[str] = mapped_column(String(500), default="")
    kind: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(500), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BounceEvent(Base):
    """What one inbound mail says about one recipient: a bounce, a policy block or a complaint.

    ``kind``: hard, soft, policy, delay, complaint. ``delivery_id`` comes from the VERP address (or
    the Message-ID) of the bounced message; ``address_hash`` is the member's, else the reported
    address's. Soft bounces within the window are counted per ``address_hash``.
    """

    __tablename__ = "bounce_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    address_hash: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="")
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_bounce_events_hash_kind_time", "address_hash", "kind", "created_at"),)


# --- workers (docs/decisions.md, Workers)


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


class LoginAttempt(Base):
    """Failed log-ins to the admin pages from one address (an IPv4 address, or an IPv6 /64).

    After a few failures each further one locks the address out for twice as long as the last
    (``locked_until``), up to a cap; a success or a quiet day clears the row (``mailer.limits``).
    """

    __tablename__ = "login_attempts"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- the desk (docs/decisions.md, The desk) ---
# The editorial desk's people, roles, sign-in links, sessions and audit log (mailer/web/desk/).


class User(Base):
    """A person who signs in to the desk (an editor, approver, contributor or admin). ``email`` is
    the normalised address. A disabled person keeps their row (the audit log names them) but can
    no longer sign in. ``password_hash`` (argon2) is optional: the mailed link always works."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserRole(Base):
    """One role of a person: ``role`` is admin, editor, approver or contributor; ``network`` a
    network's slug ("" for an admin of every network, or the workspace's single network);
    ``region`` a region's slug for a contributor (a local group), else ""."""

    __tablename__ = "user_roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    network: Mapped[str] = mapped_column(String(64), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_user_roles_user_role_network_region", "user_id", "role", "network", "region", unique=True),
    )


class DeskSession(Base):
    """A signed-in browser. ``id`` is the SHA-256 (hex) of the random 32-byte value in the cookie:
    the cookie's value itself is stored nowhere. Every request looks its session up here, so a
    revoked one is refused at once."""

    __tablename__ = "desk_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class SignInLink(Base):
    """A one-time sign-in link mailed to a person: ``token_hash`` is the SHA-256 (hex) of the token
    in the link. Used once (``used_at``), or never after ``expires_at``."""

    __tablename__ = "sign_in_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One line of the desk's audit log: who (``user_id``; None for the command line or the
    system) did what (``action``, e.g. ``role.add``) to what (``object``). Appended to, never
    rewritten."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(String(500), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Contribution(Base):
    """An event or item a contributor (a local group or region) sent to a network's next issue.

    ``kind``: event or item; ``fields``: the form's values as JSON (checked when submitted);
    ``status``: new, accepted, declined. Accepted into ``issue_slug``; a declined one carries the
    editor's ``note``, mailed back to the contributor."""

    __tablename__ = "contributions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network: Mapped[str] = mapped_column(String(64), index=True)
    region: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(500))
    fields: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    issue_slug: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IssueEdit(Base):
    """A save of an issue file from the desk: who saved it and the SHA-256 of the file they wrote.
    The newest row names the issue's last editor (who may not approve it)."""

    __tablename__ = "issue_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Approval(Base):
    """An approver's approval of an issue, bound to ``content_hash``: the SHA-256 of the issue file
    and its audience as approved. Any later edit changes the hash and so voids it."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), index=True)
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
