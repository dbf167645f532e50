"""Replies asking to leave (docs/decisions.md, Replies asking to leave): honoured, or put in front of
a person. Library calls on a session; ``mailer inbound pending`` and the desk's home share them.

``receive`` records each reply that ``classify`` found asking to leave (kind
``unsubscribe-request``) as a ``reply_requests`` row, and:

- **acts** on it by itself only when its From address is proved (``mailer.inbound.authentic``: an
  aligned DKIM signature, or our own MTA's Authentication-Results), names a member, and the
  signature has not acted before (the same signed mail sent again, under a new Message-ID, is a
  replay and waits for a person). The member is unsubscribed through ``mailer.audience.consent``
  (source ``mailto``), with a consent-log line "reply asking to leave, DKIM-aligned, message-id …";
- otherwise keeps it **pending**, with the reason: a forged or unsigned From, a signature by
  another domain, an address that is no member's. Nothing is ignored: ``listed`` shows them
  (``mailer inbound pending``, the desk's home, ``mailer doctor`` counts them) and a person
  ``decide``\\ s: **unsubscribe** (through consent, source ``admin``, the log line naming who) or
  **dismiss** (not a request; or nobody to unsubscribe).

What an unsubscribe leaves follows mailed unsubscribes (docs/decisions.md, Networks): the network
the reply was written to (the network whose From or Reply-To address it was sent to, else the
member's own network) when the workspace has several; all mail (the suppression) when it has one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mailer.audience import addresses, consent
from mailer.audience.networks import member_network, networks_of
from mailer.audience.shape import Shape
from mailer.errors import InvalidInput, MailerError, UnknownName
from mailer.inbound.authentic import Authenticity
from mailer.inbound.classify import Classification
from mailer.models import Member, Region, ReplyRequest
from mailer.settings import Settings

STATES: Final = ("pending", "acted", "dismissed")
DECISIONS: Final = ("unsubscribe", "dismiss")


@dataclass(frozen=True)
class LeaveRequest:
    """One reply asking to leave, as the CLI and the desk show it."""

    id: int
    address: str
    member_id: int | None
    member_name: str
    network: str  # the network's slug; "" in a workspace of one network
    subject: str
    asked: str
    message_id: str
    received_at: datetime
    state: str
    why: str  # why it waits for a person (or why it acted)
    decided_by: str
    decided_at: datetime | None
    outcome: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "member_id": self.member_id,
            "member_name": self.member_name,
            "network": self.network,
            "subject": self.subject,
            "asked": self.asked,
            "message_id": self.message_id,
            "received_at": self.received_at.isoformat(),
            "state": self.state,
            "why": self.why,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class Received:
    """What ``receive`` did with one reply: ``acted`` (the member was unsubscribed) or not."""

    request_id: int
    acted: bool
    member_id: int | None
    action: str  # in words, for the run's report


def receive(
    session: Session,
    settings: Settings,
    shape: Shape,
    c: Classification,
    auth: Authenticity,
    *,
    inbound_id: int | None,
    now: datetime,
) -> Received:
    """Record the reply ``c`` (its From's proof ``auth``) and act on it when it is proved; see the
    module docstring."""
    sender = c.sender or auth.sender
    member = _member(session, sender)
    network = _network_of(session, settings, shape, c.addressed, member)
    row = ReplyRequest(
        inbound_id=inbound_id,
        member_id=member.id if member else None,
        address=sender[:320],
        address_hash=member.address_hash if member else "",
        network=network,
        subject=c.subject[:500],
        asked=c.asked[:200],
        message_id=c.message_id[:998],
        signature=auth.signature or None,
        received_at=now,
        state="pending",
        why="",
    )
    session.add(row)
    session.flush()
    why = _why_waiting(session, auth, member, row)
    if why:
        row.why = why[:2000]
        return Received(row.id, False, row.member_id, f"waits for a person: {why}")
    assert member is not None
    detail = f"reply asking to leave, {auth.how}, message-id {c.message_id or '(none)'}"
    outcome = _unsubscribe(session, shape, member.id, network, source="mailto", detail=detail)
    row.state, row.decided_by, row.decided_at, row.outcome = "acted", auth.how, now, outcome
    row.why = f"From proved ({auth.how}, signed by {auth.signing_domain})"[:2000]
    return Received(row.id, True, member.id, outcome)


def listed(
    session: Session,
    *,
    states: Collection[str] = ("pending",),
    networks: Collection[str] | None = None,
    limit: int = 500,
) -> list[LeaveRequest]:
    """The requests in ``states`` (of ``networks`` only, when given), oldest first."""
    query = (
        select(ReplyRequest, Member.name)
        .outerjoin(Member, Member.id == ReplyRequest.member_id)
        .where(ReplyRequest.state.in_(list(states)))
        .order_by(ReplyRequest.received_at, ReplyRequest.id)
        .limit(limit)
    )
    if networks is not None:
        query = query.where(ReplyRequest.network.in_(list(networks)))
    return [_request(row, name) for row, name in session.execute(query)]


def count_pending(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(ReplyRequest.state == "pending")) or 0)


def get(session: Session, request_id: int) -> LeaveRequest:
    """The request ``request_id``; ``UnknownName`` when there is none."""
    found = session.execute(
        select(ReplyRequest, Member.name)
        .outerjoin(Member, Member.id == ReplyRequest.member_id)
        .where(ReplyRequest.id == request_id)
    ).first()
    if found is None:
        raise UnknownName(
            f"no reply asking to leave has the number {request_id}",
            field="ID",
            hint="`mailer inbound pending` lists them with their numbers",
        )
    return _request(found[0], found[1])


def decide(
    session: Session,
    shape: Shape,
    request_id: int,
    decision: str,
    *,
    by: str,
    now: datetime,
) -> LeaveRequest:
    """A person's decision on a pending request: ``unsubscribe`` the member (through consent,
    source ``admin``, the log line naming ``by``) or ``dismiss`` it (not a request, or nobody to
    unsubscribe). Refused with the fix when the request was decided already, or when there is
    nobody to unsubscribe."""
    if decision not in DECISIONS:
        raise MailerError(f"unknown decision {decision!r}", hint="unsubscribe or dismiss")
    request = get(session, request_id)
    if request.state != "pending":
        raise MailerError(
            f"reply {request_id} was {request.state} already"
            + (f" by {request.decided_by}" if request.decided_by else ""),
            hint="`mailer inbound pending --all` shows what was done",
        )
    by = " ".join(by.split())[:200] or "someone"
    if decision == "dismiss":
        outcome = "dismissed: not a request, or nobody to unsubscribe"
        state = "dismissed"
    else:
        if request.member_id is None:
            raise MailerError(
                f"{request.address or 'the sender'} is no member: there is nobody to unsubscribe",
                hint=f"dismiss it: `mailer inbound pending dismiss {request_id}`",
            )
        detail = f"reply asking to leave, confirmed by {by}, message-id {request.message_id or '(none)'}"
        outcome = _unsubscribe(
            session, shape, request.member_id, request.network, source="admin", detail=detail
        )
        state = "acted"
    session.execute(
        update(ReplyRequest)
        .where(ReplyRequest.id == request_id, ReplyRequest.state == "pending")
        .values(state=state, decided_by=by, decided_at=now, outcome=outcome[:500])
    )
    session.flush()
    return get(session, request_id)


# ---------------------------------------------------------------------------------------------


def _member(session: Session, address: str) -> Member | None:
    if not address:
        return None
    try:
        digest = addresses.hash_of(session, address)
    except InvalidInput:
        return None
    return session.scalar(select(Member).where(Member.address_hash == digest))


def _why_waiting(session: Session, auth: Authenticity, member: Member | None, row: ReplyRequest) -> str:
    """Why the reply cannot act by itself; "" when it can."""
    if not auth.aligned:
        return f"its From is not proved: {auth.why}" if auth.why else "its From is not proved"
    if member is None:
        return f"{auth.sender} is no member's address: nobody to unsubscribe"
    if auth.signature:
        seen = session.scalar(
            select(ReplyRequest.id).where(ReplyRequest.signature == auth.signature, ReplyRequest.id != row.id)
        )
        if seen is not None:
            return f"the same signed mail came before (reply {seen}): a replay acts only by a person"
    return ""


def _network_of(
    session: Session, settings: Settings, shape: Shape, addressed: Collection[str], member: Member | None
) -> str:
    """The network a reply was written to: the one whose From or Reply-To it was sent to, else the
    member's; "" in a workspace of one network (its roles' key)."""
    if not shape.networks:
        return ""
    ours: dict[str, str] = {}
    for network in networks_of(shape, settings):
        for address in (network.reply_to, network.from_address):
            if address:
                ours.setdefault(address.strip().lower(), network.slug)
    for address in addressed:
        if address in ours:
            return ours[address]
    if member is None:
        return ""
    region = session.scalar(select(Region.slug).where(Region.id == member.region_id))
    slug = member_network(shape, settings, region).slug
    return slug if slug in shape.networks else ""


def _unsubscribe(
    session: Session, shape: Shape, member_id: int, network: str, *, source: str, detail: str
) -> str:
    """Leave ``network`` when the workspace has several (and it is one of them), else all mail; the
    outcome in words."""
    if len(shape.networks) >= 2 and network in shape.networks:
        left = consent.leave_network(
            session, member_id, network, source=source, campaign_id=None, detail=detail[:500]
        )
        if left is None:
            return "the member no longer exists"
        return f"left network {network}" + ("" if left.newly else " (had left it already)")
    done = consent.unsubscribe_member(
        session, member_id, source=source, campaign_id=None, detail=detail[:500]
    )
    if done is None:
        return "the member no longer exists"
    return "unsubscribed from all mail" + ("" if done.newly else " (was already)")


def _request(row: ReplyRequest, name: str | None) -> LeaveRequest:
    return LeaveRequest(
        id=row.id,
        address=row.address,
        member_id=row.member_id,
        member_name=name or "",
        network=row.network,
        subject=row.subject,
        asked=row.asked,
        message_id=row.message_id,
        received_at=row.received_at,
        state=row.state,
        why=row.why,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        outcome=row.outcome,
    )
