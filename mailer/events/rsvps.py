"""Answers to events (docs/events.md, Capacity rules).

A member answers from the link in their message (``answer_as_member``); someone who is not a member
from the public event page, confirmed by a mailed link (``request_answer``, then
``confirm_answer``). An answer is ``yes`` or ``no``; a "yes" to a full event (``capacity`` reached
by the confirmed "yes" answers) is put on the waiting list (``waitlist``), in the order people
asked, and moves up when a place frees (``promote_waiting``: ``promoted_at`` is set, so that the
person can be told by mail). Answering again with the same answer changes nothing; changing it is
always possible until the event is over or cancelled. Every change is a line of the consent log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.audience.addresses import address_hash
from mailer.audience.consent import log_rsvp
from mailer.errors import MailerError
from mailer.events.views import EventInfo, info
from mailer.models import Campaign, Delivery, EventRow, Member, Rsvp

ANSWERS = ("yes", "no")
#: What a row's ``answer`` may be.
STATES = ("yes", "no", "waitlist")


class EventClosed(MailerError):
    """The event takes no answers: unknown, cancelled or over."""


class StaleConfirmation(MailerError):
    """A confirmation link used already, or made before a later answer: it changes nothing."""


@dataclass(frozen=True)
class Counts:
    """How many confirmed answers an event has, by answer."""

    yes: int = 0
    no: int = 0
    waitlist: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"yes": self.yes, "no": self.no, "waitlist": self.waitlist}


@dataclass(frozen=True)
class Attendee:
    """One confirmed answer, for the organiser's list: a member's, or a non-member's (``member_id``
    None) with the address they gave."""

    rsvp_id: int
    member_id: int | None
    name: str
    email: str
    answer: str
    answered_at: datetime
    promoted_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "email": self.email,
            "member": self.member_id is not None,
            "answer": self.answer,
            "answered_at": self.answered_at.isoformat(),
        }


@dataclass(frozen=True)
class Answered:
    """What answering did: the answer now recorded (``waitlist`` for a "yes" to a full event),
    whether anything changed, and the rsvp ids moved up from the waiting list as a result."""

    event: EventInfo
    answer: str
    changed: bool
    promoted: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event.uid, "answer": self.answer, "changed": self.changed}


def events_of(session: Session, slugs: list[str]) -> dict[str, EventInfo]:
    """The events of campaigns ``slugs``, by UID (without the domain): their SEQUENCE, LAST-MODIFIED
    and whether they are cancelled, for the calendar feeds."""
    if not slugs:
        return {}
    rows = session.scalars(select(EventRow).where(EventRow.campaign_slug.in_(slugs)))
    return {r.uid: info(r) for r in rows}


def find_event(session: Session, uid: str) -> EventInfo | None:
    """The event with UID ``uid`` (without the domain), or None."""
    row = session.scalars(select(EventRow).where(EventRow.uid == uid)).one_or_none()
    return info(row) if row is not None else None


def _open_event(session: Session, uid: str, now: datetime) -> EventRow:
    """The event's row, locked for the answer (PostgreSQL: so two last places are not both given)."""
    row = session.scalars(select(EventRow).where(EventRow.uid == uid).with_for_update()).one_or_none()
    if row is None:
        raise EventClosed(f"no event {uid!r}", hint="the link may be from an issue not sent yet")
    if row.cancelled_at is not None:
        raise EventClosed(f"the event {row.title!r} was cancelled")
    if row.ends_at <= now:
        raise EventClosed(f"the event {row.title!r} is over")
    return row


def _yes_count(session: Session, event_id: int, but: int | None = None) -> int:
    query = select(func.count()).where(
        Rsvp.event_id == event_id,
        Rsvp.answer == "yes",
        (Rsvp.member_id.is_not(None)) | (Rsvp.confirmed_at.is_not(None)),
    )
    if but is not None:
        query = query.where(Rsvp.id != but)
    return int(session.scalar(query) or 0)


def _counted(row: Rsvp) -> str | None:
    """The answer ``row`` counts as now: None for a new row or a non-member's unconfirmed one."""
    if row.id is None or (row.member_id is None and row.confirmed_at is None):
        return None
    return row.answer


def _record(
    session: Session,
    event: EventRow,
    row: Rsvp,
    answer: str,
    now: datetime,
    source: str,
    digest: str,
    was: str | None,
) -> Answered:
    """Set ``row``'s answer under the capacity rules; ``was`` is what it counted as before."""
    if answer not in ANSWERS:
        raise MailerError(f"an answer is yes or no, not {answer!r}", field="answer")
    state = answer
    if answer == "yes" and was in ("yes", "waitlist"):
        state = was
    elif (
        answer == "yes"
        and event.capacity is not None
        and _yes_count(session, event.id, but=row.id) >= event.capacity
    ):
        state = "waitlist"
    changed = state != was
    if changed:
        row.answer = state
        row.answered_at = now
        row.updated_at = now
        row.promoted_at = None
        row.promotion_mailed_at = None
        if row.id is None:
            session.add(row)
        session.flush()
        log_rsvp(session, row.member_id, digest, event.uid, state, source, campaign=event.campaign_slug)
    promoted = promote_waiting(session, event.id, now) if changed and was == "yes" else []
    return Answered(info(event), state, changed, promoted)


def answer_as_member(
    session: Session, uid: str, member_id: int, answer: str, now: datetime, *, source: str = "link"
) -> Answered:
    """Record member ``member_id``'s ``answer`` (yes or no) to event ``uid``; idempotent."""
    event = _open_event(session, uid, now)
    member = session.get(Member, member_id)
    if member is None:
        raise EventClosed("no such member")
    row = session.scalars(
        select(Rsvp).where(Rsvp.event_id == event.id, Rsvp.member_id == member_id)
    ).one_or_none()
    if row is None:
        # (no copy of the member's name: the list reads it from the member, so erasure clears it)
        row = Rsvp(event_id=event.id, member_id=member_id, created_at=now)
    return _record(session, event, row, answer, now, source, member.address_hash, _counted(row))


def member_answer(session: Session, uid: str, member_id: int) -> str | None:
    """Member ``member_id``'s answer to event ``uid`` (yes, no, waitlist), or None."""
    return session.scalars(
        select(Rsvp.answer)
        .join(EventRow, EventRow.id == Rsvp.event_id)
        .where(EventRow.uid == uid, Rsvp.member_id == member_id)
    ).one_or_none()


@dataclass(frozen=True)
class MemberAnswer:
    """One of a member's answers, with its event and the id of the campaign it came in (for a link)."""

    event: EventInfo
    answer: str
    campaign_id: int


def member_answers(session: Session, member_id: int, since: datetime | None = None) -> list[MemberAnswer]:
    """Every answer of member ``member_id`` (to events not over by ``since``, when given), with its
    event, soonest first: for their preferences page."""
    query = (
        select(EventRow, Rsvp.answer, Campaign.id)
        .join(Rsvp, Rsvp.event_id == EventRow.id)
        .join(Campaign, Campaign.slug == EventRow.campaign_slug)
        .where(Rsvp.member_id == member_id)
        .order_by(EventRow.starts_at, EventRow.id)
    )
    if since is not None:
        query = query.where(EventRow.ends_at > since)
    return [MemberAnswer(info(event), answer, cid) for event, answer, cid in session.execute(query).all()]


def event_for_member(session: Session, uid: str, member_id: int, campaign_id: int | None) -> EventInfo | None:
    """Event ``uid``, if member ``member_id`` may answer it with a link of campaign ``campaign_id``:
    the event came in that campaign and the member was sent it (a delivery). None otherwise: a link
    made for one campaign's events answers no other's, and nobody answers for someone else."""
    if campaign_id is None:
        return None
    row = session.execute(
        select(EventRow)
        .join(Campaign, Campaign.slug == EventRow.campaign_slug)
        .join(Delivery, (Delivery.campaign_id == Campaign.id) & (Delivery.member_id == member_id))
        .where(EventRow.uid == uid, Campaign.id == campaign_id)
    ).scalar_one_or_none()
    return info(row) if row is not None else None


@dataclass(frozen=True)
class Requested:
    """A non-member's answer waiting for its confirmation: mail ``email`` a link for ``rsvp_id``."""

    event: EventInfo
    rsvp_id: int
    email: str
    answer: str
    serial: int  # the link's number: only the latest one mailed works, once


def request_answer(
    session: Session, uid: str, email: str, name: str, answer: str, now: datetime
) -> Requested:
    """A non-member's answer from the public event page (``email`` normalised and checked by the
    caller): nothing counts until the mailed link confirms it (``confirm_answer``). A row is made
    for the address if it has none; an existing answer is left as it is until confirmed."""
    event = _open_event(session, uid, now)
    if answer not in ANSWERS:
        raise MailerError(f"an answer is yes or no, not {answer!r}", field="answer")
    row = session.scalars(select(Rsvp).where(Rsvp.event_id == event.id, Rsvp.email == email)).one_or_none()
    if row is None:
        row = Rsvp(event_id=event.id, email=email, name=name, answer=answer, answered_at=now, created_at=now)
        session.add(row)
    row.link_serial = (row.link_serial or 0) + 1
    session.flush()
    return Requested(info(event), row.id, email, answer, row.link_serial)


def confirm_answer(session: Session, rsvp_id: int, answer: str, serial: int, now: datetime) -> Answered:
    """Confirm a non-member's answer with the link numbered ``serial``. Only the latest link mailed
    for the address works, once: a link used already, or overtaken by a later one, changes nothing
    (``StaleConfirmation``)."""
    row = session.get(Rsvp, rsvp_id)
    if row is None or row.member_id is not None:
        raise StaleConfirmation("this link no longer stands for an answer")
    event_row = session.get(EventRow, row.event_id)
    assert event_row is not None
    event = _open_event(session, event_row.uid, now)
    if serial != row.link_serial:
        raise StaleConfirmation("this link was used already, or a later one replaced it")
    row.link_serial += 1
    was = _counted(row)
    row.confirmed_at = row.confirmed_at or now
    digest = address_hash(session, row.email or "")
    return _record(session, event, row, answer, now, "event-page", digest, was)


def promote_waiting(session: Session, event_id: int, now: datetime) -> list[int]:
    """Move people up from the waiting list, in the order they asked, while places are free; returns
    the rsvp ids moved up (each with ``promoted_at`` set, to be told by mail)."""
    event = session.get(EventRow, event_id)
    if event is None or event.cancelled_at is not None:
        return []
    moved: list[int] = []
    while event.capacity is None or _yes_count(session, event_id) < event.capacity:
        row = session.scalars(
            select(Rsvp)
            .where(
                Rsvp.event_id == event_id,
                Rsvp.answer == "waitlist",
                (Rsvp.member_id.is_not(None)) | (Rsvp.confirmed_at.is_not(None)),
            )
            .order_by(Rsvp.answered_at, Rsvp.id)
            .limit(1)
        ).first()
        if row is None:
            break
        row.answer = "yes"
        row.promoted_at = now
        row.updated_at = now
        session.flush()
        digest = _digest_of(session, row)
        log_rsvp(session, row.member_id, digest, event.uid, "yes", "waitlist", campaign=event.campaign_slug)
        moved.append(row.id)
    return moved


def _digest_of(session: Session, row: Rsvp) -> str:
    if row.member_id is not None:
        member = session.get(Member, row.member_id)
        return member.address_hash if member is not None else ""
    return address_hash(session, row.email or "")


def attendees(session: Session, event_uid: str) -> list[Attendee]:
    """The confirmed answers to event ``event_uid``: yes, then the waiting list (in order), then no;
    each in the order they answered. Names and addresses: for the organiser's list only."""
    rows = session.execute(
        select(Rsvp, Member.email, Member.name)
        .join(EventRow, EventRow.id == Rsvp.event_id)
        .outerjoin(Member, Member.id == Rsvp.member_id)
        .where(
            EventRow.uid == event_uid,
            (Rsvp.member_id.is_not(None)) | (Rsvp.confirmed_at.is_not(None)),
        )
        .order_by(Rsvp.answered_at, Rsvp.id)
    ).all()
    order = {state: n for n, state in enumerate(STATES)}
    out = [
        Attendee(
            rsvp_id=r.id,
            member_id=r.member_id,
            name=(member_name or r.name) if r.member_id is not None else r.name,
            email=member_email if r.member_id is not None else (r.email or ""),
            answer=r.answer,
            answered_at=r.answered_at,
            promoted_at=r.promoted_at,
        )
        for r, member_email, member_name in rows
    ]
    out.sort(key=lambda a: order.get(a.answer, 9))
    return out


def counts(session: Session, event_ids: list[int]) -> dict[int, Counts]:
    """The confirmed answers of each of ``event_ids``, by answer (events with none are left out)."""
    if not event_ids:
        return {}
    rows = session.execute(
        select(Rsvp.event_id, Rsvp.answer, func.count())
        .where(
            Rsvp.event_id.in_(event_ids),
            (Rsvp.member_id.is_not(None)) | (Rsvp.confirmed_at.is_not(None)),
        )
        .group_by(Rsvp.event_id, Rsvp.answer)
    ).all()
    tally: dict[int, dict[str, int]] = {}
    for event_id, answer, n in rows:
        tally.setdefault(event_id, {})[answer] = int(n)
    return {k: Counts(**{s: v.get(s, 0) for s in STATES}) for k, v in tally.items()}


@dataclass(frozen=True)
class EventCounts:
    """One event of a campaign with its counts (no names: for the campaign report)."""

    event: EventInfo
    counts: Counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event.uid,
            "title": self.event.title,
            "regions": list(self.event.regions),
            **self.counts.as_dict(),
        }


def campaign_counts(session: Session, slug: str) -> list[EventCounts]:
    """The answers to each event of campaign ``slug``, counted, in date order."""
    rows = session.scalars(
        select(EventRow).where(EventRow.campaign_slug == slug).order_by(EventRow.starts_at, EventRow.id)
    ).all()
    tally = counts(session, [r.id for r in rows])
    return [EventCounts(info(r), tally.get(r.id, Counts())) for r in rows]
