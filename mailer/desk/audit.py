"""The audit log: who did what, when. Appended to, never rewritten, except that an erasure replaces
the erased person's address in it with ``[erased]`` and retention deletes lines older than
``retain_audit_days`` (docs/data.md, Audit).

Each line names the person who acted (``by``: a user id; None for the command line, whose person is
``actor``, or the system), the action (``person.add``, ``role.add``, ``role.remove``,
``person.disable``, ``sign-in``, ``sign-in.link``, ``sign-out``, ``sessions.revoke``; for members'
data ``members.export``, ``members.forget``, ``members.unsubscribe``, ``lists.export``,
``desk.member-lookup``), what it was done to (an address, a network) and a short detail. Only
mailer's own words and checked values go in: never free text a stranger typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience.addresses import clean_name
from mailer.models import AuditEntry, User


def record(
    session: Session,
    action: str,
    *,
    by: int | None,
    object: str = "",
    detail: str = "",
    now: datetime,
    actor: str = "",
) -> None:
    """Append one line to the audit log. ``actor``: who acted when ``by`` is None (the command
    line's person: the OS user or ``--as NAME``)."""
    session.add(
        AuditEntry(
            user_id=by,
            actor=clean_name(actor)[:200],
            action=action[:64],
            object=clean_name(object)[:500],
            detail=clean_name(detail)[:2000],
            created_at=now,
        )
    )


@dataclass(frozen=True)
class AuditLine:
    id: int
    at: datetime
    by: str  # the person's address, the command line's person (``actor``), or "" for the system
    action: str
    object: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "by": self.by,
            "action": self.action,
            "object": self.object,
            "detail": self.detail,
        }


def recent(session: Session, *, limit: int = 50, by: int | None = None) -> list[AuditLine]:
    """The newest ``limit`` lines, newest first; only ``by``'s when given."""
    query = (
        select(AuditEntry, User.email)
        .outerjoin(User, User.id == AuditEntry.user_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    if by is not None:
        query = query.where(AuditEntry.user_id == by)
    return [
        AuditLine(e.id, e.created_at, email or e.actor, e.action, e.object, e.detail)
        for e, email in session.execute(query).all()
    ]
