"""The organiser's list (docs/events.md, The organiser's list): who answered each event, for the desk
people whose role covers the event.

A role covers an event of network N when it is an admin of N or of every network, an editor or an
approver of N, or a contributor (a local group's coordinator) of N whose region holds every region
of the event: an event for the whole audience (no regions of its own) is the network's, not a local
group's. Nobody else sees anything of it: ``NotAllowed`` (the pages answer 403). Names and addresses
are shown here only; the campaign report counts. Each look at a list and each export is written to
the audit log, and so is each message an organiser sends to the people coming
(``mailer.events.organiser``: who, which event, to how many).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience.exports import safe_cell
from mailer.audience.shape import Shape
from mailer.desk import audit
from mailer.desk.people import Person
from mailer.errors import MailerError
from mailer.events import Attendee, Counts, EventInfo, attendees, counts, info, organiser
from mailer.models import EventRow


class NotAllowed(MailerError):
    """The person's roles do not cover the event (the pages answer 403, and show nothing of it)."""


def covers(person: Person, event: EventInfo, shape: Shape) -> bool:
    """Whether ``person``'s roles cover ``event`` (see the module's docstring)."""
    if not person.active:
        return False
    for role in person.roles:
        if role.role == "admin" and role.network in ("", event.network):
            return True
        if role.network != event.network:
            continue
        if role.role in ("editor", "approver"):
            return True
        if role.role == "contributor" and role.region and event.regions:
            below = set(shape.descendants(role.region)) if role.region in shape.regions else {role.region}
            if all(r in below for r in event.regions):
                return True
    return False


@dataclass(frozen=True)
class EventLine:
    """An event on the desk's list, with its counts."""

    event: EventInfo
    counts: Counts


def events_for(session: Session, person: Person, shape: Shape, *, since: datetime) -> list[EventLine]:
    """The events ``person`` covers that are not over by ``since`` (cancelled ones included, to see
    who was told), soonest first, with their counts."""
    rows = session.scalars(
        select(EventRow).where(EventRow.ends_at > since).order_by(EventRow.starts_at, EventRow.id)
    ).all()
    shown = [info(r) for r in rows if covers(person, info(r), shape)]
    tally = counts(session, [e.id for e in shown])
    return [EventLine(e, tally.get(e.id, Counts())) for e in shown]


@dataclass(frozen=True)
class AttendeeList:
    """One event's answers, for an organiser whose role covers it."""

    event: EventInfo
    counts: Counts
    attendees: list[Attendee]


def attendee_list(session: Session, person: Person, shape: Shape, uid: str, *, now: datetime) -> AttendeeList:
    """Event ``uid``'s answers for ``person``; ``NotAllowed`` when their roles do not cover it (or it
    does not exist: the same answer, so a page reveals nothing). The look is audited."""
    event = covered_event(session, person, shape, uid)
    people = attendees(session, uid)
    tally = counts(session, [event.id]).get(event.id, Counts())
    audit.record(
        session, "event-attendees", by=person.id, object=uid, detail=f"{len(people)} answers", now=now
    )
    return AttendeeList(event, tally, people)


def covered_event(session: Session, person: Person, shape: Shape, uid: str) -> EventInfo:
    """Event ``uid`` if ``person``'s roles cover it; ``NotAllowed`` if not, or if there is no such
    event (the same answer, so that a page reveals nothing)."""
    row = session.scalars(select(EventRow).where(EventRow.uid == uid)).one_or_none()
    event = info(row) if row is not None else None
    if event is None or not covers(person, event, shape):
        raise NotAllowed("you do not organise this event", hint="ask an editor of its network")
    return event


def message_reach(session: Session, person: Person, shape: Shape, uid: str, draft: organiser.Draft) -> int:
    """How many people ``draft`` would go to (before the workers leave out whoever may not be
    mailed); ``NotAllowed`` as ``attendee_list``."""
    event = covered_event(session, person, shape, uid)
    return len(organiser.recipients(session, event.id, waiting_too=draft.waiting_too))


def send_message(
    session: Session, person: Person, shape: Shape, uid: str, draft: organiser.Draft, *, now: datetime
) -> organiser.Queued:
    """Queue ``draft`` to the people coming to event ``uid`` (``mailer.events.organiser.queue``),
    for ``person`` whose roles cover it (``NotAllowed`` if not); audited: who, which event, how many."""
    event = covered_event(session, person, shape, uid)
    queued = organiser.queue(session, event, draft, author_id=person.id, now=now)
    audit.record(
        session,
        "event-message",
        by=person.id,
        object=uid,
        detail=f"message {queued.message_id} to {queued.recipients} people",
        now=now,
    )
    return queued


CSV_COLUMNS = ("name", "email", "answer", "answered_at", "member")


def attendees_csv(session: Session, person: Person, shape: Shape, uid: str, *, now: datetime) -> str:
    """Event ``uid``'s answers as CSV, safe to open in a spreadsheet (``safe_cell``); audited."""
    listed = attendee_list(session, person, shape, uid, now=now)
    audit.record(
        session, "event-export", by=person.id, object=uid, detail=f"{len(listed.attendees)} rows", now=now
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for a in listed.attendees:
        writer.writerow(
            [
                safe_cell(a.name),
                safe_cell(a.email),
                a.answer,
                a.answered_at.isoformat(timespec="seconds"),
                "yes" if a.member_id is not None else "no",
            ]
        )
    return out.getvalue()
