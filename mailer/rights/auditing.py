"""The audit lines of members' data: exports, lookups, unsubscribes and erasures done by a person
(docs/data.md, Audit). They go in the one audit log (``mailer.desk.audit``), naming the desk user
or, from the command line, ``actor`` (the OS user or ``--as NAME``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailer.desk import audit
from mailer.models import utcnow


def record(
    session: Session,
    action: str,
    *,
    actor: str = "",
    by: int | None = None,
    object: str = "",
    detail: str = "",
    now: datetime | None = None,
) -> None:
    """Append ``action`` (``members.export``, ``lists.export``, ``members.unsubscribe``,
    ``desk.member-lookup``, …) on ``object`` (an address, a segment) to the audit log."""
    audit.record(session, action, by=by, actor=actor, object=object, detail=detail, now=now or utcnow())
