"""What an operator and an editor need to know about the sending side, read from the database.

- :func:`health`: is the database reachable, which workers are alive (their heartbeats), how long
  the oldest message that is due has waited; what ``/healthz`` answers a load balancer with.
- :func:`counts`: the figures ``/metrics`` exports (messages by outcome, bounces, complaints,
  unsubscribes, the queue's depth), read at scrape time so that every process, and every machine,
  reports the same numbers (docs/decisions.md, Serving).
- :func:`waiting_for_worker`: whether a campaign waits for a sending worker that is not there, in
  words for a page (:data:`NO_WORKER_PAGE`) or a terminal (:data:`NO_WORKER_CLI`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, text

from mailer.db import Database, DriverError
from mailer.models import BounceEvent, Campaign, ConsentEvent, Delivery, utcnow
from mailer.sending.worker import WorkerHealth, worker_health
from mailer.settings import Settings

#: Campaign states in which deliveries wait for a worker to send or start them.
WAITING = ("queued", "scheduled", "sending")
#: The delivery states exported one by one (``mailer_messages{state=…}``).
OUTCOMES = (
    "sent",
    "failed",
    "deferred",
    "unknown",
    "pending",
    "sending",
    "suppressed",
    "skipped",
    "cancelled",
)
#: Bounce kinds counted as bounces (a complaint is counted on its own).
BOUNCE_KINDS = ("hard", "soft", "policy", "delay")

NO_WORKER_PAGE = (
    "Nothing is going out yet: no sending worker is running on the server. Ask the person who runs "
    "it to start the web app with its built-in sender on (the usual way), or to start a separate "
    "sending worker. The messages wait safely and go out as soon as one runs."
)
NO_WORKER_CLI = (
    "no sending worker is running, so nothing goes out: start `mailer serve` (it sends by itself "
    "unless started with --no-worker) or `mailer worker`; the messages wait until one runs"
)


@dataclass(frozen=True)
class Health:
    """What ``/healthz`` reports; ``ok`` is False when the database cannot be reached or messages
    are due with no worker alive to send them."""

    database: bool
    workers: list[WorkerHealth] = field(default_factory=list)
    oldest_due_seconds: float | None = None  # how long the oldest due message has waited
    due: int = 0  # messages due now (pending in a campaign being sent, or deferred past their time)
    inbound_backlog: int | None = None  # not known: inbound mail is handled as it arrives
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def alive(self) -> list[WorkerHealth]:
        return [w for w in self.workers if w.state == "alive"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "database": "reachable" if self.database else "unreachable",
            "workers": [
                {
                    "name": w.name,
                    "state": w.state,
                    "campaign": w.campaign,
                    "seconds_since_heartbeat": round(w.seconds_since_heartbeat, 1),
                }
                for w in self.workers
                if w.state != "stopped"
            ],
            "workers_alive": len(self.alive),
            "due": self.due,
            "oldest_due_seconds": None
            if self.oldest_due_seconds is None
            else round(self.oldest_due_seconds, 1),
            "inbound_backlog": self.inbound_backlog,
            "problems": self.problems,
        }


def _due(db: Database, now: datetime) -> tuple[int, datetime | None]:
    """Messages due now and since when the oldest of them has been due."""
    with db.session() as session:
        sending = select(Campaign.id).where(Campaign.status == "sending")
        pending = session.execute(
            select(func.count(), func.min(Campaign.started_at))
            .select_from(Delivery)
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(Campaign.status == "sending", Delivery.status == "pending")
        ).one()
        deferred = session.execute(
            select(func.count(), func.min(Delivery.next_attempt_at)).where(
                Delivery.campaign_id.in_(sending),
                Delivery.status == "deferred",
                or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            )
        ).one()
        queued = session.execute(
            select(func.min(Campaign.created_at)).where(Campaign.status == "queued")
        ).scalar()
    since = [t for t in (pending[1], deferred[1], queued) if t is not None]
    return int(pending[0] or 0) + int(deferred[0] or 0), min(since) if since else None


def health(db: Database, settings: Settings, *, now: datetime | None = None) -> Health:
    """The sending side's health now (see :class:`Health`); never raises for a database that is away."""
    now = now or utcnow()
    try:
        with db.session() as session:
            session.execute(text("SELECT 1"))
        workers = worker_health(db, settings)
        due, since = _due(db, now)
    except DriverError:
        return Health(database=False, problems=["the database cannot be reached"])
    oldest = (now - since).total_seconds() if since is not None else None
    problems = []
    if due and not any(w.state == "alive" for w in workers):
        problems.append(f"{due} message(s) are due and no sending worker is alive")
    return Health(database=True, workers=workers, oldest_due_seconds=oldest, due=due, problems=problems)


@dataclass(frozen=True)
class Counts:
    """The figures ``/metrics`` exports, all read from the database."""

    messages: dict[str, int]  # deliveries by state (OUTCOMES)
    bounces: int
    complaints: int
    unsubscribes: int
    queue_depth: int  # deliveries still to send (pending, sending, deferred) of campaigns being sent
    workers_alive: int


def counts(db: Database, settings: Settings) -> Counts:
    """Every figure of :class:`Counts`, in one short read."""
    with db.session() as session:
        by_state = dict(
            session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
        kinds = dict(session.execute(select(BounceEvent.kind, func.count()).group_by(BounceEvent.kind)).all())
        unsubscribes = session.scalar(
            select(func.count()).select_from(ConsentEvent).where(ConsentEvent.action == "unsubscribe")
        )
        depth = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(
                Campaign.status.in_(("sending", "paused")),
                Delivery.status.in_(("pending", "sending", "deferred")),
            )
        )
    alive = sum(w.state == "alive" for w in worker_health(db, settings))
    return Counts(
        messages={s: int(by_state.get(s, 0)) for s in OUTCOMES},
        bounces=sum(int(kinds.get(k, 0)) for k in BOUNCE_KINDS),
        complaints=int(kinds.get("complaint", 0)),
        unsubscribes=int(unsubscribes or 0),
        queue_depth=int(depth or 0),
        workers_alive=alive,
    )


def waiting_for_worker(db: Database, settings: Settings, status: str) -> bool:
    """True when a campaign in ``status`` waits for a sending worker and none is alive."""
    if status not in WAITING:
        return False
    return not any(w.state == "alive" for w in worker_health(db, settings))
