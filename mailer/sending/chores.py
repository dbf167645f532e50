"""Chores: duties the workers run on a schedule (reminders, purges, digests), with no cron.

A chore is a name, how often it is due, and an async function. Every worker (the embedded one in
``mailer serve`` too) calls :func:`run_due_chores` on each round of its loop; a chore runs on one
worker at a time, and at most once per ``every``, however many workers there are: its row in
``chore_runs`` is claimed with one conditional ``UPDATE`` (both databases make that atomic), under a
lease so that a worker killed mid-chore does not hold it for ever.

A chore must still be idempotent in what it does (a reminder records that it was sent, in the same
transaction as it marks its attendee), since a chore whose lease ran out may be run again.

The chores themselves live with what they do and are listed in :mod:`mailer.chores`, which the
CLI hands to the workers; this module knows none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from mailer.db import Database
from mailer.models import ChoreRun, utcnow
from mailer.settings import Settings
from mailer.transport import Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChoreContext:
    """What a chore gets: the database, the settings, the time it runs at, the worker's transport
    (to send mail through the same pool and rate limits as campaigns) and who runs it."""

    db: Database
    settings: Settings
    now: datetime
    transport: Transport | None
    worker: str


@dataclass(frozen=True)
class Chore:
    """``run`` returns a line for the worker's log ("" when there was nothing to do)."""

    name: str
    every: timedelta
    run: Callable[[ChoreContext], Awaitable[str]]
    lease: timedelta = timedelta(minutes=10)


def claim_chore(db: Database, chore: Chore, worker: str, now: datetime) -> bool:
    """Take ``chore`` for this run if it is due and nobody holds it; True when this worker may run it."""
    with db.session() as session:
        if session.get(ChoreRun, chore.name) is None:
            try:
                with session.begin_nested():
                    session.add(ChoreRun(name=chore.name))
            except IntegrityError:
                pass  # another worker wrote it first
    with db.session() as session:
        taken = session.execute(
            update(ChoreRun)
            .where(
                ChoreRun.name == chore.name,
                or_(ChoreRun.started_at.is_(None), ChoreRun.started_at <= now - chore.every),
                or_(ChoreRun.lease_until.is_(None), ChoreRun.lease_until <= now),
            )
            .values(started_at=now, claimed_by=worker, lease_until=now + chore.lease)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]


def finish_chore(db: Database, chore: Chore, worker: str, outcome: str) -> None:
    with db.session() as session:
        session.execute(
            update(ChoreRun)
            .where(ChoreRun.name == chore.name, ChoreRun.claimed_by == worker)
            .values(lease_until=None, finished_at=utcnow(), outcome=outcome[:500])
        )


def chore_runs(db: Database) -> dict[str, ChoreRun]:
    """Each chore's last run, by name (for ``mailer workers`` and ``doctor``)."""
    with db.session() as session:
        rows = session.scalars(select(ChoreRun)).all()
        session.expunge_all()
        return {r.name: r for r in rows}


async def run_due_chores(
    db: Database,
    settings: Settings,
    chores: Sequence[Chore],
    *,
    worker: str,
    transport: Transport | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Run each chore that is due and free, one after another; what each said. A chore that fails
    is logged and recorded, and is tried again when it is next due; the others still run."""
    said: list[str] = []
    for chore in chores:
        when = now or utcnow()
        if not claim_chore(db, chore, worker, when):
            continue
        context = ChoreContext(db=db, settings=settings, now=when, transport=transport, worker=worker)
        try:
            line = await chore.run(context)
        except Exception as exc:  # a chore's failure must not stop the sending
            log.exception("chore %s failed on %s", chore.name, worker)
            finish_chore(db, chore, worker, f"failed: {exc}")
            said.append(f"{chore.name}: failed: {exc}")
            continue
        finish_chore(db, chore, worker, line or "nothing to do")
        if line:
            said.append(f"{chore.name}: {line}")
    return said
