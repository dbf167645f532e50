"""The delivery loop: claim, check, fill, send, record, for one campaign through one transport.

An :class:`Engine` claims a batch of pending (or deferred and due) deliveries under a lease
(:mod:`mailer.sending.queue`; the claim re-checks the batch against suppressions, so an unsubscribe
made during the send stops that member's message), fills each member's slots into ready wire bytes,
hands them to the transport, and records every outcome in bulk as it comes back (:class:`Recorder`).

Filling (:class:`mailer.message.filling.BatchFiller`: two link tokens, the VERP tag, the slots,
and with DKIM the signatures) happens in this process, ``LOCAL_ROWS`` rows at a time as the
transport asks for more, unless helper processes do it (``fill_processes``; by default, from
``AUTO_FILL_PROCESSES_FROM`` messages to go up, one per core when messages are signed, and one when
they are not on a machine of ``UNSIGNED_HELPER_CORES`` or more cores): the engine then keeps
about three batches of ``HELPER_ROWS`` per helper ahead (:class:`~mailer.sending.fillers.ProcessFillers`)
and hands each message on as its batch comes back, its payload a view of the shared memory the
helper filled it into. Each variant's template is built once, the first time a delivery needs it.
The outcomes:

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

The database away (a restart, a failover, a refused connection: :func:`mailer.db.is_transient`) is
weather, not a crash: the engine feeds no more messages, lets those on a connection finish, keeps
their outcomes in memory (:class:`~mailer.sending.outcomes.Recorder`), waits with backoff until the
database answers (:class:`~mailer.sending.outage.Outage`, said once), records them, puts back what
it held and had not tried, and goes on by claiming afresh: it never sends from a claim made before
the outage, which may have gone to another sender meanwhile (docs/decisions.md, Workers).

Claims keep a cursor (the highest id of the engine's previous claim) and look for expired leases
only every ``lease_seconds / 2``, so that a claim costs the same at 96 % sent as on a fresh queue
(:func:`~mailer.sending.queue.claim`, docs/scaling.md).

What a kill can duplicate, and how many engines share a campaign: see :mod:`mailer.sending`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update

from mailer.db import Database, is_transient
from mailer.errors import UnknownName
from mailer.identity import Identity
from mailer.message import MessageTemplate
from mailer.message.filling import BatchFiller, Filled, Row
from mailer.models import Campaign, Delivery, utcnow
from mailer.models import Variant as VariantRow
from mailer.sending.fillers import Batch, ProcessFillers
from mailer.sending.outage import LONGEST_WAIT, Outage
from mailer.sending.outcomes import Outcome, Recorder, Summary, final_outcome
from mailer.sending.prepare import stored_identity, template_for
from mailer.sending.queue import (
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

LOCAL_ROWS = 16  # rows filled at a time in the sending process, as the transport asks for more
HELPER_ROWS = 64  # rows per batch sent to a filling process (three batches ahead per process)
AUTO_FILL_PROCESSES_FROM = 1000  # fill_processes = -1: helper processes from this many messages up
UNSIGNED_HELPER_CORES = 3  # fill_processes = -1: unsigned messages get a helper from this many cores
MAX_ATTEMPTS = 3  # tries within one go of a message whose connection was lost before it went out
RETRY_DELAYS = (2.0, 10.0)  # seconds before the 2nd and 3rd of those tries
CONSECUTIVE_ERRORS_TO_PAUSE = 50
STATUS_SECONDS = 0.5  # how often a running engine reads its campaign's status (pause, cancel)


ProgressCallback = Callable[[Summary], None]
_C = cast(Table, Campaign.__table__)
_STATUS = select(_C.c.status, _C.c.status_reason).where(_C.c.id == bindparam("campaign"))


def _row(c: Claimed) -> Row:
    return (c.delivery_id, c.member_id or 0, c.variant_id, c.email or "", c.name or "", c.first_name or "")


class Engine:
    """Sends one campaign's pending deliveries through a transport; see the module docstring.

    ``shared=False`` (``mailer campaigns send``): ``run`` starts the campaign, sends until nothing is
    pending, and pauses the campaign if it is stopped before the end. ``shared=True`` (one of many
    workers): ``run`` only works on a campaign that is ``sending``, may be called again and again on
    the same engine, and leaves the campaign's status to the others and to the editor, except that
    whoever finds nothing left marks it ``sent``. Claims held by dead processes come back by their
    leases alone, since a worker cannot see the processes of other machines. ``fill_processes``
    overrides the setting of that name (0: fill and sign in this process).
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
        fill_processes: int | None = None,
        outage: Outage | None = None,
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
        self._identity: Identity | None = None
        self.tries: dict[int, int] = {}  # tries of each delivery in its current go
        self.consecutive_errors = 0
        self.limit_reached = False
        self.fill_processes = settings.fill_processes if fill_processes is None else fill_processes
        self.outage = outage or Outage(f"{self.worker} sending {slug}")
        self.fault: BaseException | None = None  # the database went away during this run
        self.recorder = Recorder(db, self.worker, slug, on_fault=self._fault)
        self.cursor = 0  # the highest id of the last claim: pending rows are taken from above it first
        self.expired_checked = -1e9  # when claims last looked for expired leases (monotonic)
        with db.session() as session:
            campaign = find_campaign(session, slug)
            if campaign is None:
                raise UnknownName(
                    f"campaign {slug!r} has not been enqueued", hint=f"mailer campaigns send {slug}"
                )
            self.campaign_id = campaign.id
            self.kind = campaign.kind  # newsletter or alert, for the Feedback-ID
            first = session.scalars(
                select(VariantRow.id).where(VariantRow.campaign_id == campaign.id).order_by(VariantRow.id)
            ).first()
        if first is not None:
            self._template(first)  # the settings and DKIM keys work, before anything is claimed

    def stop(self, reason: str) -> None:
        """Finish the messages in flight, record them, and claim no more."""
        if not self.stop_requested:
            self.stop_requested = reason

    def _fault(self, exc: BaseException) -> None:
        """The database is away: feed no more messages (those on a connection finish)."""
        if self.fault is None:
            self.fault = exc
            self.outage.failed(exc)  # said once per outage; _recover counts the tries after this

    def _campaign_status(self) -> tuple[str, str]:
        with self.db.engine.connect() as connection:  # a Core read: no session, no ORM objects
            row = connection.execute(_STATUS, {"campaign": self.campaign_id}).one()
            return str(row[0]), str(row[1])

    def _set_status(self, status: str, reason: str = "", **values: Any) -> None:
        with self.db.session() as session:
            session.execute(
                update(Campaign)
                .where(Campaign.id == self.campaign_id)
                .values(status=status, status_reason=reason, **values)
            )

    def _template(self, variant_id: int) -> MessageTemplate:
        """The message template of a variant, built the first time it is needed (once). Who the
        campaign speaks as is resolved once, with the first (every variant of it speaks the same)."""
        template = self.templates.get(variant_id)
        if template is None:
            with self.db.session() as session:
                row = session.get(VariantRow, variant_id)
                if row is None:
                    raise UnknownName(f"variant {variant_id} of campaign {self.slug!r} is gone")
                if self._identity is None:
                    self._identity = stored_identity(self.settings, row)
                template = template_for(
                    self.settings, self.slug, row, kind=self.kind, identity=self._identity
                )
                self.templates[variant_id] = template
        return template

    def _helpers(self) -> int:
        """How many filling processes to start: ``fill_processes``, or with -1 (auto), from
        AUTO_FILL_PROCESSES_FROM messages to go up, one per core when messages are DKIM-signed, and
        one when they are not on a machine of UNSIGNED_HELPER_CORES cores or more; else none.

        Unsigned, a helper takes the filling (≈ 50 µs a message) off the sending process but costs
        ≈ 20 µs more in all; on two cores that share the relay's work (a relay or sink on the same
        machine, as in bench/send.py) it does not pay, so set fill_processes = 1 there only when
        the relay is elsewhere."""
        if self.fill_processes >= 0:
            return self.fill_processes
        first = next(iter(self.templates.values()), None)
        cores = os.cpu_count() or 1
        if first is None or (cores < UNSIGNED_HELPER_CORES and not first.signed):
            return 0
        left = waiting(self.db, self.campaign_id, self.now())
        todo = left.open + left.due
        if self.limit is not None:
            todo = min(todo, self.limit)
        if todo < AUTO_FILL_PROCESSES_FROM:
            return 0
        return cores if first.signed else 1

    def _claim_next(self, taken: int) -> list[Claimed]:
        """The next batch, unless the campaign stopped sending or ``limit`` is reached."""
        status, _reason = self._campaign_status()
        if status != "sending":
            self.stop(f"campaign is {status}")
            return []
        size = self.batch_size
        if self.limit is not None:
            size = min(size, self.limit - taken)
            if size <= 0:
                self.limit_reached = True
                return []
        # Expired leases now and then; and not until the other senders, who lost the database with
        # this one, have had time to record what they sent meanwhile (docs/decisions.md, Workers).
        lease = self.lease.total_seconds()
        expired = time.monotonic() - self.expired_checked >= lease / 2 and self.outage.settled(
            lease + LONGEST_WAIT
        )
        batch = claim(
            self.db,
            self.campaign_id,
            self.worker,
            size,
            self.lease,
            due_by=self.now(),
            after=self.cursor,
            expired=expired,
        )
        if expired:
            self.expired_checked = time.monotonic()
        if batch:
            self.cursor = max(c.delivery_id for c in batch)
        return batch

    def _claim_or_fault(self, taken: int) -> list[Claimed]:
        """``_claim_next``, or nothing when the database is away (noted as a fault)."""
        try:
            return self._claim_next(taken)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._fault(exc)
            return []

    def _filled(
        self, c: Claimed, filled: Filled, recorder: Recorder, batch: Batch | None = None
    ) -> Outgoing | None:
        _delivery_id, sender, result = filled
        if sender is None:
            assert isinstance(result, str)
            self.summary.skipped += 1
            recorder.add(Outcome(c.delivery_id, "skipped", error=result))
            return None
        assert not isinstance(result, str)
        # The key: the delivery, and the batch whose shared memory holds the payload (if any).
        return Outgoing(sender, c.email or "", result, key=(c, batch), eight_bit=False)  # 7-bit

    async def _messages(self, recorder: Recorder, helpers: ProcessFillers | None) -> AsyncIterator[Outgoing]:
        """Claimed deliveries, filled into ready wire bytes, batch by batch, until none are left.

        In this process, a few rows at a time as the transport asks; with helper processes, a
        few batches ahead, each message yielded as its batch comes back."""
        if helpers is not None:
            async for ready in self._messages_from(helpers, recorder):
                yield ready
            return
        filler = BatchFiller(self.settings.secrets, self.campaign_id, self._template)
        taken = 0
        while not self.stop_requested and self.fault is None:
            batch = self._claim_or_fault(taken)
            if not batch:
                break
            for start in range(0, len(batch), LOCAL_ROWS):
                chunk = batch[start : start + LOCAL_ROWS]
                for c, filled in zip(chunk, filler.fill([_row(c) for c in chunk]), strict=True):
                    if self.stop_requested or self.fault is not None:
                        return  # run() puts back whatever is still claimed
                    message = self._filled(c, filled, recorder)
                    if message is not None:
                        taken += 1
                        yield message
                if recorder.due():
                    recorder.flush()
            await asyncio.sleep(0)

    async def _messages_from(self, helpers: ProcessFillers, recorder: Recorder) -> AsyncIterator[Outgoing]:
        ahead: deque[tuple[list[Claimed], asyncio.Future[Batch]]] = deque()
        ahead_rows = 0  # rows sent to the helpers and not yet handed on: filled or not
        taken = 0
        exhausted = False
        try:
            while not self.stop_requested and self.fault is None:
                while not exhausted and ahead_rows < HELPER_ROWS * 3 * helpers.count:
                    batch = self._claim_or_fault(taken)
                    if not batch:
                        exhausted = True
                        break
                    taken += len(batch)
                    for start in range(0, len(batch), HELPER_ROWS):
                        chunk = batch[start : start + HELPER_ROWS]
                        ahead.append((chunk, helpers.submit([_row(c) for c in chunk])))
                        ahead_rows += len(chunk)
                if not ahead:
                    break
                chunk, future = ahead.popleft()
                ahead_rows -= len(chunk)
                filled = await future
                filled.left = len(chunk) + 1  # one more, given back when the whole batch is handed on
                for c, row in zip(chunk, filled.filled, strict=True):
                    if self.stop_requested or self.fault is not None:
                        return
                    message = self._filled(c, row, recorder, filled)
                    if message is None:
                        taken -= 1
                        filled.done()
                    else:
                        yield message
                filled.done()
                if recorder.due():
                    recorder.flush()
        finally:
            for _chunk, future in ahead:
                future.cancel()

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
        c: Claimed
        batch: Batch | None
        c, batch = result.key
        if batch is not None:
            batch.done()  # its shared memory may be filled again: copy the payload if it is tried again
            message = result.message
            if result.connection_fault and message is not None:
                copy = Outgoing(message.sender, message.recipient, bytes(message.payload), (c, None), False)
                result = dataclasses.replace(result, message=copy)
        if result.ok:
            self.consecutive_errors = 0
            self.summary.sent += 1
            if self.tries:
                self.tries.pop(c.delivery_id, None)
            if c.attempts:
                recorder.add(Outcome(c.delivery_id, "sent", attempts=c.attempts + 1))
            else:
                recorder.sent(c.delivery_id)
            return
        tries = self.tries.get(c.delivery_id, 0) + 1
        self.tries[c.delivery_id] = tries
        attempts = c.attempts + 1
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
            recorder.add(
                final_outcome(
                    self.summary, self.backoff, self.now(), c.delivery_id, c.email or "", result, attempts
                )
            )
        if self.consecutive_errors >= CONSECUTIVE_ERRORS_TO_PAUSE:
            self.stop(
                f"paused after {self.consecutive_errors} errors in a row; last: "
                f"{result.code or ''} {result.text}".strip()
            )
            self._set_status("paused", self.stop_requested)

    async def _watch(self, stream: SendStream) -> None:
        """While sending: stop when the campaign is paused or cancelled; renew the leases held;
        when the database is away, stop feeding (a lease that cannot be renewed runs out)."""
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
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("could not check campaign %s or renew its leases", self.slug)
                    continue
                self._fault(exc)
                stream.stop()
                return

    async def run(self, transport: Transport) -> Summary:
        """Send every pending delivery (or up to ``limit``); return what happened.

        The database away is waited out (see the module docstring): a shared engine returns once
        it is back and what it sent is recorded (its worker calls it again); one sending from its
        own process goes on sending."""
        while True:
            self.fault = None
            try:
                summary = await self._run(transport)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._fault(exc)
            if self.fault is None:
                self.outage.back()
                return summary
            await self._recover()
            if self.shared or self.stop_requested or self.fault is not None:
                return self.summary

    async def _recover(self) -> None:
        """Wait, with backoff, until the database answers; record what was sent meanwhile, then
        put back what this engine held and had not tried. Told to stop, it keeps trying for a
        lease at most, then leaves the rest to the leases (``self.fault`` stays set)."""
        exc: BaseException | None = self.fault
        assert exc is not None
        give_up = time.monotonic() + self.lease.total_seconds()
        while True:
            try:
                if self.recorder.flush(force=True):
                    self._release_all()
                    self.fault = None
                    self.outage.back()
                    return
            except Exception as error:
                if not is_transient(error):
                    raise
                exc = error
            finally:
                self.recorder.close()
            if self.stop_requested and time.monotonic() > give_up:
                log.warning(
                    "%s: stopping with %d outcome(s) not recorded: the database is still away",
                    self.worker,
                    self.recorder.pending,
                )
                return
            await self.outage.wait(exc)

    async def _run(self, transport: Transport) -> Summary:
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
        recorder = self.recorder
        count = self._helpers()
        async with contextlib.AsyncExitStack() as stack:
            helpers = None
            if count:
                helpers = ProcessFillers(count, self.settings.secrets, self.campaign_id, self._template)
                await stack.enter_async_context(helpers)
            stream = transport.send_many(self._messages(recorder, helpers), window=self.window)
            watcher = asyncio.create_task(self._watch(stream))
            last_tick = 0.0
            try:
                async for result in stream:
                    self._outcome(result, stream, recorder)
                    if self.stop_requested or self.fault is not None:
                        stream.stop()
                    if self.progress is not None:
                        now = time.monotonic()
                        if now - last_tick > 0.1:
                            last_tick = now
                            self.summary.seconds = now - started
                            self.progress(self.summary)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                try:
                    # Put back only once every outcome is written: a delivery put back before its
                    # outcome is written would be sent again.
                    if recorder.flush(force=True) and self.fault is None:
                        self._release_all()
                finally:
                    recorder.close()
                self.summary.seconds = time.monotonic() - started
        if self.fault is not None:
            return self.summary
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
