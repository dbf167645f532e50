"""Answers to events (RSVPs) in the consent log: who said they would come, or would not, when,
from where, and what they were shown. An answer is not consent to mail: the newsletter box of the
public event page goes through the sign-up (``signup``), unticked by default."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailer.audience.consent.log import log_line

RSVP_ACTION = "rsvp"
#: Where an answer came from: the member's link in a message, the public event page (confirmed by
#: a mailed link), the member's preferences page, or a waitlist moved up (no one's action).
RSVP_SOURCES = ("link", "event-page", "preferences", "waitlist")
RSVP_WORDING = (
    "Answering tells the organisers of this event that you are coming or not; it does not sign you up."
)


def log_rsvp(
    session: Session,
    member_id: int | None,
    digest: str,
    event_uid: str,
    answer: str,
    source: str,
    *,
    campaign: str | None = None,
) -> None:
    """One line of the consent log for an answer (``yes``, ``no``, ``waitlist``) to ``event_uid``."""
    if source not in RSVP_SOURCES:
        raise ValueError(f"unknown RSVP source {source!r}")
    log_line(
        session,
        member_id,
        digest,
        RSVP_ACTION,
        source,
        campaign=campaign,
        detail=f"{event_uid}: {answer}",
        wording=RSVP_WORDING,
    )
