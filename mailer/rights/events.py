"""Event answers (RSVPs) in subject access and erasure: the one place that reads and erases them
(docs/data.md, Where it is). A member's answers are theirs by ``member_id``; someone who is not a
member answered from the public event page with their address and name (``rsvps.email``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.orm import Session

from mailer.models import EventMail, EventRow, Rsvp


def _theirs(member_id: int | None, address: str) -> ColumnElement[bool]:
    by_address = Rsvp.email == address
    return or_(Rsvp.member_id == member_id, by_address) if member_id is not None else by_address


def rsvps_of(session: Session, member_id: int | None, address: str) -> list[dict[str, Any]]:
    """The person's answers to events, oldest first."""
    rows = session.execute(
        select(Rsvp, EventRow.title, EventRow.starts_at, EventRow.campaign_slug)
        .join(EventRow, EventRow.id == Rsvp.event_id)
        .where(_theirs(member_id, address))
        .order_by(Rsvp.id)
    ).all()
    return [
        {
            "event": title,
            "starts_at": starts_at,
            "campaign": slug,
            "answer": r.answer,
            "name": r.name,
            "answered_at": r.answered_at,
            "confirmed_at": r.confirmed_at,
        }
        for r, title, starts_at, slug in rows
    ]


def erase_rsvps(session: Session, member_id: int | None, address: str) -> int:
    """Delete the person's answers to events (before their member row goes), and the rows of the
    mails sent to them about those events (reminders, organisers' messages); how many answers."""
    theirs = select(Rsvp.id).where(_theirs(member_id, address)).scalar_subquery()
    session.execute(delete(EventMail).where(EventMail.rsvp_id.in_(theirs)))
    result = session.execute(delete(Rsvp).where(_theirs(member_id, address)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
