"""The mail the workers send about events: one row per event, attendee, kind and sequence; and the
short messages an organiser writes to the people coming (``organiser_messages``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, UTCDateTime, utcnow


class EventMail(Base):
    """A mail about an event to one attendee (an ``rsvps`` row): a ``reminder`` before it, a
    ``change`` (its time, place or title) or a ``cancel``, at the event's ``sequence``, or
    ``moved-up`` (a place came free for someone waiting), or ``organiser``: a message an organiser
    wrote (``organiser_messages``), whose id is the row's ``sequence``, queued (``status``
    ``queued``) for each recipient when the organiser sends it, and claimed by the worker that
    moves it from ``queued`` to ``claimed``.

    Unique per (event, answer, kind, sequence): a worker claims the mail by inserting its row
    (``status`` ``claimed``) before it sends, and marks it ``sent`` after (or ``failed``, with the
    relay's words in ``detail``); a second worker's insert fails, so nobody gets a mail twice. A
    worker that dies between the two leaves it ``claimed``: that mail is lost, never sent twice."""

    __tablename__ = "event_mails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    rsvp_id: Mapped[int] = mapped_column(ForeignKey("rsvps.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="claimed")
    claimed_by: Mapped[str] = mapped_column(String(200), default="")
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (Index("ix_event_mails_once", "event_id", "rsvp_id", "kind", "sequence", unique=True),)


class OrganiserMessage(Base):
    """A short message an organiser (a desk person whose roles cover the event) wrote to the people
    coming to an event, stored once; each recipient is an ``event_mails`` row of kind
    ``organiser`` whose ``sequence`` is this message's id. Free text: it goes into the mail's body
    as text, and into no header but the subject (one line, checked when written)."""

    __tablename__ = "organiser_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(String(150))
    body: Mapped[str] = mapped_column(Text)
    waiting_too: Mapped[bool] = mapped_column(Boolean, default=False)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
