"""A relay's rate limit shared by every process that sends through it, on every machine.

The limit is a token bucket kept in the database (:class:`~mailer.models.RateBucket` rows, updated
under ``SELECT … FOR UPDATE`` and timed by the database's clock), from which each process takes
tokens in blocks of about ``BLOCK_SECONDS`` of the rate, so the database sees a few small
transactions a second, not one per message. Over any stretch of T seconds the relay sees at most
``rate × T`` messages plus one block per process and the bucket's capacity (one block).

:func:`shared_transport` is the workspace's transport with this limiter on each SMTP relay: what
``mailer worker`` and ``mailer campaigns send`` on PostgreSQL send through.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailer.db import Database, is_transient
from mailer.models import RateBucket
from mailer.settings import Settings
from mailer.transport import Transport, open_transport
from mailer.transport.limits import RateLimiter
from mailer.transport.smtp import SmtpPool, parse_relay

BLOCK_SECONDS = 0.1  # a process takes about this many seconds' worth of a relay's rate at a time
AWAY_WAIT = 0.5  # while the database is away, a connection waiting for tokens asks again this often


@dataclass(frozen=True)
class Bucket:
    """One limit of one relay as a token bucket: ``rate`` tokens a second, at most ``capacity``."""

    name: str
    rate: float
    capacity: float


def buckets_for(relay: str, per_second: float, per_hour: int) -> list[Bucket]:
    """The buckets that enforce a relay's limits (none: no limit).

    Per second: capacity one block, so a burst never exceeds a tenth of a second's worth. Per hour:
    capacity a minute's worth and a rate that leaves room for it, so that no 3,600 seconds ever see
    more than ``per_hour`` (a plain bucket would let up to twice the quota through in an hour).
    """
    out = []
    if per_second > 0:
        out.append(
            Bucket(f"{relay} per second", per_second, max(1.0, math.floor(per_second * BLOCK_SECONDS)))
        )
    if per_hour > 0:
        capacity = max(1.0, math.floor(per_hour / 60))
        out.append(Bucket(f"{relay} per hour", max(per_hour - capacity, 1.0) / 3600, capacity))
    return out


def _db_clock(session: Session) -> float:
    """Seconds since the epoch by the database's clock (the same for every machine)."""
    if session.get_bind().dialect.name == "postgresql":
        return float(session.scalar(select(func.extract("epoch", func.clock_timestamp()))) or 0.0)
    return time.time()


def take_tokens(db: Database, buckets: list[Bucket], want: int, least: int = 1) -> tuple[int, float]:
    """Take up to ``want`` tokens from every bucket at once: (granted, seconds to wait if none).

    Nothing is granted unless at least ``least`` tokens are there, so that processes waiting on a
    saturated relay come back for a useful block rather than one token at a time.
    """
    names = sorted(b.name for b in buckets)
    with db.session() as session:
        now = _db_clock(session)
        query = select(RateBucket).where(RateBucket.name.in_(names)).order_by(RateBucket.name)
        rows = {r.name: r for r in session.scalars(query.with_for_update())}
        missing = [b for b in buckets if b.name not in rows]
        if missing:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            values = [{"name": b.name, "tokens": b.capacity, "stamp": now} for b in missing]
            session.execute(insert(RateBucket).values(values).on_conflict_do_nothing())
            rows = {r.name: r for r in session.scalars(query.with_for_update())}
        available = []
        for b in buckets:
            row = rows[b.name]
            row.tokens = min(b.capacity, row.tokens + max(0.0, now - row.stamp) * b.rate)
            row.stamp = max(row.stamp, now)
            available.append(row.tokens)
        granted = min(want, math.floor(min(available) + 1e-9))
        if granted < least:
            need = max(min(least, b.capacity) for b in buckets)
            wait = max((need - rows[b.name].tokens) / b.rate for b in buckets)
            return 0, max(wait, 0.001)
        for b in buckets:
            rows[b.name].tokens -= granted
        return granted, 0.0


class SharedRateLimiter(RateLimiter):
    """A relay's limits shared through the database by every process sending through it.

    A drop-in for the per-process :class:`~mailer.transport.RateLimiter` of an ``SmtpPool``: the
    pool's connections take tokens from a local store, refilled a block at a time from the
    database (in a thread, so the event loop never waits on it).
    """

    def __init__(self, db: Database, relay: str, per_second: float = 0.0, per_hour: int = 0) -> None:
        super().__init__(0.0, 0)
        self.db = db
        self.buckets = buckets_for(relay, per_second, per_hour)
        self.unlimited = not self.buckets
        self.block = int(min((b.capacity for b in self.buckets), default=1.0))
        self.least = max(1, self.block // 2)
        self.tokens = 0
        self.granted = 0  # tokens taken from the database so far
        self._lock: asyncio.Lock | None = None

    def reserve(self, take: bool = True) -> float:
        """A send from the local store now (0.0), or how long to wait (``acquire`` refills)."""
        if self.unlimited:
            return 0.0
        if self.tokens >= 1:
            if take:
                self.tokens -= 1
            return 0.0
        return BLOCK_SECONDS

    async def acquire(self) -> None:
        if self.unlimited:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while self.tokens < 1:
                try:
                    got, wait = await asyncio.to_thread(
                        take_tokens, self.db, self.buckets, self.block, self.least
                    )
                except Exception as exc:  # the database away: wait for it, as the sender does
                    if not is_transient(exc):
                        raise
                    got, wait = 0, AWAY_WAIT
                self.tokens += got
                self.granted += got
                if not got:
                    await asyncio.sleep(wait)
            self.tokens -= 1


def shared_transport(
    settings: Settings,
    db: Database,
    *,
    concurrency: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Transport:
    """The workspace's transport, with each SMTP relay's rate limit shared through ``db``."""
    env = os.environ if env is None else env
    relays = settings.relays
    concurrency = concurrency or settings.concurrency
    if any(u.lower().startswith("maildir:") for u in relays):
        return open_transport(relays, concurrency=concurrency, env=env)
    limiters = [
        SharedRateLimiter(db, parse_relay(u, env).label, settings.rate_per_second, settings.rate_per_hour)
        for u in relays
    ]
    return SmtpPool(
        relays, concurrency=concurrency, limiters=limiters, env=env, local_hostname=settings.ehlo_name
    )
