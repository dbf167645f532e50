"""Events people come to (docs/events.md): the calendar entries of sent issues kept in a table in
step with the issue files (``sync``), answers to them with capacity and a waiting list (``rsvps``),
the signed links members answer from (``links``), and what an organiser and the reports see of them.

Stage: after ``compose`` (it reads an issue's calendar entries) and before ``render`` and
``sending``, so that a send can keep the table in step as it enqueues (``sending.snapshot``).
"""

from mailer.events.rsvps import (
    ANSWERS,
    Answered,
    Attendee,
    Counts,
    EventClosed,
    MemberAnswer,
    Requested,
    StaleConfirmation,
    answer_as_member,
    attendees,
    confirm_answer,
    counts,
    event_for_member,
    events_of,
    find_event,
    member_answer,
    member_answers,
    promote_waiting,
    request_answer,
)
from mailer.events.sync import (
    PLANNED,
    EventChange,
    SyncResult,
    content_hash,
    entry_regions,
    event_times,
    local_uid,
    sync_events,
)
from mailer.events.views import EventInfo, info, when_words

__all__ = [
    "ANSWERS",
    "PLANNED",
    "Answered",
    "Attendee",
    "Counts",
    "EventChange",
    "EventClosed",
    "EventInfo",
    "MemberAnswer",
    "Requested",
    "StaleConfirmation",
    "SyncResult",
    "answer_as_member",
    "attendees",
    "confirm_answer",
    "content_hash",
    "counts",
    "entry_regions",
    "event_for_member",
    "event_times",
    "events_of",
    "find_event",
    "info",
    "local_uid",
    "member_answer",
    "member_answers",
    "promote_waiting",
    "request_answer",
    "sync_events",
    "when_words",
]
