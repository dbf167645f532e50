"""Event answers (RSVPs) in subject access and erasure: the one place that reads and erases them.

The events tables (``mailer/models/events.py``) are not on this branch yet; when they are, read the
person's answers in ``rsvps_of`` and delete them (or their name and note) in ``erase_rsvps``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def rsvps_of(session: Session, member_id: int | None) -> list[dict[str, Any]]:
    """The member's answers to events, oldest first."""
    return []


def erase_rsvps(session: Session, member_id: int) -> int:
    """Delete the member's answers to events (before their row goes); how many."""
    return 0
