"""What the engine did: the :class:`Summary` of a run, and the :class:`Recorder` that writes each
delivery's outcome to the queue in bulk.

Outcomes are written at least every ``FLUSH_SECONDS`` or every ``FLUSH_RESULTS`` results, whichever
comes first: what a kill can leave unrecorded is at most ``FLUSH_RESULTS`` plus what the transport
has in flight (see :mod:`mailer.sending`). While the database is away (:func:`mailer.db.is_transient`)
the recorder keeps the outcomes in memory and writes them when it answers again, once: each write
names the sender that holds the claim, so a delivery another sender took meanwhile is left to it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.orm import Session

from mailer.audience import addresses, consent
from mailer.db import Database, is_transient
from mailer.models import Delivery, Member, UTCDateTime, utcnow
from mailer.sending.queue import GAVE_UP, Backoff
from mailer.transport import SendResult

FLUSH_SECONDS = 0.1
FLUSH_RESULTS = 100
HELD_RETRY_SECONDS = 0.5  # while the database is away, a flush is tried again at most this often


@dataclass
class Summary:
    """What one run of the engine did."""

    campaign: str
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0
    retried: int = 0  # quick retries on a fresh connection, within this run
    deferred: int = 0  # deferred by this run (tried again later)
    unknown: int = 0  # no reply after the final dot (not resent)
    hard_bounces: int = 0
    seconds: float = 0.0
    stopped_because: str = ""
    failures: list[tuple[str, int | None, str]] = field(default_factory=list)
    unknowns: list[tuple[str, str]] = field(default_factory=list)
    deferred_left: int = 0  # deferred deliveries in the queue when the run ended
    next_attempt_at: datetime | None = None  # the earliest of their next attempts

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "sent": self.sent,
            "failed": self.failed,
            "suppressed": self.suppressed,
            "skipped": self.skipped,
            "retried": self.retried,
            "deferred": self.deferred,
            "unknown": self.unknown,
            "hard_bounces": self.hard_bounces,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.rate, 1),
            "stopped_because": self.stopped_because,
            "deferred_left": self.deferred_left,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
        }


@dataclass
class Outcome:
    """What one go at a delivery came to (other than "sent at the first attempt")."""

    delivery_id: int
    status: str  # sent, failed, deferred, unknown, skipped
    code: int | None = None
    error: str = ""
    attempts: int = 1
    email: str = ""
    hard_bounce: bool = False
    next_attempt_at: datetime | None = None


def final_outcome(
    summary: Summary,
    backoff: Backoff,
    now: datetime,
    delivery_id: int,
    email: str,
    result: SendResult,
    attempts: int,
) -> Outcome:
    """What a go at a delivery comes to: unknown, deferred, or failed (counted in ``summary``)."""
    if result.unknown:
        summary.unknown += 1
        summary.unknowns.append((email, result.text))
        return Outcome(delivery_id, "unknown", error=result.text, attempts=attempts)
    wait = backoff.next_wait(attempts) if result.temporary else None
    if wait is not None:
        summary.deferred += 1
        return Outcome(
            delivery_id,
            "deferred",
            code=result.code,
            error=result.text,
            attempts=attempts,
            next_attempt_at=now + wait,
        )
    reply = f"{result.code or ''} {result.text}".strip()
    error = (
        f"{GAVE_UP}{backoff.lifetime_text} of temporary failures: {reply}"
        if result.temporary
        else result.text
    )
    hard = bool(not result.temporary and result.enhanced and result.enhanced.startswith("5.1."))
    summary.failed += 1
    summary.hard_bounces += hard
    summary.failures.append((email, result.code, error))
    return Outcome(
        delivery_id, "failed", code=result.code, error=error, attempts=attempts, email=email, hard_bounce=hard
    )


class Recorder:
    """Writes outcomes in bulk: every FLUSH_SECONDS or FLUSH_RESULTS, whichever comes first.

    The usual outcome, sent at the first attempt, is only an id in a list: one ``UPDATE … WHERE id
    IN (…)`` writes them all. Any other outcome is one row of an ``executemany``. The recorder keeps
    one connection for its flushes (``close`` gives it back; one that failed is dropped).
    """

    def __init__(
        self,
        db: Database,
        worker: str,
        campaign_slug: str,
        on_fault: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.db = db
        self.worker = worker
        self.campaign_slug = campaign_slug
        self.on_fault = on_fault  # told when a flush finds the database away
        self.sent_first: list[int] = []  # sent at the first attempt
        self.others: list[Outcome] = []
        self.last_flush = time.monotonic()
        self.held_until = 0.0  # the database was away: no flush is tried before this
        self._connection: Connection | None = None

    @property
    def pending(self) -> int:
        """Outcomes not written yet."""
        return len(self.sent_first) + len(self.others)

    def sent(self, delivery_id: int) -> None:
        """Delivery ``delivery_id`` was sent at its first attempt."""
        self.sent_first.append(delivery_id)
        if len(self.sent_first) + len(self.others) >= FLUSH_RESULTS or self.due():
            self.flush()

    def add(self, outcome: Outcome) -> None:
        if outcome.status == "sent" and outcome.attempts == 1:
            self.sent(outcome.delivery_id)
            return
        self.others.append(outcome)
        if self.pending >= FLUSH_RESULTS or self.due():
            self.flush()

    def due(self) -> bool:
        return time.monotonic() - self.last_flush >= FLUSH_SECONDS and bool(self.sent_first or self.others)

    def flush(self, *, force: bool = False) -> bool:
        """Write what is held; whether everything is written. While the database is away the
        outcomes stay held (tried again at most every HELD_RETRY_SECONDS unless ``force``)."""
        if not self.sent_first and not self.others:
            return True
        if not force and time.monotonic() < self.held_until:
            return False
        first, self.sent_first = self.sent_first, []
        others, self.others = self.others, []
        self.last_flush = time.monotonic()
        now = utcnow()
        try:
            connection = self._connection
            if connection is None or connection.closed or connection.invalidated:
                connection = self._connection = self.db.engine.connect()
            self._write(connection, first, others, now)
        except BaseException as exc:
            self.close()
            if not (isinstance(exc, Exception) and is_transient(exc)):
                raise
            self.sent_first, self.others = first + self.sent_first, others + self.others
            self.held_until = time.monotonic() + HELD_RETRY_SECONDS
            if self.on_fault is not None:
                self.on_fault(exc)
            return False
        self.held_until = 0.0
        return True

    def close(self) -> None:
        """Give the connection back (the next flush takes another)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a connection lost with the database
                connection.close()

    def _write(self, connection: Connection, first: list[int], others: list[Outcome], now: datetime) -> None:
        with connection.begin():
            if first:
                connection.execute(_SENT, {"ids": first, "worker": self.worker, "now": now})
            if others:
                connection.execute(
                    _OUTCOME,
                    [
                        {
                            "d_id": o.delivery_id,
                            "worker": self.worker,
                            "d_status": o.status,
                            "d_code": o.code,
                            "d_error": o.error[:1000],
                            "d_attempts": o.attempts,
                            "d_sent_at": now if o.status == "sent" else None,
                            "d_next": o.next_attempt_at,
                        }
                        for o in others
                    ],
                )
            hard = [o for o in others if o.hard_bounce]
            if hard:
                with Session(bind=connection) as session:
                    for o in hard:
                        # The member's own hash (keyed: docs/data.md); gone with an erased member.
                        held = session.scalar(
                            select(Member.address_hash).where(Member.email == addresses.normalise(o.email))
                        )
                        if held is None:
                            continue
                        consent.unsubscribe(
                            session,
                            held,
                            reason="hard-bounce",
                            source="bounce",
                            campaign=self.campaign_slug,
                            detail=f"{o.code} {o.error}"[:500],
                        )
                    session.flush()


_D = cast(Table, Delivery.__table__)
#: Sent at the first attempt: one statement for the lot, compiled once (an expanding ``IN``).
_SENT = (
    update(_D)
    .where(_D.c.id.in_(bindparam("ids", expanding=True)), _D.c.claimed_by == bindparam("worker"))
    .values(
        status="sent",
        attempts=1,
        sent_at=bindparam("now", type_=UTCDateTime),
        claimed_by=None,
        lease_until=None,
    )
)
#: Any other outcome: one row of an executemany each.
_OUTCOME = (
    update(_D)
    .where(_D.c.id == bindparam("d_id"), _D.c.claimed_by == bindparam("worker"))
    .values(
        status=bindparam("d_status"),
        last_code=bindparam("d_code"),
        last_error=bindparam("d_error"),
        attempts=bindparam("d_attempts"),
        sent_at=bindparam("d_sent_at", type_=UTCDateTime),
        next_attempt_at=bindparam("d_next", type_=UTCDateTime),
        claimed_by=None,
        lease_until=None,
    )
)
