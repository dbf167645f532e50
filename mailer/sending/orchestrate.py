"""The send as one library call: ``plan_send`` says what will happen, ``send`` does it.

::

    plan = plan_send(db, settings, shape, "2025-11-kent-network", segment="region:canterbury")
    print(plan.mode, plan.members, plan.prepared.by_variant())  # ask someone here, if you like
    result = send(plan)  # Sent, Queued, Scheduled, TestsSent or DryRun

``plan_send`` makes every check (a time in the past, ``limit`` with workers or a schedule, a
campaign sent or cancelled already) and prepares the issue (:func:`~mailer.sending.prepare.prepare`)
before anything is written. ``send`` does the side effects of the plan's ``mode``:

- ``test``: the test copies to the named addresses, subject marked [TEST]; nothing recorded;
- ``dry_run``: nothing at all;
- ``schedule``: enqueue, and mark the campaign ``scheduled`` for a running worker to start;
- ``queue`` (PostgreSQL): enqueue, and mark it ``sending`` for the ``mailer worker`` processes;
- ``send`` / ``resume``: enqueue (``resume``: it was before), and run the engine in this process.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import DeliveryError
from mailer.models import utcnow
from mailer.sending.control import (
    CampaignStatus,
    Control,
    campaign_status,
    check_sendable,
    parse_send_time,
    schedule_campaign,
    start_campaign,
)
from mailer.sending.engine import Engine, Summary
from mailer.sending.prepare import Prepared, prepare
from mailer.sending.proofs import send_tests
from mailer.sending.queue import enqueue, find_campaign, status_counts
from mailer.sending.worker import alive_workers
from mailer.settings import Settings
from mailer.transport import SendResult, Transport, transport_for
from mailer.transport.shared_limits import shared_transport

Mode = Literal["test", "dry_run", "send", "resume", "queue", "schedule"]
Progress = Callable[[Summary, int], None]  # (what the engine did so far, how many it is to send)


@dataclass(frozen=True)
class SendPlan:
    """What ``send`` will do, with the issue prepared: checked, planned and rendered."""

    db: Database
    settings: Settings
    shape: Shape
    prepared: Prepared
    mode: Mode
    was: str | None  # the campaign's status when it was enqueued before (the send resumes it)
    when: datetime | None  # the time it is scheduled for (UTC), with ``at``
    at: str | None  # that time as given, wall-clock in the timezone setting
    tests: tuple[str, ...] = ()
    limit: int | None = None

    @property
    def slug(self) -> str:
        return self.prepared.slug

    @property
    def members(self) -> int:
        return self.prepared.plan.total

    @property
    def resuming(self) -> bool:
        """The campaign was enqueued before: nobody recorded as sent gets it again."""
        return self.was is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "dry_run": self.mode == "dry_run",
            "members": self.members,
            "variants": [{"key": k, "label": lab, "members": n} for k, lab, n in self.prepared.by_variant()],
            "by_region": dict(self.prepared.by_region()),
        }


@dataclass(frozen=True)
class DryRun:
    """A dry run: everything validated, planned and rendered; nothing sent, nothing recorded."""

    plan: SendPlan

    def as_dict(self) -> dict[str, Any]:
        return self.plan.as_dict()


@dataclass(frozen=True)
class TestsSent:
    """The test copies sent (nothing recorded)."""

    __test__ = False  # not a pytest class

    campaign: str
    results: list[SendResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        tests = [{"to": r.recipient, "ok": r.ok, "code": r.code, "text": r.text} for r in self.results]
        return {"campaign": self.campaign, "tests": tests}


@dataclass(frozen=True)
class _ForWorkers:
    control: Control
    deliveries: int  # rows in the queue
    pending: int  # of which not yet sent
    workers_alive: list[str]

    @property
    def scheduled_at(self) -> datetime | None:
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.control.as_dict(),
            "deliveries": self.deliveries,
            "pending": self.pending,
            "scheduled_at": self.scheduled_at.isoformat() if self.scheduled_at else None,
            "workers_alive": self.workers_alive,
        }


@dataclass(frozen=True)
class Queued(_ForWorkers):
    """The campaign enqueued and set ``sending``: the workers send it."""


@dataclass(frozen=True)
class Scheduled(_ForWorkers):
    """The campaign enqueued and ``scheduled``: a running worker starts it at ``when``."""

    when: datetime  # UTC
    at: str  # as given, wall-clock in the timezone setting

    @property
    def scheduled_at(self) -> datetime | None:
        return self.when


@dataclass(frozen=True)
class Sent:
    """What sending from this process did, and the campaign's status afterwards."""

    summary: Summary
    status: CampaignStatus

    @property
    def paused(self) -> bool:
        """Stopped before the end (a signal, ``limit``, errors in a row): sending again goes on."""
        return self.summary.stopped_because.startswith("paused")

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary.as_dict(), "status": self.status.as_dict()}


def on_postgresql(db: Database) -> bool:
    return db.engine.dialect.name == "postgresql"


def plan_send(
    db: Database,
    settings: Settings,
    shape: Shape,
    slug: str,
    *,
    segment: str | None = None,
    at: str | datetime | None = None,
    tests: tuple[str, ...] | list[str] = (),
    dry_run: bool = False,
    limit: int | None = None,
    in_process: bool = False,
) -> SendPlan:
    """Check and prepare the send of ``slug``; raise (DeliveryError and the like) before any side effect.

    ``at`` schedules it: ``"2025-11-17 08:00"`` in the timezone setting, or an aware datetime.
    ``tests`` sends test copies to those addresses instead, ``dry_run`` nothing at all. On
    PostgreSQL the workers send it unless ``in_process``; ``limit`` (in-process only, not with
    ``at``) stops this process after that many messages.
    """
    when, at_text = _send_time(settings, at)
    if when is not None and when <= utcnow() and not tests and not dry_run:
        raise DeliveryError(
            f"{at_text} ({settings.timezone}) has passed",
            field="--at",
            hint="give a time to come, or leave out --at",
        )
    to_workers = on_postgresql(db) and not in_process and when is None
    if limit is not None and (to_workers or when is not None):
        raise DeliveryError("--limit counts what this process sends", hint="add --in-process, without --at")
    with db.session() as session:
        existing = find_campaign(session, slug)
        was = existing.status if existing is not None else None
    if was is not None and not tests and not dry_run:
        check_sendable(was, slug)
    prepared = prepare(db, settings, shape, slug, segment=segment)
    mode = _mode(tests, dry_run, when, to_workers, was)
    return SendPlan(db, settings, shape, prepared, mode, was, when, at_text, tuple(tests), limit)


def _mode(tests: Any, dry_run: bool, when: datetime | None, to_workers: bool, was: str | None) -> Mode:
    if tests:
        return "test"
    if dry_run:
        return "dry_run"
    if when is not None:
        return "schedule"
    if to_workers:
        return "queue"
    return "resume" if was is not None else "send"


def _send_time(settings: Settings, at: str | datetime | None) -> tuple[datetime | None, str | None]:
    """(UTC time, the time as the editor would write it) of ``at``."""
    if at is None or at == "":
        return None, None
    if isinstance(at, str):
        return parse_send_time(at, settings.zone), at
    when = at if at.tzinfo is not None else at.replace(tzinfo=settings.zone)
    return when, when.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")


def send(
    plan: SendPlan,
    *,
    progress: Progress | None = None,
    on_engine: Callable[[Engine], None] | None = None,
    stop_on_signals: bool = False,
) -> Sent | Queued | Scheduled | TestsSent | DryRun:
    """Do what ``plan`` says (see the module docstring); the result says what was done.

    In-process sends call ``progress`` as they go, and ``on_engine`` with the engine before it
    starts (``engine.stop(reason)`` finishes the messages in flight, records them and stops).
    ``stop_on_signals``: SIGINT and SIGTERM do that too (what the command line wants).
    """
    db, settings, slug = plan.db, plan.settings, plan.slug
    if plan.mode == "dry_run":
        return DryRun(plan)
    if plan.mode == "test":
        return TestsSent(slug, asyncio.run(_send_tests(plan)))
    enqueued = enqueue(db, plan.prepared, scheduled_at=plan.when)
    counts = status_counts(db, enqueued.campaign_id)
    open_ = counts.get("pending", 0) + counts.get("sending", 0)
    if plan.mode in ("schedule", "queue"):
        if plan.when is not None:
            control = schedule_campaign(db, slug, plan.when)
            alive = alive_workers(db, settings)
            return Scheduled(control, enqueued.deliveries, open_, alive, plan.when, plan.at or "")
        control = start_campaign(db, slug)
        return Queued(control, enqueued.deliveries, open_, alive_workers(db, settings))
    total = min(open_, plan.limit) if plan.limit else open_
    engine = Engine(
        db,
        settings,
        slug,
        limit=plan.limit,
        progress=(lambda summary: progress(summary, total)) if progress else None,
    )
    if on_engine is not None:
        on_engine(engine)
    summary = run_engine(engine, lambda: sending_transport(db, settings), stop_on_signals=stop_on_signals)
    return Sent(summary, campaign_status(db, plan.shape, slug))


def sending_transport(db: Database, settings: Settings) -> Transport:
    """On PostgreSQL the relay's rate limit is shared with any workers; on SQLite it is this process's."""
    if on_postgresql(db):
        return shared_transport(settings, db)
    return transport_for(settings)


def run_engine(
    engine: Engine, make_transport: Callable[[], Transport], *, stop_on_signals: bool = True
) -> Summary:
    """Run the engine to the end; with ``stop_on_signals``, SIGINT/SIGTERM finish the messages in
    flight, record them, and stop."""

    async def main() -> Summary:
        if stop_on_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, engine.stop, f"stopped by {signal.Signals(sig).name}")
        async with make_transport() as transport:
            return await engine.run(transport)

    return asyncio.run(main())


async def _send_tests(plan: SendPlan) -> list[SendResult]:
    async with transport_for(plan.settings) as transport:
        return await send_tests(plan.db, plan.settings, plan.prepared, list(plan.tests), transport)
