"""The queue of a send: one ``deliveries`` row per campaign and member, claimed under leases.

:func:`mailer.sending.snapshot.enqueue` snapshots the recipients into ``deliveries`` (one row per
campaign and member, in one transaction). Senders then ``claim`` batches of pending rows, and of
deferred rows whose next attempt is due, under a lease, ``renew_leases`` while they work, and
record outcomes (:class:`mailer.sending.engine.Recorder`). A claim whose lease ran out goes back to
whoever claims next; ``release_dead_claims`` puts back at once the claims of processes on this
machine that are gone.

A delivery's states: ``pending`` → ``sending`` (claimed) → ``sent``, ``failed`` (a permanent refusal,
or temporary ones for longer than the queue lifetime), ``deferred`` (a temporary failure: tried
again at ``next_attempt_at``, see :class:`Backoff`), ``unknown`` (no reply after the whole message
went out: the relay may have delivered it, so it is never resent by itself), ``suppressed``,
``skipped`` or ``cancelled``. ``attempts`` counts the times a delivery was taken from the queue and
tried (quick retries on a fresh connection within one go count as one). ``requeue`` makes the
deferred deliveries due now and puts failed deliveries that may succeed now (and, asked to, the
unknown ones) back in the queue.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Integer, String, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from mailer.audience.mailable import SUBSCRIBED
from mailer.db import Database
from mailer.errors import ConfigError
from mailer.models import Campaign, Delivery, Member, NetworkLeave, Suppression, UTCDateTime, utcnow
from mailer.settings import Settings

LEASE = timedelta(minutes=5)

STATES = (
    "pending",
    "sending",
    "deferred",
    "sent",
    "failed",
    "unknown",
    "suppressed",
    "skipped",
    "cancelled",
)
GAVE_UP = "gave up after "  # how the error of a delivery failed for lasting temporary failures begins


@dataclass(frozen=True)
class Backoff:
    """When a deferred delivery is tried again, and when it is given up (like an MTA's queue).

    After a delivery's n-th attempt fails temporarily it waits ``first × 2^(n−1)``, at most
    ``longest``. Once the waits before an attempt add up to ``lifetime``, a temporary failure of
    that attempt fails the delivery for good. The waits are counted, not the clock, so a delivery
    is never given up before it has been retried for the whole lifetime (a sender that was not
    running meanwhile only makes it longer).
    """

    first: timedelta
    longest: timedelta
    lifetime: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        for name in ("retry_first_minutes", "retry_max_hours", "queue_lifetime_hours"):
            if not getattr(settings, name) > 0:
                raise ConfigError(
                    f"{name} must be above 0", field=name, hint=f"the default is {getattr(Settings, name)}"
                )
        return cls(
            timedelta(minutes=settings.retry_first_minutes),
            timedelta(hours=settings.retry_max_hours),
            timedelta(hours=settings.queue_lifetime_hours),
        )

    def wait(self, attempts: int) -> timedelta:
        """The wait after a delivery's ``attempts``-th attempt failed temporarily."""
        seconds = self.first.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 60)
        return timedelta(seconds=min(seconds, max(self.longest, self.first).total_seconds()))

    def waited(self, attempts: int) -> timedelta:
        """The waits before attempt ``attempts``: the least time the delivery has been retried for."""
        return sum((self.wait(n) for n in range(1, attempts)), timedelta())

    def next_wait(self, attempts: int) -> timedelta | None:
        """The wait after attempt ``attempts`` failed temporarily; None: give up (lifetime spent)."""
        return None if self.waited(attempts) >= self.lifetime else self.wait(attempts)

    @property
    def lifetime_text(self) -> str:
        """The lifetime in words: "3 days", "1 hour", "90 minutes"."""
        minutes = round(self.lifetime.total_seconds() / 60)
        for unit, size in (("day", 1440), ("hour", 60), ("minute", 1)):
            if minutes % size == 0 or unit == "minute":
                n = minutes // size if minutes % size == 0 else round(minutes / size)
                return f"{n} {unit}{'' if n == 1 else 's'}"
        raise AssertionError("unreachable")  # pragma: no cover


def find_campaign(session: Session, slug: str) -> Campaign | None:
    return session.scalars(select(Campaign).where(Campaign.slug == slug)).one_or_none()


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


class Claimed(NamedTuple):
    """A claimed delivery with its member's address and name (a tuple: one is made per message)."""

    delivery_id: int
    member_id: int | None
    variant_id: int
    email: str | None
    name: str | None
    attempts: int = 0  # attempts before this one
    first_name: str | None = None  # the greeting's name


def claim(
    db: Database,
    campaign_id: int,
    worker: str,
    size: int,
    lease: timedelta = LEASE,
    *,
    due_by: datetime | None = None,
    after: int = 0,
    expired: bool = True,
) -> list[Claimed]:
    """Claim up to ``size`` deliveries that are pending, deferred and due by ``due_by`` (default:
    now), or (with ``expired``) claimed by someone whose lease ran out; the older work first, in id
    order.

    Each state is one ``UPDATE … WHERE id IN (SELECT … ORDER BY id LIMIT n) RETURNING id``, a range
    of the (campaign, status, id) index; on PostgreSQL the inner select is ``FOR UPDATE SKIP
    LOCKED``, so any number of workers claim side by side, and on SQLite the transaction holds the
    write lock (``BEGIN IMMEDIATE``). Pending rows are taken from above ``after`` (the highest id of
    the caller's previous claim) first, then from the start: until the table is vacuumed, the index
    keeps an entry for every row that was ever pending, so a scan from the start of the range walks
    past every delivery sent so far, most of the cost of a claim at 96 % sent of a million
    (docs/scaling.md, What a claim costs). Only rows put back (a pause, a stop, a released claim)
    lie below ``after``; the scan from the start finds them once nothing is left above it. Expired
    leases are a walk of every row that was ever ``sending``, for the same reason: a sender looks for
    them now and then (``expired``), not at every claim. One ``SELECT`` then reads the rows taken,
    by id, with their members' addresses, names, suppressions and leaves of the campaign's
    network (Core statements, compiled once; nothing becomes an ORM object). Members suppressed
    since the snapshot, or who left the campaign's network since, are marked ``suppressed`` here
    and not returned; members erased since are ``skipped``.
    """
    now = utcnow()
    due_by = due_by or now
    until = now + lease
    params = {
        "campaign": campaign_id,
        "worker": worker,
        "now": now,
        "due_by": due_by,
        "until": until,
        "after": after,
    }
    with db.engine.begin() as connection:
        statements = _claim_statements(connection.dialect.name == "postgresql")
        ids: list[int] = []
        # One statement per state, each a range of the (campaign_id, status, id) index: one with an
        # OR would walk every delivery already sent, which is most of them near the end of a large send.
        takes = statements.take if expired else statements.take[1:]
        if not after:
            takes = takes[:-1]  # from the start already
        for take in takes:
            ids.extend(connection.execute(take, {**params, "size": size - len(ids)}).scalars())
            if len(ids) >= size:
                break
        if not ids:
            return []
        out: list[Claimed] = []
        suppressed: list[int] = []
        left: list[int] = []
        gone: list[int] = []
        for (
            delivery_id,
            member_id,
            variant_id,
            attempts,
            email,
            name,
            first,
            status,
            reason,
            network,
        ) in connection.execute(statements.read, {**params, "ids": ids}):
            if email is None:
                gone.append(delivery_id)
            elif reason is not None or status != SUBSCRIBED:  # not to be mailed since the snapshot
                suppressed.append(delivery_id)
            elif network is not None:
                left.append(delivery_id)
            else:
                out.append(Claimed(delivery_id, member_id, variant_id, email, name, attempts or 0, first))
        if suppressed:
            connection.execute(
                update(_D).where(_D.c.id.in_(suppressed)).values(status="suppressed", claimed_by=None)
            )
        if left:
            connection.execute(
                update(_D)
                .where(_D.c.id.in_(left))
                .values(status="suppressed", claimed_by=None, last_error="left the campaign's network")
            )
        if gone:
            connection.execute(
                update(_D)
                .where(_D.c.id.in_(gone))
                .values(status="skipped", claimed_by=None, last_error="member erased")
            )
        return out


#: The tables themselves, for Core statements on the hot path (no ORM layer at execution).
_D = cast(Table, Delivery.__table__)
_M = cast(Table, Member.__table__)
_S = cast(Table, Suppression.__table__)
_C = cast(Table, Campaign.__table__)
_L = cast(Table, NetworkLeave.__table__)


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


@dataclass(frozen=True)
class Waiting:
    """What is left to do in a campaign's queue."""

    open: int  # pending, or claimed by a sender
    deferred: int  # waiting for their next attempt
    due: int  # of the deferred, those due by the time asked about
    next_attempt_at: datetime | None  # the earliest next attempt of a deferred delivery

    @property
    def done(self) -> bool:
        """Nothing pending, sending or deferred: the campaign is sent."""
        return self.open == 0 and self.deferred == 0


def waiting(db: Database, campaign_id: int, due_by: datetime | None = None) -> Waiting:
    """Counts of the deliveries still to be tried (ranges of the (campaign, status) index only)."""
    due_by = due_by or utcnow()
    with db.session() as session:
        counts = dict(
            session.execute(
                select(Delivery.status, func.count())
                .where(
                    Delivery.campaign_id == campaign_id,
                    Delivery.status.in_(("pending", "sending", "deferred")),
                )
                .group_by(Delivery.status)
            ).all()
        )
        deferred = int(counts.get("deferred", 0))
        due, first = 0, None
        if deferred:
            row = session.execute(
                select(
                    func.sum(case((Delivery.next_attempt_at <= due_by, 1), else_=0)),
                    func.min(Delivery.next_attempt_at),
                ).where(Delivery.campaign_id == campaign_id, Delivery.status == "deferred")
            ).one()
            due, first = int(row[0] or 0), row[1]
    return Waiting(int(counts.get("pending", 0)) + int(counts.get("sending", 0)), deferred, due, first)


def retryable_where(unknown: bool = False) -> ColumnElement[bool]:
    """The deliveries ``requeue`` takes: failed for a 4xx or for lasting temporary failures (and,
    with ``unknown``, those whose outcome is unknown)."""
    temporary = and_(
        Delivery.status == "failed",
        or_(Delivery.last_code.between(400, 499), Delivery.last_error.startswith(GAVE_UP)),
    )
    return or_(temporary, Delivery.status == "unknown") if unknown else temporary


def retryable_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """How many deliveries ``requeue`` would take: ``deferred`` (waiting for their next attempt),
    ``failed`` (for temporary reasons: may succeed now) and ``unknown``."""
    failed = session.scalar(
        select(func.count()).where(Delivery.campaign_id == campaign_id, retryable_where())
    )
    unknown = session.scalar(
        select(func.count()).where(Delivery.campaign_id == campaign_id, Delivery.status == "unknown")
    )
    deferred = session.scalar(
        select(func.count()).where(Delivery.campaign_id == campaign_id, Delivery.status == "deferred")
    )
    return {"deferred": int(deferred or 0), "failed": int(failed or 0), "unknown": int(unknown or 0)}


def requeue(session: Session, campaign_id: int, *, unknown: bool = False, now: datetime | None = None) -> int:
    """Make due now what a relay deferred (their next attempt at ``now``; their attempts and
    backoff stay as they were), and put back in the queue, due now and with a fresh queue lifetime,
    the deliveries that failed for temporary reasons (a 4xx, or temporary failures for longer than
    the queue lifetime), and with ``unknown`` those whose outcome is unknown (which the relay may
    have delivered: a member may get those twice). Permanent refusals (5xx) stay failed. Returns
    how many."""
    deferred = session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id, Delivery.status == "deferred")
        .values(next_attempt_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    result = session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id, retryable_where(unknown))
        .values(status="pending", attempts=0, next_attempt_at=None, claimed_by=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(deferred.rowcount) + int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _ClaimStatements:
    take: tuple[Any, ...]  # per state: mark up to :size rows claimed by :worker until :until
    # (expired leases, deferred and due, pending above :after, pending from the start)
    read: Any  # the rows of this claim, with their members


@functools.cache
def _claim_statements(skip_locked: bool) -> _ClaimStatements:
    """The claim's statements, built once (their parameters bound per claim)."""
    campaign = bindparam("campaign", type_=Integer)
    worker = bindparam("worker", type_=String)
    now = bindparam("now", type_=UTCDateTime)
    until = bindparam("until", type_=UTCDateTime)
    takes = []
    for state, due in (
        ("sending", _D.c.lease_until < now),
        ("deferred", _D.c.next_attempt_at <= bindparam("due_by", type_=UTCDateTime)),
        ("pending", _D.c.id > bindparam("after", type_=Integer)),  # from the caller's cursor on
        ("pending", None),  # from the start: what was put back below the cursor (last)
    ):
        where = [_D.c.campaign_id == campaign, _D.c.status == state]
        if due is not None:
            where.append(due)
        candidates = select(_D.c.id).where(*where).order_by(_D.c.id).limit(bindparam("size"))
        if skip_locked:
            candidates = candidates.with_for_update(skip_locked=True)
        takes.append(
            update(_D)
            .where(_D.c.id.in_(candidates.scalar_subquery()))
            .values(status="sending", claimed_by=worker, lease_until=until)
            .returning(_D.c.id)
        )
    read = (
        select(
            _D.c.id,
            _D.c.member_id,
            _D.c.variant_id,
            _D.c.attempts,
            _M.c.email,
            _M.c.name,
            _M.c.first_name,
            _M.c.status,
            _S.c.reason,
            _L.c.network,
        )
        .select_from(_D)
        .join(_C, _C.c.id == _D.c.campaign_id)
        .outerjoin(_M, _M.c.id == _D.c.member_id)
        .outerjoin(_S, _S.c.address_hash == _M.c.address_hash)
        # A member who left the campaign's network since the snapshot, as a suppression
        # (docs/decisions.md, Networks).
        .outerjoin(
            _L, and_(_L.c.member_id == _D.c.member_id, _L.c.network == _C.c.network, _C.c.network != "")
        )
        .where(
            _D.c.campaign_id == campaign,
            _D.c.status == "sending",
            _D.c.claimed_by == worker,
            # This claim's rows, by id: the (campaign, status) range of "sending" holds an entry for
            # every delivery ever claimed until the table is vacuumed.
            _D.c.id.in_(bindparam("ids", expanding=True)),
        )
        .order_by(_D.c.id)
    )
    return _ClaimStatements(tuple(takes), read)
