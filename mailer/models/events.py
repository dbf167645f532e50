"""Events members can answer: the calendar entries of sent issues, and the answers (RSVPs).

``events`` is kept in step with the issue files by ``mailer.events.sync_events`` (docs/events.md,
Tables): one row per calendar entry of a sent issue, keyed by the entry's stable UID. ``rsvps`` holds
one answer per event and member (or per event and address, for someone who is not a member).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, UTCDateTime, utcnow


class EventRow(Base):
    """One calendar entry of a sent issue, as members can answer it.

    ``uid`` is the entry's UID without the list domain (``{slug}-{entry key}``, as
    ``mailer.issue.calendar_text.event_uid`` makes it): the same in the mail, the feeds and the
    links. Times are UTC instants: ``starts_at``; ``ends_at`` (a timed event without an end gets the
    ``event_default_minutes`` setting; an all-day event ends at midnight after its last day, in the
    ``timezone`` setting's zone). ``regions`` is the entry's regions, comma-separated ("" is the
    issue's whole audience). ``content_hash`` is a hash of what members plan by (time, place,
    title): when it changes, ``sequence`` is raised and ``last_modified`` set (RFC 5545 3.8.7.4);
    so too when the entry is cancelled (``cancelled_at``: left out of the issue, or marked
    ``cancelled: true``). ``capacity`` None is no limit; ``remind_hours`` is how long before the
    start its reminder goes."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(300), unique=True)
    campaign_slug: Mapped[str] = mapped_column(String(200), index=True)
    entry_key: Mapped[str] = mapped_column(String(200), default="")
    network: Mapped[str] = mapped_column(String(64), default="", server_default="")
    regions: Mapped[str] = mapped_column(Text, default="", server_default="")
    title: Mapped[str] = mapped_column(String(500))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    place: Mapped[str] = mapped_column(Text, default="", server_default="")
    online_url: Mapped[str] = mapped_column(Text, default="", server_default="")
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The SEQUENCE its attendees were last told of: below ``sequence``, a change or cancellation
    # still to be mailed (whichever path synced it: a send, the desk, the events-sync chore).
    announced_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    capacity: Mapped[int | None] = mapped_column(Integer)
    remind_hours: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rsvp(Base):
    """One person's answer to one event: ``answer`` is ``yes``, ``no`` or ``waitlist`` (a "yes" to
    a full event, moved up in order, ``answered_at``, when a place frees; ``promoted_at`` says when,
    so that the person can be told by mail: ``promotion_mailed_at``).

    A member's row has ``member_id``; someone who is not a member answers from the public page with
    ``email`` (normalised) and ``name``, and their answer counts once ``confirmed_at`` is set (the
    mailed link, ``link_serial``). No token is stored: links are signed (``mailer.tokens``)."""

    __tablename__ = "rsvps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    answer: Mapped[str] = mapped_column(String(16))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    promotion_mailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The number of the latest confirmation link mailed to a non-member (in the signed link): only
    # that link works, and once (a replayed or overtaken one changes nothing).
    link_serial: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_rsvps_event_member", "event_id", "member_id", unique=True),
        Index("ix_rsvps_event_email", "event_id", "email", unique=True),
    )
