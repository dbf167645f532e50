"""``mailer worker``: a long-running sender; any number of them share every campaign being sent.

A worker loops, top to bottom:

1. starts every scheduled campaign whose time has come (:func:`mailer.sending.control.start_due`;
   any worker may, and only one does, thanks to row locks), and runs each chore that is due
   (reminders, purges, digests: :mod:`mailer.sending.chores`; once across all workers);
2. for each campaign that is ``sending``, runs a shared :class:`~mailer.sending.engine.Engine` on
   it: claim a batch with ``FOR UPDATE SKIP LOCKED`` under a lease, send, record, claim the next,
   until nothing is left to send now; the engine renews its leases every ``heartbeat_seconds`` and
   stops within ``STATUS_SECONDS`` of a ``pause`` or ``cancel``. A campaign whose deferred
   deliveries wait for their next attempt stays ``sending``, so the worker sends each when it is due;
3. sleeps a moment when there was nothing to do, and goes round again.

Every ``heartbeat_seconds`` it writes its row in ``workers`` (alive, which campaign, how many
deliveries it holds, its rate), which ``mailer workers`` shows. SIGTERM (or Ctrl-C) finishes the
messages on a connection, records them, puts back what was claimed and not tried, and exits. A
worker killed outright stops renewing its leases; once they end (``lease_seconds``), the other
workers claim what it had not recorded as sent, so at most ``window + FLUSH_RESULTS`` of its
messages can be sent twice (see :mod:`mailer.sending`).

The relay's rate limit is shared by every process that sends through it, on every machine, through
the database (:mod:`mailer.transport.shared_limits`).

The database away (a restart, a failover, a refused connection) is weather: the worker says so
once, waits with backoff, and goes on; its engine records what it sent meanwhile once the database
answers, and claims afresh (:mod:`mailer.sending.engine`, docs/decisions.md, Workers). Only a clean
stop writes ``stopped`` in its row; a worker that dies of anything else marks itself ``lost`` if it
can, and one killed outright shows as ``lost`` once its heartbeat is ``ALIVE_BEATS`` beats old.

SQLite has no ``SKIP LOCKED``: there, run one worker per database (it refuses to start beside a
live one); it is still what starts scheduled campaigns on a laptop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from mailer.db import Database, is_transient
from mailer.errors import ConfigError, DeliveryError, MailerError
from mailer.models import Campaign, Delivery, WorkerRow, utcnow
from mailer.sending.chores import Chore, run_due_chores
from mailer.sending.control import sending_campaigns, start_due
from mailer.sending.engine import Engine
from mailer.sending.outage import Outage
from mailer.sending.queue import renew_leases, worker_name
from mailer.settings import Settings
from mailer.transport import Transport
from mailer.transport.shared_limits import shared_transport

log = logging.getLogger(__name__)

ALIVE_BEATS = 3  # a worker is alive while its last heartbeat is at most this many heartbeats old
POLL_SECONDS = 1.0  # the longest a worker with nothing to do waits before looking again


@dataclass(frozen=True)
class WorkerHealth:
    """One line of ``mailer workers``."""

    name: str
    host: str
    pid: int
    # alive; stopped (a clean stop); lost (died of an error, or no heartbeat for a while: killed, or
    # its machine is gone)
    state: str
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
        if r.state == "stopped":
            state = "stopped"  # only a clean stop writes it
        else:
            state = "alive" if r.state == "running" and age <= limit else "lost"
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
        chores: Sequence[Chore] = (),
    ) -> None:
        self.db = db
        self.chores = tuple(chores)
        self.settings = settings
        self.name = name or worker_name()
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
        self.engines: dict[str, Engine] = {}
        self.current: Engine | None = None
        self.stopping = ""
        self._wake: asyncio.Event | None = None
        self._started = time.monotonic()
        self.outage = Outage(f"worker {self.name}", self.say)

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
        clean = False
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
            clean = True
        finally:
            # Only a clean stop says "stopped"; a worker dying of an error says "lost" if it can.
            try:
                self._write_row(state="stopped" if clean else "lost", campaign="", rate=0.0)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("worker %s could not write that it stopped: the database is away", self.name)
        return self.summary()

    async def _loop(self, transport: Transport) -> None:
        while not self.stopping:
            try:
                progressed = await self._round(transport)
                self.outage.back()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                await self.outage.wait(exc, lambda: bool(self.stopping))
                continue
            if not progressed and not self.stopping:
                await self._idle(self.poll)

    async def _round(self, transport: Transport) -> bool:
        """Start what is due, run the chores due, and send what is sending; whether anything was sent."""
        for slug in start_due(self.db):
            self.say(f"started scheduled campaign {slug}")
        if self.chores:
            for line in await run_due_chores(
                self.db, self.settings, self.chores, worker=self.name, transport=transport
            ):
                self.say(line)
        progressed = False
        for _campaign_id, slug in sending_campaigns(self.db):
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
        return progressed

    def _engine(self, slug: str) -> Engine | None:
        if slug not in self.engines:
            try:
                self.engines[slug] = Engine(
                    self.db,
                    self.settings,
                    slug,
                    worker=self.name,
                    batch_size=self.batch_size,
                    shared=True,
                    outage=self.outage,
                )
            except MailerError as exc:
                self.say(f"{slug}: cannot send it from this worker: {exc}")
                return None
        return self.engines[slug]

    @staticmethod
    def _done(engine: Engine) -> int:
        s = engine.summary
        return s.sent + s.failed + s.skipped + s.retried + s.deferred + s.unknown

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
                    holding = renew_leases(self.db, engine.campaign_id, self.name, engine.lease)
                self._write_row(
                    state="running", campaign=engine.slug if engine else "", holding=holding, rate=rate
                )
            except Exception as exc:  # the database away: said once by the outage; try again next beat
                if not is_transient(exc):
                    log.exception("worker %s could not write its heartbeat", self.name)
                    continue
                self.outage.failed(exc)
