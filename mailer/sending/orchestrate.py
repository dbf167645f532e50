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

``plan_retry`` and ``retry`` (``mailer campaigns retry``) put back in the queue the deliveries that
failed for temporary reasons (and, asked to, those whose outcome is unknown), set the campaign
sending again, and send them the same way: from this process, or by the workers on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import DeliveryError, UnknownName
from mailer.models import Campaign, utcnow
from mailer.sending.control import (
    CampaignStatus,
    Control,
    campaign_status,
    check_sendable,
    parse_send_time,
    schedule_campaign,
    start_campaign,
)
from mailer.sending.engine import Engine
from mailer.sending.outcomes import Summary
from mailer.sending.prepare import Prepared, prepare
from mailer.sending.proofs import send_tests
from mailer.sending.queue import find_campaign, requeue, retryable_counts, waiting
from mailer.sending.snapshot import enqueue
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

    @property
    def waiting(self) -> bool:
        """Only deferred deliveries not yet due are left: sending again when due (or a worker) goes on."""
        return self.status.waiting

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
    left = waiting(db, enqueued.campaign_id)
    open_ = left.open + left.due
    if plan.mode in ("schedule", "queue"):
        if plan.when is not None:
            control = schedule_campaign(db, slug, plan.when)
            alive = alive_workers(db, settings)
            return Scheduled(control, enqueued.deliveries, open_, alive, plan.when, plan.at or "")
        control = start_campaign(db, slug)
        return Queued(control, enqueued.deliveries, open_, alive_workers(db, settings))
    total = min(open_, plan.limit) if plan.limit else open_
    return _send_here(db, settings, plan.shape, slug, total, plan.limit, progress, on_engine, stop_on_signals)


def _send_here(
    db: Database,
    settings: Settings,
    shape: Shape,
    slug: str,
    total: int,
    limit: int | None,
    progress: Progress | None,
    on_engine: Callable[[Engine], None] | None,
    stop_on_signals: bool,
) -> Sent:
    """Run the engine on ``slug`` in this process until nothing is left to send now."""
    engine = Engine(
        db,
        settings,
        slug,
        limit=limit,
        progress=(lambda summary: progress(summary, total)) if progress else None,
    )
    if on_engine is not None:
        on_engine(engine)
    summary = run_engine(engine, lambda: sending_transport(db, settings), stop_on_signals=stop_on_signals)
    return Sent(summary, campaign_status(db, shape, slug))


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


# ---------------------------------------------------------------------------------------------
# retry


@dataclass(frozen=True)
class RetryPlan:
    """What ``retry`` will put back in the queue, and how it will be sent."""

    db: Database
    settings: Settings
    shape: Shape
    slug: str
    was: str  # the campaign's status
    failed: int  # failed for temporary reasons: a 4xx, or given up after the queue lifetime
    unknown: int  # no reply after the final dot; the relay may have delivered them
    include_unknown: bool
    to_workers: bool  # PostgreSQL without in_process: the workers send them

    @property
    def count(self) -> int:
        """How many deliveries go back in the queue."""
        return self.failed + (self.unknown if self.include_unknown else 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "was": self.was,
            "failed_temporarily": self.failed,
            "unknown": self.unknown,
            "include_unknown": self.include_unknown,
            "requeue": self.count,
        }


def plan_retry(
    db: Database,
    settings: Settings,
    shape: Shape,
    slug: str,
    *,
    unknown: bool = False,
    in_process: bool = False,
) -> RetryPlan:
    """Count what ``retry`` would re-queue; raise when there is nothing (nothing is written)."""
    with db.session() as session:
        campaign = find_campaign(session, slug)
        if campaign is None:
            raise UnknownName(f"campaign {slug!r} has not been sent", hint=f"mailer campaigns send {slug}")
        was = campaign.status
        counts = retryable_counts(session, campaign.id)
    if was == "cancelled":
        raise DeliveryError(f"campaign {slug!r} was cancelled", hint="copy it to a new slug to send it again")
    plan = RetryPlan(
        db,
        settings,
        shape,
        slug,
        was,
        counts["failed"],
        counts["unknown"],
        unknown,
        on_postgresql(db) and not in_process,
    )
    if plan.count == 0:
        hint = "`mailer campaigns status` shows what each delivery came to"
        if counts["unknown"]:
            hint = (
                f"{counts['unknown']} have an unknown outcome (the relay may have delivered them): "
                f"add --unknown to send those again"
            )
        raise DeliveryError(f"campaign {slug!r} has nothing to retry", hint=hint)
    return plan


def retry(
    plan: RetryPlan,
    *,
    progress: Progress | None = None,
    on_engine: Callable[[Engine], None] | None = None,
    stop_on_signals: bool = False,
) -> Sent | Queued:
    """Re-queue what ``plan`` counted (due now, with a fresh queue lifetime), set the campaign
    sending, and send: from this process, or by the workers (``plan.to_workers``)."""
    db, slug = plan.db, plan.slug
    with db.session() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == slug).with_for_update()).one()
        campaign_id = campaign.id
        if campaign.status in ("sent", "queued", "paused", "sending"):
            campaign.status, campaign.status_reason, campaign.finished_at = "sending", "", None
        changed = requeue(session, campaign_id, unknown=plan.include_unknown)
    left = waiting(db, campaign_id)
    if plan.to_workers:
        control = Control(slug, "sending", plan.was, changed)
        return Queued(control, changed, left.open + left.due, alive_workers(db, plan.settings))
    return _send_here(
        db, plan.settings, plan.shape, slug, left.open + left.due, None, progress, on_engine, stop_on_signals
    )
