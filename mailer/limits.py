"""Limits that hold across every process and restart, counted in the database: how often an action
may be taken (``rate_hits``), and the lock-out after wrong passwords (``login_attempts``).

**Rates** (``hit``): sign-up posts per client network, sign-up mails per mailbox, preferences-link
mails per member, desk sign-in links. Each allowed action is a row (scope, key, time). A limit of N
per window allows an action when fewer than N rows of its scope and key are younger than the
window; a refused action is not recorded. The check and the insert run in one short write
transaction, serialised per (scope, key): on SQLite every write transaction takes the write lock at
its start (``BEGIN IMMEDIATE``, mailer.db), on PostgreSQL a transaction-scoped advisory lock on the
pair. Rows older than the window are deleted as new hits come in.

**Lock-outs** (``record_failure``, ``locked_for``, ``record_success``): the admin pages count wrong
passwords per address; after ``Lockout.failures`` of them each further one locks the address out
for twice as long as the last (1 s, 2 s, 4 s, …) up to ``Lockout.longest`` seconds. A right
password clears the count; so does a day without failures.

What a key is (a client network, a hashed mailbox, a member id) is the caller's policy; the keys are
never an address in clear (``hashed_key``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from mailer.models import LoginAttempt, RateHit


@dataclass(frozen=True)
class Limit:
    """At most ``count`` actions of ``scope`` per key within ``window``; a count of 0 or less means
    no limit."""

    scope: str
    count: int
    window: timedelta


def hashed_key(purpose: str, value: str) -> str:
    """A key for ``rate_hits`` that does not hold ``value`` (an address) in clear."""
    return hashlib.sha256(f"mailer-rate-v1\0{purpose}\0{value}".encode()).hexdigest()


def _lock(session: Session, scope: str, key: str) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: this transaction began with BEGIN IMMEDIATE and holds the write lock
    digest = hashlib.sha256(f"{scope}\0{key}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def hit(session: Session, limit: Limit, key: str, now: datetime) -> float | None:
    """Count one action of ``limit.scope`` by ``key`` at ``now`` (aware) if the limit allows it:
    None when allowed (and recorded), else the seconds until the next one would be allowed."""
    if limit.count <= 0:
        return None
    key = key[:128]
    _lock(session, limit.scope, key)
    since = now - limit.window
    session.execute(delete(RateHit).where(RateHit.scope == limit.scope, RateHit.created_at < since))
    recent = list(
        session.scalars(
            select(RateHit.created_at)
            .where(RateHit.scope == limit.scope, RateHit.key == key, RateHit.created_at >= since)
            .order_by(RateHit.created_at)
            .limit(limit.count)
        )
    )
    if len(recent) >= limit.count:
        return max((recent[0] + limit.window - now).total_seconds(), 1.0)
    session.add(RateHit(scope=limit.scope, key=key, created_at=now))
    session.flush()
    return None


# ---------------------------------------------------------------------------------------------
# Lock-outs after wrong passwords

FORGET_AFTER = timedelta(days=1)
"""A key's failures are forgotten after this long without a new one."""


@dataclass(frozen=True)
class Lockout:
    """Wrong passwords allowed (``failures``) before each further one locks the key out, for twice
    as long as the last time, up to ``longest`` seconds."""

    failures: int
    longest: float


def locked_for(session: Session, key: str, now: datetime) -> float | None:
    """Seconds until ``key`` may try again, or None when it is not locked out."""
    row = session.get(LoginAttempt, key)
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return max((row.locked_until - now).total_seconds(), 1.0)


def has_failures(session: Session, key: str) -> bool:
    """Whether wrong passwords from ``key`` are on record (a right one then clears them)."""
    return session.get(LoginAttempt, key) is not None


def record_failure(session: Session, key: str, now: datetime, lockout: Lockout) -> None:
    """Count a wrong password from ``key``; past ``lockout.failures``, lock it out."""
    row = session.get(LoginAttempt, key, with_for_update=True)
    if row is None or row.last_failed_at < now - FORGET_AFTER:
        if row is not None:
            session.delete(row)
            session.flush()
        row = LoginAttempt(address=key, failures=0, first_failed_at=now, last_failed_at=now)
        session.add(row)
    row.failures += 1
    row.last_failed_at = now
    over = row.failures - lockout.failures
    if over >= 0:
        row.locked_until = now + timedelta(seconds=min(2.0**over, lockout.longest))


def record_success(session: Session, key: str) -> None:
    """A right password from ``key``: its failures are forgotten."""
    row = session.get(LoginAttempt, key)
    if row is not None:
        session.delete(row)
