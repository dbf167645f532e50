"""Replies asking to leave, on the desk (docs/decisions.md, Replies asking to leave): what waits for a
person, shown to the admins of the network it was written to, and their decision.

``waiting(session, person)`` lists the pending requests of the networks ``person`` is an admin of
(every network's for an admin of every network). ``decide(session, shape, person, id, decision)``
unsubscribes the member (``unsubscribe``) or sets the request aside (``dismiss``) through
``mailer.inbound.requests``, recording the desk person who did it there and in the audit log. A
person who is no admin of the request's network gets "forbidden"; an unknown or decided request
"missing"; a request from no member's address cannot be unsubscribed ("nobody").
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.desk import audit, people
from mailer.desk.people import Person
from mailer.errors import MailerError
from mailer.inbound import requests
from mailer.inbound.requests import LeaveRequest

#: What an admin does with a reply asking to leave: the action of ``people.can`` it needs.
ACTION: Final = "manage-people"


def _networks(person: Person, shape: Shape) -> list[str] | None:
    """The networks whose requests ``person`` decides; None for all of them."""
    if person.admin_of_all:
        return None
    keys = list(shape.networks) or [""]
    return [key for key in keys if people.can(person, ACTION, key)]


def waiting(session: Session, person: Person, shape: Shape) -> list[LeaveRequest]:
    """The pending requests ``person`` may decide, oldest first (none for someone no admin)."""
    networks = _networks(person, shape)
    if networks == []:
        return []
    return requests.listed(session, networks=networks)


def decide(
    session: Session, shape: Shape, person: Person, request_id: int, decision: str, *, now: datetime
) -> str:
    """``person``'s decision on request ``request_id``: "done", "forbidden", "missing" (no such
    request, or decided already) or "nobody" (no member to unsubscribe: dismiss it)."""
    try:
        request = requests.get(session, request_id)
    except MailerError:
        return "missing"
    if not people.can(person, ACTION, request.network):
        return "forbidden"
    if request.state != "pending":
        return "missing"
    if decision == "unsubscribe" and request.member_id is None:
        return "nobody"
    who = f"{person.name} <{person.email}>" if person.name else person.email
    requests.decide(session, shape, request_id, decision, by=f"{who} (desk)", now=now)
    audit.record(
        session,
        f"reply.{decision}",
        by=person.id,
        object=request.address,
        detail=f"reply {request_id} asking to leave"
        + (f", network {request.network}" * bool(request.network)),
        now=now,
    )
    return "done"
