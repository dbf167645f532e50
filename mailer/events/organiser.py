"""Messages from an event's organiser (docs/events.md, Messages to the people coming).

A desk person whose roles cover an event (``mailer.desk.attendance`` checks, and audits) writes a
short message to the people coming to it, and, if they choose, to those on its waiting list. The
message is stored once (``organiser_messages``) and queued: one ``event_mails`` row of kind
``organiser`` per recipient, its ``sequence`` the message's id, so the table's unique key still
holds (one message, each answer once). The workers' ``event-mails`` chore sends them through the
reminders' path (``mailer.events.reminders``): as the event's network, DKIM-signed, List-Unsubscribe
for members, nothing to a suppressed address or to a member who left the network.

The text is a desk person's free text: it goes into the mail's plain-text body as it is, and into
no header but the subject, which must be one line without control characters.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from mailer.errors import MailerError
from mailer.events.views import EventInfo
from mailer.models import EventMail, OrganiserMessage, Rsvp

KIND = "organiser"
SUBJECT_LIMIT = 150
BODY_LIMIT = 5000
#: Line breaks other than CR and LF, which some mail programs also break a header at.
LINE_SEPARATORS = frozenset("\u0085\u2028\u2029")


class MessageRefused(MailerError):
    """A message that cannot be sent as written (its ``field`` says which part, and why)."""


@dataclass(frozen=True)
class Draft:
    """A message checked: its subject (one line) and body (lines ending in LF), and who it is for."""

    subject: str
    body: str
    waiting_too: bool


@dataclass(frozen=True)
class Queued:
    """A message queued: its id and how many mails the workers will send."""

    message_id: int
    recipients: int


def _controls(text: str, allowed: str = "") -> bool:
    return any((unicodedata.category(c) == "Cc" and c not in allowed) or c in LINE_SEPARATORS for c in text)


def check(subject: str, body: str, *, waiting_too: bool = False) -> Draft:
    """The message as it will be sent, or ``MessageRefused`` naming the field: a subject of one
    line, 1 to 150 characters, without control characters; a body of 1 to 5,000 characters (line
    ends made LF; tabs allowed, no other control character)."""
    subject = subject.strip()
    if not subject:
        raise MessageRefused("the subject is empty", field="subject", hint="write a few words")
    if _controls(subject):
        raise MessageRefused(
            "the subject must be one line, without control characters", field="subject", hint="join its lines"
        )
    if len(subject) > SUBJECT_LIMIT:
        raise MessageRefused(
            f"the subject is {len(subject)} characters long, more than {SUBJECT_LIMIT}",
            field="subject",
            hint="shorten it",
        )
    body = body.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if not body.strip():
        raise MessageRefused("the message is empty", field="body", hint="write what you want to tell them")
    if len(body) > BODY_LIMIT:
        raise MessageRefused(
            f"the message is {len(body):,} characters long, more than {BODY_LIMIT:,}",
            field="body",
            hint="shorten it, or link to a page with the rest",
        )
    if _controls(body, "\n\t"):
        raise MessageRefused(
            "the message has control characters", field="body", hint="retype it as plain text"
        )
    return Draft(subject, body + "\n", waiting_too)


def _for(waiting_too: bool) -> ColumnElement[bool]:
    answers = ("yes", "waitlist") if waiting_too else ("yes",)
    return and_(Rsvp.answer.in_(answers), or_(Rsvp.member_id.is_not(None), Rsvp.confirmed_at.is_not(None)))


def recipients(session: Session, event_id: int, *, waiting_too: bool) -> list[int]:
    """The answers (``rsvps`` ids) a message goes to: the confirmed "yes" answers, and those on
    the waiting list if ``waiting_too``. Who may not be mailed is left out when it is sent."""
    return list(
        session.scalars(select(Rsvp.id).where(Rsvp.event_id == event_id, _for(waiting_too)).order_by(Rsvp.id))
    )


def queue(
    session: Session, event: EventInfo, draft: Draft, *, author_id: int | None, now: datetime
) -> Queued:
    """Store ``draft`` once and queue a mail of it to each recipient (``event_mails`` rows,
    ``queued``); the workers send them."""
    message = OrganiserMessage(
        event_id=event.id,
        author_id=author_id,
        subject=draft.subject,
        body=draft.body,
        waiting_too=draft.waiting_too,
        created_at=now,
    )
    session.add(message)
    session.flush()
    ids = recipients(session, event.id, waiting_too=draft.waiting_too)
    session.add_all(
        EventMail(
            event_id=event.id,
            rsvp_id=rsvp_id,
            kind=KIND,
            sequence=message.id,
            status="queued",
            claimed_by="",
            claimed_at=now,
        )
        for rsvp_id in ids
    )
    message.recipients = len(ids)
    session.flush()
    return Queued(message.id, len(ids))
