"""Mail that arrives: inbound messages and the bounces and complaints read from them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, UTCDateTime, utcnow


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


class ReplyRequest(Base):
    """A reply asking to leave (docs/decisions.md, Replies asking to leave): a person wrote "please
    unsubscribe me" to a network's address.

    ``state``: ``acted`` when it was honoured (by itself, its From proved by an aligned DKIM
    signature, or by a person), ``pending`` while it waits for a person, ``dismissed`` when a person
    found it is no request (or there was nobody to unsubscribe). ``decided_by`` names who acted
    ("DKIM-aligned" for the mail itself, a desk person's address, the OS user of the command line).
    ``member_id`` is the member the From address names (None for an address that is no member's);
    erasing the member erases their requests. ``signature`` is a fingerprint of the DKIM signature
    that proved it: the same signed mail sent again never acts twice.
    """

    __tablename__ = "reply_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id", ondelete="SET NULL"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320), default="")
    address_hash: Mapped[str] = mapped_column(String(64), default="")
    network: Mapped[str] = mapped_column(String(64), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    asked: Mapped[str] = mapped_column(String(200), default="")
    message_id: Mapped[str] = mapped_column(String(998), default="")
    signature: Mapped[str | None] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16), index=True)
    why: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(500), default="")


# --- workers (docs/decisions.md, Workers)
