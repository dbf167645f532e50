"""Retention: each kind of record is kept for its stated time, then deleted (docs/data.md,
Retention). `mailer purge` runs it (``--dry-run`` counts without deleting) and the workers run it
daily as the ``purge`` chore.

What goes, per kind (the settings ``retain_*_days``):

- ``deliveries``: the delivery records of campaigns finished (or created, if never finished) before
  the cut-off, nothing still pending, sending or deferred;
- ``inbound``: inbound mail records (with the bounces read from them) and bounce records older than
  the cut-off; the suppressions they caused stay;
- ``sessions``: desk sessions expired or revoked, and sign-in links expired, before the cut-off;
- ``audit``: audit-log lines older than the cut-off;
- ``consent``: consent-log lines of people who are no longer members (erased, or never confirmed)
  whose last line is older than the cut-off — except a line that proves a suppression still held
  (unsubscribe, bounce, complaint, erasure), which is never deleted; a member's own lines are kept
  while they are a member;
- ``quarantine``, ``processed``, ``outbox``: mail files in the inbound Maildir's quarantine and
  processed folders and in a Maildir outbox, by their time on disk.

Never deleted: suppressions, members, campaigns and their variants (the archive).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from mailer.db import Database
from mailer.models import (
    AuditEntry,
    BounceEvent,
    Campaign,
    ConsentEvent,
    Delivery,
    DeskSession,
    InboundMessage,
    Member,
    SignInLink,
    Suppression,
    utcnow,
)
from mailer.sending.chores import Chore, ChoreContext
from mailer.settings import Settings

# Consent-log actions that prove a suppression: never deleted while the suppression is held.
PROVES_SUPPRESSION = ("unsubscribe", "bounce", "complaint", "erase")
FINAL = ("sent", "failed", "unknown", "suppressed", "skipped", "cancelled")


@dataclass(frozen=True)
class Purged:
    """One kind of record: what it is, how long it is kept, and how many were (or would be) deleted."""

    kind: str
    what: str
    days: int
    before: datetime
    count: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "what": self.what,
            "days": self.days,
            "before": self.before.isoformat(),
            "count": self.count,
        }


@dataclass(frozen=True)
class PurgeReport:
    now: datetime
    dry_run: bool
    kinds: list[Purged]

    @property
    def total(self) -> int:
        return sum(k.count for k in self.kinds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "total": self.total,
            "kinds": [k.as_dict() for k in self.kinds],
        }


@dataclass(frozen=True)
class _Rows:
    kind: str
    what: str
    days: int
    model: Any
    where: Callable[[datetime], ColumnElement[bool]]


def _rows(settings: Settings) -> list[_Rows]:
    finished = func.coalesce(Campaign.finished_at, Campaign.created_at)

    def old_campaigns(cut: datetime) -> Select[Any]:
        return select(Campaign.id).where(finished < cut)

    live_member = exists().where(Member.address_hash == ConsentEvent.address_hash)
    held = exists().where(Suppression.address_hash == ConsentEvent.address_hash)
    return [
        _Rows(
            "deliveries",
            "delivery records of finished campaigns",
            settings.retain_deliveries_days,
            Delivery,
            lambda cut: and_(Delivery.campaign_id.in_(old_campaigns(cut)), Delivery.status.in_(FINAL)),
        ),
        _Rows(
            "bounces",
            "bounce and complaint records",
            settings.retain_inbound_days,
            BounceEvent,
            lambda cut: BounceEvent.created_at < cut,
        ),
        _Rows(
            "inbound",
            "inbound mail records and the bounces read from them",
            settings.retain_inbound_days,
            InboundMessage,
            lambda cut: InboundMessage.processed_at < cut,
        ),
        _Rows(
            "sessions",
            "expired or revoked desk sessions",
            settings.retain_sessions_days,
            DeskSession,
            lambda cut: or_(DeskSession.expires_at < cut, DeskSession.revoked_at < cut),
        ),
        _Rows(
            "sign-in links",
            "expired sign-in links",
            settings.retain_sessions_days,
            SignInLink,
            lambda cut: SignInLink.expires_at < cut,
        ),
        _Rows(
            "audit",
            "audit-log lines",
            settings.retain_audit_days,
            AuditEntry,
            lambda cut: AuditEntry.created_at < cut,
        ),
        _Rows(
            "consent",
            "consent-log lines of people no longer members (never one that proves a suppression)",
            settings.retain_consent_days,
            ConsentEvent,
            lambda cut: and_(
                ConsentEvent.member_id.is_(None),
                ~live_member,
                ConsentEvent.address_hash.not_in(_recent_hashes(cut)),
                ~and_(held, ConsentEvent.action.in_(PROVES_SUPPRESSION)),
            ),
        ),
    ]


def _recent_hashes(cut: datetime) -> Select[Any]:
    """Hashes with a consent line at or after ``cut``: their whole log is kept for now."""
    return select(ConsentEvent.address_hash).where(ConsentEvent.created_at >= cut).distinct()


def purge(
    db: Database, settings: Settings, *, now: datetime | None = None, dry_run: bool = False
) -> PurgeReport:
    """Delete (or, ``dry_run``, count) every record past its retention; what went, per kind."""
    now = now or utcnow()
    kinds: list[Purged] = []
    with db.session() as session:
        for rows in _rows(settings):
            cut = now - timedelta(days=rows.days)
            kinds.append(Purged(rows.kind, rows.what, rows.days, cut, _apply(session, rows, cut, dry_run)))
    kinds.extend(_files(settings, now, dry_run))
    return PurgeReport(now=now, dry_run=dry_run, kinds=kinds)


def _apply(session: Session, rows: _Rows, cut: datetime, dry_run: bool) -> int:
    where = rows.where(cut)
    if dry_run:
        return session.scalar(select(func.count()).select_from(rows.model).where(where)) or 0
    result = session.execute(delete(rows.model).where(where).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _maildir_files(folder: Path) -> list[Path]:
    return [
        p
        for sub in ("cur", "new")
        if (folder / sub).is_dir()
        for p in (folder / sub).iterdir()
        if p.is_file()
    ]


def _files(settings: Settings, now: datetime, dry_run: bool) -> list[Purged]:
    boxes: list[tuple[str, str, int, Path]] = []
    if settings.inbound_maildir:
        inbound = settings.path(settings.inbound_maildir)
        boxes.append(
            (
                "quarantine",
                "quarantined inbound mail",
                settings.retain_quarantine_days,
                inbound / ".quarantine",
            )
        )
        boxes.append(
            ("processed", "processed inbound mail", settings.retain_inbound_days, inbound / ".processed")
        )
    for url in settings.relays:
        if url.startswith("maildir://"):
            outbox = Path(url.removeprefix("maildir://"))
            boxes.append(
                ("outbox", f"mail in the Maildir outbox {outbox.name}", settings.retain_outbox_days, outbox)
            )
    out = []
    for kind, what, days, folder in boxes:
        cut = now - timedelta(days=days)
        old = [p for p in _maildir_files(folder) if p.stat().st_mtime < cut.timestamp()]
        if not dry_run:
            for path in old:
                os.unlink(path)
        out.append(Purged(kind, what, days, cut, len(old)))
    return out


async def _run(context: ChoreContext) -> str:
    report = await asyncio.to_thread(purge, context.db, context.settings, now=context.now)
    gone = [f"{k.count} {k.kind}" for k in report.kinds if k.count]
    return "deleted " + ", ".join(gone) if gone else ""


PURGE = Chore("purge", timedelta(days=1), _run)
"""The workers' daily purge of what is past its retention (listed in mailer/chores.py)."""
