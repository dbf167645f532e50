"""The send as one library call: ``plan_send`` says what will happen, ``send`` does it.

::

    plan = plan_send(db, settings, shape, "2025-11-kent-network", segment="region:canterbury")
    print(plan.mode, plan.members, plan.prepared.by_variant())  # ask someone here, if you like
    result = send(plan)  # Sent, Queued, Scheduled, TestsSent, DryRun or NothingToSend

``plan_send`` makes every check (a time in the past, a campaign cancelled, an issue file changed
since an earlier stage) and prepares the issue (:func:`~mailer.sending.prepare.prepare`) before
anything is written. ``send`` does the side effects of the plan's ``mode``:

- ``test``: the test copies to the named addresses, subject marked [TEST]; nothing recorded;
- ``dry_run``: nothing at all;
- ``schedule``: enqueue, and mark the campaign ``scheduled`` for a running worker to start;
- ``queue`` (PostgreSQL): enqueue, and mark it ``sending`` for the ``mailer worker`` processes;
- ``send`` / ``resume``: enqueue (``resume``: it was before), and run the engine in this process.

Stages (docs/decisions.md, Stages). A send adds a stage (:mod:`~mailer.sending.snapshot`): the members of the
issue's audience who have not had the campaign, narrowed by ``segment``, at most ``limit`` of them,
or with ``new_members`` only those who joined since the previous stage. The first send of a
campaign is its first stage; sending it again adds the next. A campaign with messages of earlier
stages still to send (pending, or deferred for a later attempt) is only resumed by a plain send, so
that resuming never widens who gets it; a stage option (``segment``, ``limit``, ``new_members``) or
``top_up`` adds a stage as well, and the earlier messages go out along with it. ``limit`` caps the
members a stage adds; it is kept with the stage, so it works for the workers and with ``at`` too.
A stage that finds nobody to add, with nothing else left, does nothing and says so
(:class:`NothingToSend`).

``plan_retry`` and ``retry`` (``mailer campaigns retry``) make due now what a relay deferred, put
back in the queue the deliveries that failed for temporary reasons (and, asked to, those whose
outcome is unknown), set the campaign sending again, and send them the same way: from this
process, or by the workers on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import exists, select, update

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import DeliveryError, UnknownName
from mailer.models import Campaign, Delivery, utcnow
from mailer.readiness import require_ready
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
from mailer.sending.snapshot import StageInfo, StagePlan, StageRequest, enqueue, plan_stage
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
    stage: StagePlan | None = None  # the stage the send adds; None: a test send, or a resume only
    unfinished: int = 0  # messages of earlier stages still to send (pending, sending or deferred)
    not_yet: int = 0  # when resuming only: members of the audience who have not had it

    @property
    def slug(self) -> str:
        return self.prepared.slug

    @property
    def members(self) -> int:
        """The members the stage adds (a resume only: the messages still to send)."""
        if self.stage is not None:
            return self.stage.members
        return self.unfinished if self.was is not None else self.prepared.plan.total

    @property
    def deliveries_added(self) -> int:
        """The deliveries the send adds to the queue: one per member the stage adds (none when it
        only resumes). The audience may be larger: members who have had it get none."""
        return self.stage.members if self.stage is not None else 0

    @property
    def resuming(self) -> bool:
        """The campaign was enqueued before and no stage is added: it goes on where it stopped."""
        return self.was is not None and self.stage is None

    @property
    def nothing_to_add(self) -> bool:
        """A later stage that finds nobody, with nothing of earlier stages left: nothing to do."""
        stage = self.stage
        return self.was is not None and stage is not None and not stage.members and not self.unfinished

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "dry_run": self.mode == "dry_run",
            "members": self.members,
            "audience": self.prepared.plan.total,
            "deliveries_added": self.deliveries_added,
            "stage": self.stage.as_dict() if self.stage else None,
            "unfinished": self.unfinished,
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
    stage: StageInfo | None = field(default=None, kw_only=True)  # the stage this send added

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
            "stage": self.stage.as_dict() if self.stage else None,
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
    stage: StageInfo | None = field(default=None, kw_only=True)  # the stage this send added

    @property
    def paused(self) -> bool:
        """Stopped before the end (a signal, ``limit``, errors in a row): sending again goes on."""
        return self.summary.stopped_because.startswith("paused")

    @property
    def waiting(self) -> bool:
        """Only deferred deliveries not yet due are left: sending again when due (or a worker) goes on."""
        return self.status.waiting

    def as_dict(self) -> dict[str, Any]:
        stage = self.stage.as_dict() if self.stage else None
        return {**self.summary.as_dict(), "status": self.status.as_dict(), "stage": stage}


@dataclass(frozen=True)
class NothingToSend:
    """A later stage found nobody to add, and no message of an earlier stage was left: nothing done."""

    campaign: str
    stage: StageInfo
    status: str  # the campaign's status, unchanged

    @property
    def message(self) -> str:
        if self.stage.new_members:
            who = "nobody in the audience has joined since the previous stage"
        elif self.stage.segment:
            who = f"every member of the audience in {self.stage.segment} has had it"
        else:
            who = "every member of the audience has had it"
        return (
            f"{self.campaign}: nobody to add: {who} (suppressed members, and members who left the "
            "network, are never added); nothing sent, nothing recorded"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "status": self.status,
            "added": 0,
            "stage": self.stage.as_dict(),
            "message": self.message,
        }


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
    new_members: bool = False,
    top_up: bool = False,
    allow_changed: bool = False,
    to_workers: bool = False,
) -> SendPlan:
    """Check and prepare the send of ``slug``; raise (DeliveryError and the like) before any side effect.

    ``at`` schedules it: ``"2025-11-17 08:00"`` in the timezone setting, or an aware datetime.
    ``tests`` sends test copies to those addresses instead, ``dry_run`` nothing at all. On
    PostgreSQL the workers send it unless ``in_process``. The stage it adds (see the module
    docstring): ``segment`` narrows it, ``limit`` caps the members it adds, ``new_members`` takes
    only those who joined since the previous stage, ``top_up`` adds one although messages of
    earlier stages are still to send, ``allow_changed`` although the issue file changed since the
    campaign was first sent. ``to_workers`` leaves the sending to the workers on SQLite too (a web
    request must not send): the campaign is enqueued and set ``sending`` (mode ``queue``).
    """
    when, at_text = _send_time(settings, at)
    sends = not tests and not dry_run
    if sends:
        require_ready(settings, shape)  # mailer doctor's settings checks: test sends still go
    if when is not None and when <= utcnow() and sends:
        raise DeliveryError(
            f"{at_text} ({settings.timezone}) has passed",
            field="--at",
            hint="give a time to come, or leave out --at",
        )
    to_workers = (to_workers or (on_postgresql(db) and not in_process)) and when is None
    with db.session() as session:
        existing = find_campaign(session, slug)
        was = existing.status if existing is not None else None
        campaign_id = existing.id if existing is not None else None
    if was == "cancelled" and sends:
        check_sendable(was, slug)
    if was == "sending" and when is not None and sends:
        raise DeliveryError(
            f"campaign {slug!r} is sending already", hint=f"pause it first: mailer campaigns pause {slug}"
        )
    unfinished = 0
    if campaign_id is not None:
        left = waiting(db, campaign_id)
        unfinished = left.open + left.deferred
    request = StageRequest(segment or "", limit, new_members, allow_changed)
    staged = not tests and (was is None or request.narrowed or top_up or not unfinished)
    prepared = prepare(db, settings, shape, slug, segment=segment)
    stage = plan_stage(db, prepared, request) if staged else None
    not_yet = 0
    if was is not None and stage is None and not tests:
        not_yet = plan_stage(db, prepared, StageRequest(allow_changed=True)).members
    mode = _mode(tests, dry_run, when, to_workers, was if stage is None else None)
    return SendPlan(
        db, settings, shape, prepared, mode, was, when, at_text, tuple(tests), stage, unfinished, not_yet
    )


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
) -> Sent | Queued | Scheduled | TestsSent | DryRun | NothingToSend:
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
    request = plan.stage.request if plan.stage is not None else None
    enqueued = enqueue(db, plan.prepared, scheduled_at=plan.when, stage=request)
    stage = enqueued.stage
    left = waiting(db, enqueued.campaign_id)
    nothing_left = not (left.open + left.deferred)
    if stage is not None and not stage.recipients and not enqueued.created and nothing_left:
        return NothingToSend(slug, stage, enqueued.status)
    if stage is not None and stage.recipients:
        _reopen(db, enqueued.campaign_id, plan.when)
    open_ = left.open + left.due
    if plan.mode in ("schedule", "queue"):
        if plan.when is not None:
            control = schedule_campaign(db, slug, plan.when)
            alive = alive_workers(db, settings)
            return Scheduled(
                control, enqueued.deliveries, open_, alive, plan.when, plan.at or "", stage=stage
            )
        control = start_campaign(db, slug)
        return Queued(control, enqueued.deliveries, open_, alive_workers(db, settings), stage=stage)
    sent = _send_here(db, settings, plan.shape, slug, open_, None, progress, on_engine, stop_on_signals)
    return Sent(sent.summary, sent.status, stage=stage)


def _reopen(db: Database, campaign_id: int, when: datetime | None) -> None:
    """A stage added messages to a campaign that a sender marked ``sent`` meanwhile (it found
    nothing left just before the stage's rows were there): queue it again."""
    with db.session() as session:
        session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == "sent",
                exists().where(Delivery.campaign_id == campaign_id, Delivery.status == "pending"),
            )
            .values(status="scheduled" if when else "queued", status_reason="", finished_at=None)
        )


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
    deferred: int  # deferred by a relay, waiting for their next attempt: made due now
    failed: int  # failed for temporary reasons: a 4xx, or given up after the queue lifetime
    unknown: int  # no reply after the final dot; the relay may have delivered them
    include_unknown: bool
    to_workers: bool  # PostgreSQL without in_process: the workers send them

    @property
    def count(self) -> int:
        """How many deliveries go back in the queue."""
        return self.deferred + self.failed + (self.unknown if self.include_unknown else 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "was": self.was,
            "deferred": self.deferred,
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
        counts["deferred"],
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
    """Make due now what ``plan`` counted (deferred ones keep their attempts; failed ones get a fresh
    queue lifetime), set the campaign sending, and send: from this process, or by the workers
    (``plan.to_workers``). The result says how many were made due (``Queued.control.changed``;
    ``Sent``: what the run sent)."""
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
