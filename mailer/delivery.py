"""The delivery engine: each member gets their variant, once, and a stopped send resumes.

The pipeline of ``mailer campaigns send``, top to bottom:

1. ``prepare``: load and validate the issue, plan the audience's variants, render each variant once
   and build its message template. Nothing is written; a broken issue sends nothing.
2. ``enqueue``: snapshot the recipients into ``deliveries`` (one row per campaign and member, in one
   transaction). Suppressed members get no row. A campaign already enqueued is resumed instead.
3. ``deliver``: claim a batch of pending deliveries under a lease, re-check the batch against
   suppressions (an unsubscribe made during the send stops that member's message), fill each
   member's slots into ready wire bytes, hand them to the transport, and record every outcome in
   bulk as it comes back.

What a kill can duplicate. A message counts as sent once its outcome is recorded. Outcomes are
written at least every ``FLUSH_SECONDS`` or ``FLUSH_RESULTS`` results, and the transport holds at
most ``window`` messages in flight. A process killed with SIGKILL therefore leaves at most
``window + FLUSH_RESULTS`` messages that reached the relay without being recorded; only those can be
sent twice when the send is resumed (the tests measure this bound). Nothing is ever lost: a claimed
delivery with no recorded outcome goes back to the queue when its lease expires, or at once when the
process that claimed it is gone.

Many senders, one campaign. On PostgreSQL any number of processes (``mailer worker``, see
:mod:`mailer.worker`) run an ``Engine`` each on the same campaign: claims use ``FOR UPDATE SKIP
LOCKED``, so no two hold the same delivery, and each renews the leases of what it holds every
``heartbeat_seconds`` while it works. A process that dies stops renewing; once its leases end
(``lease_seconds``), the others claim what it had not recorded. Each running engine reads the
campaign's status every ``STATUS_SECONDS``: ``pause`` or ``cancel`` (:func:`pause_campaign`,
:func:`cancel_campaign`) stops every sender within that time plus the messages already on a
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from mailer import tokens
from mailer.audience import suppression
from mailer.audience.segments import compile_segment
from mailer.audience.shape import Shape
from mailer.compose import VariantPlan, plan
from mailer.content import LoadedIssue, load_campaign
from mailer.db import Database
from mailer.errors import DeliveryError, InvalidInput, UnknownName
from mailer.message import DkimKey, MessageParts, MessageTemplate, Recipient
from mailer.models import Campaign, Delivery, Member, Region, Suppression, utcnow
from mailer.models import Variant as VariantRow
from mailer.render import RenderedVariant, Renderer
from mailer.settings import Settings, dkim_private_key
from mailer.transport import Outgoing, SendResult, SendStream, Transport

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1
FLUSH_RESULTS = 100
MAX_ATTEMPTS = 3
RETRY_DELAYS = (2.0, 10.0, 30.0)
CONSECUTIVE_ERRORS_TO_PAUSE = 50
LEASE = timedelta(minutes=5)
STATUS_SECONDS = 0.5  # how often a running engine reads its campaign's status (pause, cancel)

STATES = ("pending", "sending", "sent", "failed", "suppressed", "skipped", "cancelled")


# ---------------------------------------------------------------------------------------------
# 1. prepare: everything validated and rendered before the first side effect


@dataclass
class Prepared:
    """An issue ready to send: its plan, and each planned variant rendered once."""

    loaded: LoadedIssue
    audience: str
    plan: VariantPlan
    renderer: Renderer
    rendered: dict[str, RenderedVariant]

    @property
    def slug(self) -> str:
        return self.loaded.slug

    def render(self, key: str) -> RenderedVariant:
        """The rendered variant ``key``, rendering one that appeared after planning."""
        if key not in self.rendered:
            self.rendered[key] = self.renderer.render(self.plan.variant(key), self.loaded)
        return self.rendered[key]

    def by_variant(self) -> list[tuple[str, str, int]]:
        """(key, label, members) of each variant, most members first."""
        return [(p.variant.key, p.label, p.members) for p in self.plan.variants]

    def by_region(self) -> list[tuple[str, int]]:
        """(region label, members) for every home region of the audience, largest first."""
        counts: Counter[str] = Counter()
        for planned in self.plan.variants:
            for group in planned.groups:
                label = self.plan.shape.label(group.region) if group.region else "(no region)"
                counts[label] += group.members
        return counts.most_common()


def audience_of(loaded: LoadedIssue, segment: str | None) -> str:
    """The issue's audience, narrowed by ``segment`` when given (never widened)."""
    if not segment:
        return loaded.issue.audience
    return f"({loaded.issue.audience}) and ({segment})"


def prepare(
    db: Database, settings: Settings, shape: Shape, slug: str, *, segment: str | None = None
) -> Prepared:
    """Load, validate, plan and render ``slug``; raise before anything is written if any of it fails."""
    loaded = load_campaign(settings.workspace, slug, shape)
    audience = audience_of(loaded, segment)
    compile_segment(audience, shape)  # unknown names and syntax errors, now
    with db.session() as session:
        the_plan = plan(session, loaded, shape, audience)
    renderer = Renderer(settings)
    rendered = {p.variant.key: renderer.render(p.variant, loaded) for p in the_plan.variants}
    for r in rendered.values():  # every template must build: settings, markers
        template_for(settings, slug, r)
    return Prepared(loaded, audience, the_plan, renderer, rendered)


def template_for(settings: Settings, slug: str, rendered: RenderedVariant | VariantRow) -> MessageTemplate:
    """The message template of one variant (built once, filled per recipient), DKIM-signed when
    the settings name a key. The rendered HTML carries its own preheader (mj-preview)."""
    parts = MessageParts(subject=rendered.subject, text=rendered.text, html=rendered.html)
    key = dkim_private_key(settings)
    dkim = None
    if key is not None:
        domain = settings.dkim_domain or settings.from_address.rpartition("@")[2]
        dkim = DkimKey(selector=settings.dkim_selector, domain=domain, private_key=key)
    return MessageTemplate.build(
        parts,
        settings=settings,
        campaign_slug=slug,
        list_name=settings.organisation,
        default_name="friend",
        dkim=dkim,
    )


# ---------------------------------------------------------------------------------------------
# 2. enqueue: the snapshot of recipients


@dataclass(frozen=True)
class Enqueued:
    campaign_id: int
    created: bool  # False: the campaign was enqueued before, and this send resumes it
    deliveries: int
    status: str


def find_campaign(session: Session, slug: str) -> Campaign | None:
    return session.scalars(select(Campaign).where(Campaign.slug == slug)).one_or_none()


def enqueue(db: Database, prepared: Prepared, *, scheduled_at: datetime | None = None) -> Enqueued:
    """Snapshot the audience into ``deliveries``, once. A campaign already enqueued is left as it is."""
    issue = prepared.loaded.issue
    with db.session() as session:
        existing = find_campaign(session, prepared.slug)
        if existing is not None:
            total = session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.campaign_id == existing.id)
            )
            return Enqueued(existing.id, False, int(total or 0), existing.status)
        campaign = Campaign(
            slug=prepared.slug,
            kind=issue.kind,
            title=issue.title,
            subject=issue.subject,
            audience=prepared.audience,
            issue_date=issue.date.isoformat(),
            source=prepared.loaded.path.read_text(encoding="utf-8"),
            status="scheduled" if scheduled_at else "queued",
            scheduled_at=scheduled_at,
        )
        session.add(campaign)
        session.flush()
        variant_ids: dict[str, int] = {}
        labels = {p.variant.key: p.label for p in prepared.plan.variants}

        def variant_id(key: str) -> int:
            if key not in variant_ids:
                r = prepared.render(key)
                v = prepared.plan.variant(key)
                row = VariantRow(
                    campaign_id=campaign.id,
                    key=key,
                    label=labels.get(key, v.label),
                    item_ids=" ".join(v.item_ids),
                    subject=r.subject,
                    preheader=r.preheader,
                    text=r.text,
                    html=r.html,
                )
                session.add(row)
                session.flush()
                variant_ids[key] = row.id
            return variant_ids[key]

        total = 0
        for chunk in prepared.plan.recipients(session):
            rows = [
                {"campaign_id": campaign.id, "member_id": m, "variant_id": variant_id(k), "status": "pending"}
                for m, k in chunk
            ]
            session.execute(insert(Delivery), rows)
            total += len(rows)
        region_of = select(Member.region_id).where(Member.id == Delivery.member_id).scalar_subquery()
        session.execute(
            update(Delivery).where(Delivery.campaign_id == campaign.id).values(region_id=region_of)
        )
        return Enqueued(campaign.id, True, total, campaign.status)


# ---------------------------------------------------------------------------------------------
# 3. deliver: claim, check, fill, send, record


@dataclass
class Summary:
    """What one run of the engine did."""

    campaign: str
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0
    retried: int = 0
    hard_bounces: int = 0
    seconds: float = 0.0
    stopped_because: str = ""
    failures: list[tuple[str, int | None, str]] = field(default_factory=list)

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
            "hard_bounces": self.hard_bounces,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.rate, 1),
            "stopped_because": self.stopped_because,
        }


def worker_name() -> str:
    """``host:pid:random``: who holds a claim, so a dead process's claims can be taken back."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _process_gone(claimed_by: str) -> bool:
    host, _, rest = claimed_by.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def release_dead_claims(db: Database, campaign_id: int) -> int:
    """Put back deliveries claimed by processes on this machine that no longer run."""
    with db.session() as session:
        holders = session.scalars(
            select(Delivery.claimed_by)
            .where(Delivery.campaign_id == campaign_id, Delivery.status == "sending")
            .distinct()
        ).all()
        dead = [h for h in holders if h and _process_gone(h)]
        if not dead:
            return 0
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.status == "sending",
                Delivery.claimed_by.in_(dead),
            )
            .values(status="pending", claimed_by=None, lease_until=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    member_id: int | None
    variant_id: int
    email: str | None
    name: str | None


def claim(db: Database, campaign_id: int, worker: str, size: int, lease: timedelta = LEASE) -> list[Claimed]:
    """Claim up to ``size`` deliveries that are pending (or whose lease ran out), oldest first.

    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim side by side.
    Members suppressed since the snapshot are marked ``suppressed`` here and not returned; members
    erased since are ``skipped``.
    """
    now = utcnow()
    with db.session() as session:
        skip_locked = session.get_bind().dialect.name == "postgresql"
        ids: list[int] = []
        # Two queries, each a range of the (campaign_id, status, id) index: one with an OR would
        # walk every delivery already sent, which is most of them near the end of a large send.
        for state in ("sending", "pending"):  # claims whose lease ran out first: the older work
            where = [Delivery.campaign_id == campaign_id, Delivery.status == state]
            if state == "sending":
                where.append(Delivery.lease_until < now)
            candidates = select(Delivery.id).where(*where).order_by(Delivery.id).limit(size - len(ids))
            if skip_locked:
                candidates = candidates.with_for_update(skip_locked=True)
            ids += session.scalars(candidates).all()
            if len(ids) >= size:
                break
        if not ids:
            return []
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status="sending", claimed_by=worker, lease_until=now + lease)
        )
        rows = session.execute(
            select(
                Delivery.id,
                Delivery.member_id,
                Delivery.variant_id,
                Member.email,
                Member.name,
                Suppression.reason,
            )
            .outerjoin(Member, Member.id == Delivery.member_id)
            .outerjoin(Suppression, Suppression.address_hash == Member.address_hash)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
        ).all()
        suppressed = [r[0] for r in rows if r[5] is not None]
        gone = [r[0] for r in rows if r[3] is None]
        if suppressed:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(suppressed))
                .values(status="suppressed", claimed_by=None)
            )
        if gone:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(gone))
                .values(status="skipped", claimed_by=None, last_error="member erased")
            )
        return [Claimed(r[0], r[1], r[2], r[3], r[4]) for r in rows if r[5] is None and r[3] is not None]


@dataclass
class _Outcome:
    delivery_id: int
    status: str  # sent, failed, skipped
    code: int | None = None
    error: str = ""
    attempts: int = 1
    email: str = ""
    hard_bounce: bool = False


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
                        }
                        for o in others
                    ],
                )
            for o in others:
                if o.hard_bounce:
                    suppression.suppress(
                        session,
                        o.email,
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
    ) -> None:
        self.db = db
        self.shared = shared
        self.lease = timedelta(seconds=float(settings.lease_seconds))
        self.heartbeat = float(settings.heartbeat_seconds)
        self.retry_delays = retry_delays
        self.max_attempts = max_attempts
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
        self.attempts: dict[int, int] = {}
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
            batch = claim(self.db, self.campaign_id, self.worker, size, self.lease)
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
        tries = self.attempts.get(c.delivery_id, 0) + 1
        self.attempts[c.delivery_id] = tries
        if result.ok:
            self.consecutive_errors = 0
            self.summary.sent += 1
            recorder.add(_Outcome(c.delivery_id, "sent", attempts=tries))
            return
        self.consecutive_errors += 1
        if (
            result.temporary
            and tries < MAX_ATTEMPTS
            and not self.stop_requested
            and result.message is not None
        ):
            self.summary.retried += 1
            stream.requeue(result.message, delay=RETRY_DELAYS[min(tries - 1, len(RETRY_DELAYS) - 1)])
        else:
            hard = bool(result.enhanced and result.enhanced.startswith("5.1."))
            self.summary.failed += 1
            self.summary.hard_bounces += hard
            self.summary.failures.append((c.email or "", result.code, result.text))
            recorder.add(
                _Outcome(
                    c.delivery_id,
                    "failed",
                    code=result.code,
                    error=result.text,
                    attempts=tries,
                    email=c.email or "",
                    hard_bounce=hard,
                )
            )
        if self.consecutive_errors >= CONSECUTIVE_ERRORS_TO_PAUSE:
            self.stop(
                f"paused after {self.consecutive_errors} errors in a row; last: "
                f"{result.code or ''} {result.text}".strip()
            )
            self._set_status("paused", self.stop_requested)

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
        counts = status_counts(self.db, self.campaign_id)
        open_ = counts.get("pending", 0) + counts.get("sending", 0)
        status, reason = self._campaign_status()
        if status == "sending":
            if open_ == 0:
                with self.db.session() as session:
                    session.execute(
                        update(Campaign)
                        .where(Campaign.id == self.campaign_id, Campaign.status == "sending")
                        .values(status="sent", status_reason="", finished_at=utcnow())
                    )
            elif not self.shared and (self.stop_requested or self.limit_reached):
                self._set_status("paused", self.stop_requested or f"limit of {self.limit} reached")
        status, reason = self._campaign_status()
        self.summary.stopped_because = self.stop_requested or reason


def status_counts(db: Database, campaign_id: int) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        ).all()
    return {str(s): int(n) for s, n in rows}


def renew_leases(db: Database, campaign_id: int, worker: str, lease: timedelta = LEASE) -> int:
    """Extend the leases of the deliveries ``worker`` holds in the campaign; how many it holds."""
    with db.session() as session:
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.status == "sending",
                Delivery.claimed_by == worker,
            )
            .values(lease_until=utcnow() + lease)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# campaign control, for every sender at once: schedule, start, pause, resume, cancel

SEND_TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


def parse_send_time(text: str, timezone: str = "Europe/London") -> datetime:
    """``2025-11-17 08:00``, wall-clock time in ``timezone``, as an aware UTC datetime."""
    for fmt in SEND_TIME_FORMATS:
        try:
            wall = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return wall.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)
    raise DeliveryError(
        f"cannot read the time {text!r}",
        field="--at",
        hint=f'write it like "2025-11-17 08:00", in {timezone} time',
    )


@dataclass(frozen=True)
class Control:
    """What a control command did to a campaign."""

    campaign: str
    status: str  # the campaign's status afterwards
    was: str
    changed: int = 0  # deliveries changed (cancelled, or put back in the queue)

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "status": self.status, "was": self.was, "changed": self.changed}


def _campaign_for_update(session: Session, slug: str) -> Campaign:
    query = select(Campaign).where(Campaign.slug == slug).with_for_update()
    campaign = session.scalars(query).one_or_none()
    if campaign is None:
        raise UnknownName(
            f"campaign {slug!r} has not been sent or scheduled", hint=f"mailer campaigns send {slug}"
        )
    return campaign


def start_campaign(db: Database, slug: str) -> Control:
    """Mark an enqueued campaign ``sending``: every worker takes part from its next look."""
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        check_sendable(was, slug)
        campaign.status, campaign.status_reason = "sending", ""
        campaign.started_at = campaign.started_at or utcnow()
        return Control(slug, campaign.status, was)


def schedule_campaign(db: Database, slug: str, when: datetime) -> Control:
    """Mark an enqueued campaign ``scheduled`` for ``when`` (UTC); a running worker starts it then."""
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        check_sendable(was, slug)
        if was == "sending":
            raise DeliveryError(
                f"campaign {slug!r} is sending already", hint=f"pause it first: mailer campaigns pause {slug}"
            )
        campaign.status, campaign.status_reason, campaign.scheduled_at = "scheduled", "", when
        return Control(slug, "scheduled", was)


def start_due(db: Database, now: datetime | None = None) -> list[str]:
    """Start every scheduled campaign whose time has come; their slugs (any worker may call it)."""
    now = now or utcnow()
    with db.session() as session:
        due = session.scalars(
            select(Campaign)
            .where(Campaign.status == "scheduled", Campaign.scheduled_at <= now)
            .with_for_update(skip_locked=True)
        ).all()
        for campaign in due:
            campaign.status, campaign.status_reason = "sending", ""
            campaign.started_at = campaign.started_at or now
        return [c.slug for c in due]


def sending_campaigns(db: Database) -> list[tuple[int, str]]:
    """(id, slug) of every campaign being sent, the oldest first."""
    with db.session() as session:
        rows = session.execute(
            select(Campaign.id, Campaign.slug).where(Campaign.status == "sending").order_by(Campaign.id)
        ).all()
    return [(int(i), str(s)) for i, s in rows]


def pause_campaign(db: Database, slug: str, reason: str = "paused by an editor") -> Control:
    """Stop every sender of the campaign; what they hold goes back to the queue (``resume`` goes on)."""
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        if was not in ("sending", "queued", "scheduled", "paused"):
            raise DeliveryError(f"campaign {slug!r} is {was}: there is nothing to pause")
        campaign.status, campaign.status_reason = "paused", reason
        return Control(slug, "paused", was)


def resume_campaign(db: Database, slug: str) -> Control:
    """Set a paused (or queued) campaign sending again, where it stopped."""
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        if was not in ("paused", "queued", "sending"):
            raise DeliveryError(
                f"campaign {slug!r} is {was}: only a paused campaign can be resumed",
                hint="`mailer campaigns status` shows it",
            )
        campaign.status, campaign.status_reason = "sending", ""
        campaign.started_at = campaign.started_at or utcnow()
        return Control(slug, "sending", was)


def cancel_campaign(db: Database, slug: str) -> Control:
    """Cancel every delivery not yet sent, claimed ones included; nothing more of it goes out.

    A claimed delivery keeps its ``claimed_by``: if its message was already on a connection when
    the sender noticed, the outcome is still recorded (``sent``), so the counts stay true.
    """
    with db.session() as session:
        campaign = _campaign_for_update(session, slug)
        was = campaign.status
        if was in ("sent", "cancelled"):
            raise DeliveryError(f"campaign {slug!r} is {was} already: there is nothing to cancel")
        campaign.status, campaign.status_reason = "cancelled", "cancelled by an editor"
        campaign.finished_at = utcnow()
        result = session.execute(
            update(Delivery)
            .where(Delivery.campaign_id == campaign.id, Delivery.status.in_(("pending", "sending")))
            .values(status="cancelled", lease_until=None)
        )
        return Control(slug, "cancelled", was, int(result.rowcount))  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# status


@dataclass
class CampaignStatus:
    slug: str
    status: str
    reason: str
    total: int
    counts: dict[str, int]
    by_region: list[tuple[str, dict[str, int]]]
    started_at: datetime | None
    finished_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "status": self.status,
            "reason": self.reason,
            "total": self.total,
            "counts": {s: self.counts.get(s, 0) for s in STATES},
            "by_region": {label: counts for label, counts in self.by_region},
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def campaign_status(db: Database, shape: Shape, slug: str) -> CampaignStatus:
    """Counts by state, overall and by region, of a campaign's deliveries."""
    with db.session() as session:
        campaign = find_campaign(session, slug)
        if campaign is None:
            raise UnknownName(
                f"campaign {slug!r} has not been sent", hint="send it with `mailer campaigns send`"
            )
        rows = session.execute(
            select(Region.slug, Delivery.status, func.count())
            .outerjoin(Region, Region.id == Delivery.region_id)
            .where(Delivery.campaign_id == campaign.id)
            .group_by(Region.slug, Delivery.status)
        ).all()
        counts: Counter[str] = Counter()
        regions: dict[str, dict[str, int]] = {}
        for region, state, n in rows:
            label = shape.label(region) if region in shape.regions else (region or "(no region)")
            regions.setdefault(label, {})[state] = int(n)
            counts[state] += int(n)
        return CampaignStatus(
            slug=slug,
            status=campaign.status,
            reason=campaign.status_reason,
            total=sum(counts.values()),
            counts=dict(counts),
            by_region=sorted(regions.items()),
            started_at=campaign.started_at,
            finished_at=campaign.finished_at,
        )


# ---------------------------------------------------------------------------------------------
# test sends: to named addresses, subject marked [TEST], no state changed


def test_recipients(
    db: Database, settings: Settings, prepared: Prepared, addresses: list[str]
) -> Iterator[tuple[MessageTemplate, Recipient]]:
    """For each address: the variant its member would get (or the full issue), ready to fill."""
    from mailer.audience.addresses import normalise
    from mailer.compose import compose_all

    full = prepared.renderer.render(compose_all(prepared.loaded.issue), prepared.loaded)
    with db.session() as session:
        for i, address in enumerate(addresses, 1):
            email = normalise(address)
            member = session.scalars(select(Member).where(Member.email == email)).one_or_none()
            rendered = full
            if member is not None:
                region = member.region.slug if member.region else None
                variant = prepared.plan.variant_for(region, frozenset(x.slug for x in member.interests))
                rendered = prepared.render(variant.key)
            marked = RenderedVariant(
                subject="[TEST] " + rendered.subject,
                preheader=rendered.preheader,
                text=rendered.text,
                html=rendered.html,
                variant_key=rendered.variant_key,
            )
            template = template_for(settings, prepared.slug, marked)
            member_id = member.id if member is not None else 0
            keys = settings.secrets
            yield (
                template,
                Recipient(
                    delivery_id=0 if member is None else -i,
                    member_id=member_id,
                    email=email,
                    name=member.name if member is not None else "",
                    unsubscribe_token=tokens.sign("unsubscribe", member_id, keys=keys),
                    preferences_token=tokens.sign("preferences", member_id, keys=keys),
                ),
            )


async def send_tests(
    db: Database, settings: Settings, prepared: Prepared, addresses: list[str], transport: Transport
) -> list[SendResult]:
    """Send the test copies; the database is not written."""
    results = []
    for template, recipient in test_recipients(db, settings, prepared, addresses):
        payload = template.fill_wire(recipient)
        results.append(await transport.send(template.return_path(recipient), recipient.email, payload))
    return results


def check_sendable(status: str, slug: str) -> None:
    if status == "sent":
        raise DeliveryError(
            f"campaign {slug!r} has been sent already", hint="`mailer campaigns status` shows it"
        )
    if status == "cancelled":
        raise DeliveryError(f"campaign {slug!r} was cancelled", hint="copy it to a new slug to send it again")
