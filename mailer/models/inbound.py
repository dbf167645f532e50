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


# --- workers (docs/decisions.md, Workers)
