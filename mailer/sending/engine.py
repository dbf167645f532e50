"""The delivery loop: claim, check, fill, send, record, for one campaign through one transport.

An :class:`Engine` claims a batch of pending (or deferred and due) deliveries under a lease
(:mod:`mailer.sending.queue`; the claim re-checks the batch against suppressions, so an unsubscribe
made during the send stops that member's message), fills each member's slots into ready wire bytes,
hands them to the transport, and records every outcome in bulk as it comes back (:class:`Recorder`):

- accepted: ``sent``; refused for good (5xx): ``failed`` (a 5.1.x refusal also suppresses the address);
- refused for now (a 4xx at MAIL, RCPT, DATA or after the final dot), or the connection lost before
  the whole message went out: ``deferred`` until ``next_attempt_at``, which backs off from minutes
  to hours (:class:`~mailer.sending.queue.Backoff`, the ``retry_*`` settings); once the waits add
  up to ``queue_lifetime_hours``, ``failed`` ("gave up after 3 days of temporary failures: …").
  A lost connection is first retried at once on a fresh one, up to ``max_attempts`` tries after
  ``retry_delays``, since the message never reached the relay;
- no reply after the final dot (a timeout, a dropped connection, a garbled reply): ``unknown``.
  The relay may have delivered it (RFC 5321, 4.1.1.4), so it is never resent by itself;
  ``mailer campaigns retry SLUG --unknown`` does, if the editor wants.

``CONSECUTIVE_ERRORS_TO_PAUSE`` errors in a row pause the campaign: permanent refusals, lost
connections and unknown outcomes (a relay that refuses, drops or never answers everything is better
looked at than tried 325,000 times). A 4xx reply is the relay asking to wait, as greylisting and
rate limits do: it defers the delivery and neither counts nor resets the count, so a relay that
says "later" to everyone defers the whole list, whose deliveries go out when it says yes.

While it sends, the engine reads its campaign's status every ``STATUS_SECONDS`` (a ``pause`` or
``cancel`` stops it) and renews its leases every ``heartbeat_seconds``. The campaign is ``sent``
once nothing is pending, sending or deferred; while only deferred deliveries not yet due remain, an
engine run in the sending process stops (the campaign stays ``sending``; sending it again, or a
``mailer worker``, goes on). ``now`` is the clock of next attempts (a test's clock can stand in).

What a kill can duplicate, and how many engines share a campaign: see :mod:`mailer.sending`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from mailer import tokens
from mailer.audience import addresses, consent
from mailer.db import Database
from mailer.errors import InvalidInput, UnknownName
from mailer.message import MessageTemplate, Recipient
from mailer.models import Campaign, Delivery, utcnow
from mailer.models import Variant as VariantRow
from mailer.sending.prepare import template_for
from mailer.sending.queue import (
    GAVE_UP,
    Backoff,
    Claimed,
    claim,
    find_campaign,
    release_dead_claims,
    renew_leases,
    waiting,
    worker_name,
)
from mailer.settings import Settings
from mailer.transport import Outgoing, SendResult, SendStream, Transport

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1
FLUSH_RESULTS = 100
MAX_ATTEMPTS = 3  # tries within one go of a message whose connection was lost before it went out
RETRY_DELAYS = (2.0, 10.0)  # seconds before the 2nd and 3rd of those tries
CONSECUTIVE_ERRORS_TO_PAUSE = 50
STATUS_SECONDS = 0.5  # how often a running engine reads its campaign's status (pause, cancel)


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
class _Outcome:
    delivery_id: int
    status: str  # sent, failed, deferred, unknown, skipped
    code: int | None = None
    error: str = ""
    attempts: int = 1
    email: str = ""
    hard_bounce: bool = False
    next_attempt_at: datetime | None = None


class Recorder:
    """Writes outcomes in bulk: every FLUSH_SECONDS or FLUSH_RESULTS, whichever comes first."""

    def __init__(self, db: Database, worker: str, campaign_slug: str) -> None:
        self.db = db
        self.worker = worker
        self.campaign_slug = campaign_slug
        self.pending: list[_Outcome] = []
        self.last_flush = time.monotonic()

    def add(self, outcome: _Outcome) -> None:
        self.pending.append(outcome)
        if len(self.pending) >= FLUSH_RESULTS or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def due(self) -> bool:
        return bool(self.pending) and time.monotonic() - self.last_flush >= FLUSH_SECONDS

    def flush(self) -> None:
        outcomes, self.pending = self.pending, []
        self.last_flush = time.monotonic()
        if not outcomes:
            return
        now = utcnow()
        # Most outcomes are "sent at the first attempt": one UPDATE for all of them.
        first = [o.delivery_id for o in outcomes if o.status == "sent" and o.attempts == 1]
        others = [o for o in outcomes if o.status != "sent" or o.attempts != 1]
        with self.db.session() as session:
            if first:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(first), Delivery.claimed_by == self.worker)
                    .values(status="sent", attempts=1, sent_at=now, claimed_by=None, lease_until=None)
                )
            if others:
                stmt = (
                    update(Delivery)
                    .where(Delivery.id == bindparam("d_id"), Delivery.claimed_by == self.worker)
                    .values(
                        status=bindparam("d_status"),
                        last_code=bindparam("d_code"),
                        last_error=bindparam("d_error"),
                        attempts=bindparam("d_attempts"),
                        sent_at=bindparam("d_sent_at"),
                        next_attempt_at=bindparam("d_next"),
                        claimed_by=None,
                        lease_until=None,
                    )
                )
                session.connection().execute(
                    stmt,
                    [
                        {
                            "d_id": o.delivery_id,
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
            for o in others:
                if o.hard_bounce:
                    consent.unsubscribe(
                        session,
                        addresses.hash_of(o.email),
                        reason="hard-bounce",
                        source="bounce",
                        campaign=self.campaign_slug,
                        detail=f"{o.code} {o.error}"[:500],
                    )


ProgressCallback = Callable[[Summary], None]


class Engine:
    """Sends one campaign's pending deliveries through a transport; see the module docstring.

    ``shared=False`` (``mailer campaigns send``): ``run`` starts the campaign, sends until nothing is
    pending, and pauses the campaign if it is stopped before the end. ``shared=True`` (one of many
    workers): ``run`` only works on a campaign that is ``sending``, may be called again and again on
    the same engine, and leaves the campaign's status to the others and to the editor, except that
    whoever finds nothing left marks it ``sent``. Claims held by dead processes come back by their
    leases alone, since a worker cannot see the processes of other machines.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        slug: str,
        *,
        batch_size: int | None = None,
        limit: int | None = None,
        worker: str | None = None,
        window: int | None = None,
        progress: ProgressCallback | None = None,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        max_attempts: int = MAX_ATTEMPTS,
        shared: bool = False,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.shared = shared
        self.lease = timedelta(seconds=float(settings.lease_seconds))
        self.heartbeat = float(settings.heartbeat_seconds)
        self.retry_delays = retry_delays or (0.0,)
        self.max_attempts = max_attempts
        self.backoff = Backoff.from_settings(settings)
        self.now = now  # the clock of next attempts (a test's own clock can stand in)
        self.settings = settings
        self.slug = slug
        self.batch_size = batch_size or settings.batch_size
        self.limit = limit
        self.worker = worker or worker_name()
        self.window = window
        self.progress = progress
        self.stop_requested = ""
        self.summary = Summary(slug)
        self.templates: dict[int, MessageTemplate] = {}
        self.tries: dict[int, int] = {}  # tries of each delivery in its current go
        self.consecutive_errors = 0
        self.limit_reached = False
        with db.session() as session:
            campaign = find_campaign(session, slug)
            if campaign is None:
                raise UnknownName(
                    f"campaign {slug!r} has not been enqueued", hint=f"mailer campaigns send {slug}"
                )
            self.campaign_id = campaign.id
            for row in session.scalars(select(VariantRow).where(VariantRow.campaign_id == campaign.id)):
                self.templates[row.id] = template_for(settings, slug, row)

    def stop(self, reason: str) -> None:
        """Finish the messages in flight, record them, and claim no more."""
        if not self.stop_requested:
            self.stop_requested = reason

    def _campaign_status(self) -> tuple[str, str]:
        with self.db.session() as session:
            row = session.execute(
                select(Campaign.status, Campaign.status_reason).where(Campaign.id == self.campaign_id)
            ).one()
            return str(row[0]), str(row[1])

    def _set_status(self, status: str, reason: str = "", **values: Any) -> None:
        with self.db.session() as session:
            session.execute(
                update(Campaign)
                .where(Campaign.id == self.campaign_id)
                .values(status=status, status_reason=reason, **values)
            )

    def _recipient(self, c: Claimed) -> Recipient:
        keys = self.settings.secrets
        member_id = c.member_id or 0
        return Recipient(
            delivery_id=c.delivery_id,
            member_id=member_id,
            email=c.email or "",
            name=c.name or "",
            unsubscribe_token=tokens.sign("unsubscribe", member_id, keys=keys, campaign=self.campaign_id),
            preferences_token=tokens.sign("preferences", member_id, keys=keys, campaign=self.campaign_id),
        )

    async def _messages(self, recorder: Recorder) -> AsyncIterator[Outgoing]:
        """Claimed deliveries, filled into ready wire bytes, batch by batch, until none are left."""
        handed = 0
        while not self.stop_requested:
            status, _reason = self._campaign_status()
            if status != "sending":
                self.stop(f"campaign is {status}")
                break
            size = self.batch_size
            if self.limit is not None:
                size = min(size, self.limit - handed)
                if size <= 0:
                    self.limit_reached = True
                    break
            batch = claim(self.db, self.campaign_id, self.worker, size, self.lease, due_by=self.now())
            if not batch:
                break
            for i, c in enumerate(batch):
                if self.stop_requested:
                    self._release(batch[i:])
                    return
                template = self.templates[c.variant_id]
                try:
                    recipient = self._recipient(c)
                    payload = template.fill_wire(recipient)
                    sender = template.return_path(recipient)
                except InvalidInput as exc:
                    self.summary.skipped += 1
                    recorder.add(_Outcome(c.delivery_id, "skipped", error=str(exc)))
                    continue
                handed += 1
                yield Outgoing(sender, recipient.email, payload, key=c)
                if recorder.due():
                    recorder.flush()
            await asyncio.sleep(0)

    def _release(self, rest: list[Claimed]) -> None:
        if not rest:
            return
        with self.db.session() as session:
            session.execute(
                update(Delivery)
                .where(
                    Delivery.id.in_([c.delivery_id for c in rest]),
                    Delivery.claimed_by == self.worker,
                    Delivery.status == "sending",  # not those cancelled meanwhile
                )
                .values(status="pending", claimed_by=None, lease_until=None)
            )

    def _release_all(self) -> None:
        """After the stream ended: whatever this worker still holds was never tried; put it back."""
        with self.db.session() as session:
            session.execute(
                update(Delivery)
                .where(
                    Delivery.campaign_id == self.campaign_id,
                    Delivery.claimed_by == self.worker,
                    Delivery.status == "sending",
                )
                .values(status="pending", claimed_by=None, lease_until=None)
            )

    def _outcome(self, result: SendResult, stream: Any, recorder: Recorder) -> None:
        c: Claimed = result.key
        tries = self.tries.get(c.delivery_id, 0) + 1
        self.tries[c.delivery_id] = tries
        attempts = c.attempts + 1
        if result.ok:
            self.consecutive_errors = 0
            self.summary.sent += 1
            self.tries.pop(c.delivery_id, None)
            recorder.add(_Outcome(c.delivery_id, "sent", attempts=attempts))
            return
        if not result.refused_for_now:  # a 4xx is the relay asking to wait, not an error
            self.consecutive_errors += 1
        if (
            result.connection_fault
            and tries < self.max_attempts
            and not self.stop_requested
            and result.message is not None
        ):
            # The message never reached the relay: try it again now, on a fresh connection.
            self.summary.retried += 1
            delay = self.retry_delays[min(tries - 1, len(self.retry_delays) - 1)]
            stream.requeue(result.message, delay=delay)
        else:
            self.tries.pop(c.delivery_id, None)
            recorder.add(self._final(c, result, attempts))
        if self.consecutive_errors >= CONSECUTIVE_ERRORS_TO_PAUSE:
            self.stop(
                f"paused after {self.consecutive_errors} errors in a row; last: "
                f"{result.code or ''} {result.text}".strip()
            )
            self._set_status("paused", self.stop_requested)

    def _final(self, c: Claimed, result: SendResult, attempts: int) -> _Outcome:
        """What this go at a delivery comes to: unknown, deferred, or failed."""
        email = c.email or ""
        if result.unknown:
            self.summary.unknown += 1
            self.summary.unknowns.append((email, result.text))
            return _Outcome(c.delivery_id, "unknown", error=result.text, attempts=attempts)
        wait = self.backoff.next_wait(attempts) if result.temporary else None
        if wait is not None:
            self.summary.deferred += 1
            return _Outcome(
                c.delivery_id,
                "deferred",
                code=result.code,
                error=result.text,
                attempts=attempts,
                next_attempt_at=self.now() + wait,
            )
        reply = f"{result.code or ''} {result.text}".strip()
        error = (
            f"{GAVE_UP}{self.backoff.lifetime_text} of temporary failures: {reply}"
            if result.temporary
            else result.text
        )
        hard = bool(not result.temporary and result.enhanced and result.enhanced.startswith("5.1."))
        self.summary.failed += 1
        self.summary.hard_bounces += hard
        self.summary.failures.append((email, result.code, error))
        return _Outcome(
            c.delivery_id,
            "failed",
            code=result.code,
            error=error,
            attempts=attempts,
            email=email,
            hard_bounce=hard,
        )

    async def _watch(self, stream: SendStream) -> None:
        """While sending: stop when the campaign is paused or cancelled; renew the leases held."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(STATUS_SECONDS)
            try:
                status, _reason = self._campaign_status()
                if status != "sending":
                    self.stop(f"campaign is {status}")
                    stream.stop()
                    return
                if time.monotonic() - renewed >= self.heartbeat:
                    renew_leases(self.db, self.campaign_id, self.worker, self.lease)
                    renewed = time.monotonic()
            except Exception:  # the database may be briefly away: keep sending, try again
                log.exception("could not check campaign %s or renew its leases", self.slug)

    async def run(self, transport: Transport) -> Summary:
        """Send every pending delivery (or up to ``limit``); return what happened."""
        started = time.monotonic() - self.summary.seconds
        status, _ = self._campaign_status()
        if self.shared:
            self.stop_requested = ""
            self.limit_reached = False
            if status != "sending":
                self.summary.stopped_because = f"campaign is {status}"
                return self.summary
        else:
            release_dead_claims(self.db, self.campaign_id)
            if status in ("sent", "cancelled"):
                self.summary.stopped_because = f"campaign is {status}"
                return self.summary
            # An explicit send starts a queued campaign and resumes a paused one.
            self._set_status("sending", "", started_at=utcnow())
        recorder = Recorder(self.db, self.worker, self.slug)
        stream = transport.send_many(self._messages(recorder), window=self.window)
        watcher = asyncio.create_task(self._watch(stream))
        last_tick = 0.0
        try:
            async for result in stream:
                self._outcome(result, stream, recorder)
                if self.stop_requested:
                    stream.stop()
                now = time.monotonic()
                if self.progress and now - last_tick > 0.1:
                    last_tick = now
                    self.summary.seconds = now - started
                    self.progress(self.summary)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            recorder.flush()
            self._release_all()
            self.summary.seconds = time.monotonic() - started
        self._finish()
        if self.progress:
            self.progress(self.summary)
        return self.summary

    def _finish(self) -> None:
        left = waiting(self.db, self.campaign_id, self.now())
        status, reason = self._campaign_status()
        if status == "sending":
            if left.done:
                with self.db.session() as session:
                    session.execute(
                        update(Campaign)
                        .where(Campaign.id == self.campaign_id, Campaign.status == "sending")
                        .values(status="sent", status_reason="", finished_at=utcnow())
                    )
            elif not self.shared and (self.stop_requested or self.limit_reached):
                self._set_status("paused", self.stop_requested or f"limit of {self.limit} reached")
        status, reason = self._campaign_status()
        self.summary.deferred_left, self.summary.next_attempt_at = left.deferred, left.next_attempt_at
        self.summary.stopped_because = self.stop_requested or reason
        if not self.summary.stopped_because and status == "sending" and left.open == 0 and left.deferred:
            due = left.next_attempt_at.isoformat(timespec="minutes") if left.next_attempt_at else "?"
            self.summary.stopped_because = (
                f"waiting: {left.deferred} deferred deliver{'y' if left.deferred == 1 else 'ies'}, "
                f"the next attempt due at {due}"
            )
