"""The queue of a send: one ``deliveries`` row per campaign and member, claimed under leases.

``enqueue`` snapshots the recipients into ``deliveries`` (one row per campaign and member, in one
transaction); suppressed members get no row, and a campaign already enqueued is left as it is (the
send resumes it). Senders then ``claim`` batches of pending rows under a lease, ``renew_leases``
while they work, and record outcomes (:class:`mailer.sending.engine.Recorder`). A claim whose lease
ran out goes back to whoever claims next; ``release_dead_claims`` puts back at once the claims of
processes on this machine that are gone.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from mailer.db import Database
from mailer.models import Campaign, Delivery, Member, Suppression, utcnow
from mailer.models import Variant as VariantRow
from mailer.sending.prepare import Prepared

LEASE = timedelta(minutes=5)

STATES = ("pending", "sending", "sent", "failed", "suppressed", "skipped", "cancelled")


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
