"""``mailer worker``: a long-running sender; any number of them share every campaign being sent.

A worker loops, top to bottom:

1. starts every scheduled campaign whose time has come (:func:`mailer.delivery.start_due`; any
   worker may, and only one does, thanks to row locks);
2. for each campaign that is ``sending``, runs a shared :class:`~mailer.delivery.Engine` on it: claim
   a batch with ``FOR UPDATE SKIP LOCKED`` under a lease, send, record, claim the next, until the
   queue is empty; the engine renews its leases every ``heartbeat_seconds`` and stops within
   ``STATUS_SECONDS`` of a ``pause`` or ``cancel``;
3. sleeps a moment when there was nothing to do, and goes round again.

Every ``heartbeat_seconds`` it writes its row in ``workers`` (alive, which campaign, how many
deliveries it holds, its rate), which ``mailer workers`` shows. SIGTERM (or Ctrl-C) finishes the
messages on a connection, records them, puts back what was claimed and not tried, and exits. A
worker killed outright stops renewing its leases; once they end (``lease_seconds``), the other
workers claim what it had not recorded as sent, so at most ``window + FLUSH_RESULTS`` of its
messages can be sent twice (see :mod:`mailer.delivery`).

The relay's rate limit is shared by every process that sends through it, on every machine: it is a
token bucket kept in the database (:class:`RateBucket` rows, updated under ``SELECT … FOR UPDATE``
and timed by the database's clock), from which each process takes tokens in blocks of about
``BLOCK_SECONDS`` of the rate, so the database sees a few small transactions a second, not one per
message. Over any stretch of T seconds the relay sees at most ``rate × T`` messages plus one block
per process and the bucket's capacity (one block).

SQLite has no ``SKIP LOCKED``: there, run one worker per database (it refuses to start beside a
live one); it is still what starts scheduled campaigns on a laptop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailer import delivery
from mailer.db import Database
from mailer.errors import ConfigError, DeliveryError, MailerError
from mailer.models import Campaign, Delivery, RateBucket, WorkerRow, utcnow
from mailer.settings import Settings
from mailer.transport import RateLimiter, SmtpPool, Transport, open_transport, parse_relay

log = logging.getLogger(__name__)

BLOCK_SECONDS = 0.1  # a process takes about this many seconds' worth of a relay's rate at a time
ALIVE_BEATS = 3  # a worker is alive while its last heartbeat is at most this many heartbeats old
POLL_SECONDS = 1.0  # the longest a worker with nothing to do waits before looking again


# ---------------------------------------------------------------------------------------------
# the shared rate limit


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
                got, wait = await asyncio.to_thread(
                    take_tokens, self.db, self.buckets, self.block, self.least
                )
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
    return SmtpPool(relays, concurrency=concurrency, limiters=limiters, env=env)


# ---------------------------------------------------------------------------------------------
# health


@dataclass(frozen=True)
class WorkerHealth:
    """One line of ``mailer workers``."""

    name: str
    host: str
    pid: int
    state: str  # alive, stopped, lost (no heartbeat for a while: killed, or its machine is gone)
    campaign: str
    holding: int  # deliveries it has claimed and not yet recorded
    sent: int
    rate: float  # messages a second over its last heartbeat
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    seconds_since_heartbeat: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "state": self.state,
            "campaign": self.campaign,
            "holding": self.holding,
            "sent": self.sent,
            "per_second": round(self.rate, 1),
            "concurrency": self.concurrency,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "seconds_since_heartbeat": round(self.seconds_since_heartbeat, 1),
        }


def alive_after(settings: Settings) -> float:
    """Seconds without a heartbeat after which a running worker counts as lost."""
    return ALIVE_BEATS * float(settings.heartbeat_seconds) + 1.0


def worker_health(
    db: Database, settings: Settings, *, within: timedelta = timedelta(days=1)
) -> list[WorkerHealth]:
    """Every worker heard from within ``within``, alive ones first; with what each holds now."""
    now = utcnow()
    limit = alive_after(settings)
    with db.session() as session:
        rows = session.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= now - within)).all()
        held = dict(
            session.execute(
                select(Delivery.claimed_by, func.count())
                .join(Campaign, Campaign.id == Delivery.campaign_id)
                .where(Campaign.status.in_(("sending", "paused", "cancelled")), Delivery.status == "sending")
                .group_by(Delivery.claimed_by)
            ).all()
        )
    out = []
    for r in rows:
        age = (now - r.heartbeat_at).total_seconds()
        state = "stopped" if r.state == "stopped" else ("alive" if age <= limit else "lost")
        out.append(
            WorkerHealth(
                name=r.name,
                host=r.host,
                pid=r.pid,
                state=state,
                campaign=r.campaign if state == "alive" else "",
                holding=int(held.get(r.name, 0)),
                sent=r.sent,
                rate=r.rate if state == "alive" else 0.0,
                concurrency=r.concurrency,
                started_at=r.started_at,
                heartbeat_at=r.heartbeat_at,
                seconds_since_heartbeat=age,
            )
        )
    order = {"alive": 0, "lost": 1, "stopped": 2}
    out.sort(key=lambda h: (order[h.state], h.name))
    return out


def alive_workers(db: Database, settings: Settings) -> list[str]:
    """Names of the workers alive now."""
    return [h.name for h in worker_health(db, settings) if h.state == "alive"]


# ---------------------------------------------------------------------------------------------
# the worker


@dataclass
class WorkerSummary:
    name: str
    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    campaigns: tuple[str, ...] = ()
    stopped_because: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "worker": self.name,
            "sent": self.sent,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "campaigns": list(self.campaigns),
            "stopped_because": self.stopped_because,
        }


class Worker:
    """One ``mailer worker`` process: ``await Worker(db, settings).run()`` until ``stop()``."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        name: str | None = None,
        concurrency: int | None = None,
        batch_size: int | None = None,
        transport: Transport | None = None,
        poll: float = POLL_SECONDS,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.name = name or delivery.worker_name()
        self.concurrency = concurrency or settings.concurrency
        self.batch_size = batch_size
        self.transport = transport
        self.heartbeat = float(settings.heartbeat_seconds)
        if not 0 < 2 * self.heartbeat < float(settings.lease_seconds):
            raise ConfigError(
                f"lease_seconds ({settings.lease_seconds:g}) must be more than twice "
                f"heartbeat_seconds ({settings.heartbeat_seconds:g}), which must be above 0",
                field="lease_seconds",
                hint="e.g. lease_seconds = 60.0 and heartbeat_seconds = 5.0",
            )
        self.poll = min(poll, self.heartbeat)
        self.say = say or (lambda line: log.info("%s", line))
        self.engines: dict[str, delivery.Engine] = {}
        self.current: delivery.Engine | None = None
        self.stopping = ""
        self._wake: asyncio.Event | None = None
        self._started = time.monotonic()

    # -- control ------------------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Finish the messages on a connection, record them, put back the rest, and return."""
        if not self.stopping:
            self.stopping = reason
        if self.current is not None:
            self.current.stop(reason)
        if self._wake is not None:
            self._wake.set()

    # -- the loop -------------------------------------------------------------------------------------
    async def run(self) -> WorkerSummary:
        self._wake = asyncio.Event()
        self._register()
        self._started = time.monotonic()
        try:
            transport = self.transport or shared_transport(
                self.settings, self.db, concurrency=self.concurrency
            )
            async with transport:
                beat = asyncio.create_task(self._heartbeats())
                try:
                    await self._loop(transport)
                finally:
                    beat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await beat
        finally:
            self._write_row(state="stopped", campaign="", rate=0.0)
        return self.summary()

    async def _loop(self, transport: Transport) -> None:
        while not self.stopping:
            for slug in delivery.start_due(self.db):
                self.say(f"started scheduled campaign {slug}")
            progressed = False
            for _campaign_id, slug in delivery.sending_campaigns(self.db):
                if self.stopping:
                    break
                engine = self._engine(slug)
                if engine is None:
                    continue
                before = self._done(engine)
                self.current = engine
                try:
                    await engine.run(transport)
                finally:
                    self.current = None
                if self._done(engine) > before:
                    progressed = True
                    self._write_row(state="running", campaign=slug, holding=0)
                    self.say(
                        f"{slug}: sent {engine.summary.sent}, failed {engine.summary.failed} by this worker"
                        + (f" ({engine.summary.stopped_because})" if engine.summary.stopped_because else "")
                    )
            if not progressed and not self.stopping:
                await self._idle(self.poll)

    def _engine(self, slug: str) -> delivery.Engine | None:
        if slug not in self.engines:
            try:
                self.engines[slug] = delivery.Engine(
                    self.db, self.settings, slug, worker=self.name, batch_size=self.batch_size, shared=True
                )
            except MailerError as exc:
                self.say(f"{slug}: cannot send it from this worker: {exc}")
                return None
        return self.engines[slug]

    @staticmethod
    def _done(engine: delivery.Engine) -> int:
        s = engine.summary
        return s.sent + s.failed + s.skipped + s.retried

    async def _idle(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def summary(self) -> WorkerSummary:
        return WorkerSummary(
            self.name,
            sent=sum(e.summary.sent for e in self.engines.values()),
            failed=sum(e.summary.failed for e in self.engines.values()),
            seconds=time.monotonic() - self._started,
            campaigns=tuple(self.engines),
            stopped_because=self.stopping,
        )

    # -- the workers table ----------------------------------------------------------------------------
    def _register(self) -> None:
        """Write this worker's row; refuse a name in use, and beside a live worker on SQLite."""
        now = utcnow()
        limit = timedelta(seconds=alive_after(self.settings))
        with self.db.session() as session:
            live = session.scalars(
                select(WorkerRow.name).where(
                    WorkerRow.state == "running", WorkerRow.heartbeat_at >= now - limit
                )
            ).all()
            if self.name in live:
                raise DeliveryError(
                    f"a worker named {self.name!r} is running already", hint="give this one another --id"
                )
            if live and session.get_bind().dialect.name == "sqlite":
                raise DeliveryError(
                    f"worker {live[0]!r} is running on this SQLite database already",
                    hint="SQLite takes one worker; use PostgreSQL to run several",
                )
            row = session.get(WorkerRow, self.name) or WorkerRow(name=self.name)
            row.host, row.pid, row.concurrency = socket.gethostname(), os.getpid(), self.concurrency
            row.state, row.campaign, row.holding, row.sent, row.rate = "running", "", 0, 0, 0.0
            row.started_at = row.heartbeat_at = now
            session.add(row)
            # Claims left by an earlier process of the same name: it is not running, so put them back.
            session.execute(
                update(Delivery)
                .where(
                    Delivery.campaign_id.in_(select(Campaign.id).where(Campaign.status == "sending")),
                    Delivery.status == "sending",
                    Delivery.claimed_by == self.name,
                )
                .values(status="pending", claimed_by=None, lease_until=None)
            )

    def _write_row(self, **values: Any) -> None:
        with self.db.session() as session:
            session.execute(
                update(WorkerRow)
                .where(WorkerRow.name == self.name)
                .values(heartbeat_at=utcnow(), sent=self.summary().sent, **values)
            )

    async def _heartbeats(self) -> None:
        last_sent, last_time = 0, time.monotonic()
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                sent, now = self.summary().sent, time.monotonic()
                rate = (sent - last_sent) / (now - last_time) if now > last_time else 0.0
                last_sent, last_time = sent, now
                engine = self.current
                holding = 0
                if engine is not None:
                    holding = delivery.renew_leases(self.db, engine.campaign_id, self.name, engine.lease)
                self._write_row(
                    state="running", campaign=engine.slug if engine else "", holding=holding, rate=rate
                )
            except Exception:  # the database may be briefly away: keep going, try again
                log.exception("worker %s could not write its heartbeat", self.name)
