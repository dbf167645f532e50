"""``mailer doctor``: every readiness check (:mod:`mailer.readiness`), the workers' too, in one pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailer.errors import MailerError
from mailer.readiness import (
    PLACEHOLDER,
    Finding,
    Readiness,
    dns_findings,
    placeholder_domain,
    relay_findings,
    settings_findings,
)

if TYPE_CHECKING:
    from mailer.audience.shape import Shape
    from mailer.db import Database
    from mailer.settings import Settings


def worker_findings(db: Database, settings: Settings) -> list[Finding]:
    """Campaigns waiting for a worker (queued or sending for workers) while none is alive."""
    from sqlalchemy import select

    from mailer.models import Campaign
    from mailer.sending.worker import alive_workers

    with db.session() as session:
        waiting = list(
            session.scalars(
                select(Campaign.slug).where(Campaign.status.in_(("queued", "sending", "scheduled")))
            )
        )
    if not waiting or alive_workers(db, settings):
        return []
    return [
        Finding(
            "workers",
            f"{len(waiting)} campaign(s) wait to be sent ({', '.join(waiting[:3])}) and no worker is alive",
            "start one: `mailer worker` (see `mailer workers`), or send from here with "
            f"`mailer campaigns send {waiting[0]} --in-process`",
        )
    ]


def reply_findings(db: Database) -> list[Finding]:
    """Replies asking to leave that wait for a person (docs/decisions.md, Replies asking to leave):
    nobody is to be mailed again unread."""
    from sqlalchemy import func, select

    from mailer.models import ReplyRequest

    with db.session() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(ReplyRequest.received_at)).where(ReplyRequest.state == "pending")
        ).one()
    if not count:
        return []
    return [
        Finding(
            "replies",
            f"{count} reply(ies) asking to leave wait for a person (the oldest since {oldest:%Y-%m-%d}): "
            "those members still get mail",
            "read them with `mailer inbound pending` (or on the desk's home page) and act: "
            "`mailer inbound pending unsubscribe ID`, or `dismiss ID` when it is no request",
            "warning",
        )
    ]


def diagnose(
    settings: Settings,
    shape: Shape,
    db: Database | None = None,
    *,
    relay: bool = True,
    dns: bool = True,
    workers: bool = True,
) -> Readiness:
    """Every check, in order: settings, relay, workers (with ``db``), DNS (not in a demo)."""
    from mailer.dnscheck import RecordCheck, check_records, records_to_publish

    result = Readiness(settings.demo, settings_findings(settings, shape))
    if relay:
        result.findings += relay_findings(settings)
    if workers and db is not None:
        try:
            result.findings += worker_findings(db, settings)
            result.findings += reply_findings(db)
        except MailerError as exc:
            result.findings.append(
                Finding("workers", f"the database cannot be read: {exc}", "see `mailer db`", "warning")
            )
    if dns and not settings.demo:
        records = records_to_publish(settings, shape)
        real = [r for r in records if not placeholder_domain(r.name)]
        checked = {id(c.record): c for c in check_records(real, settings.dns_resolver)}
        result.records = [
            checked.get(id(r)) or RecordCheck(r, "unchecked", detail=PLACEHOLDER) for r in records
        ]
        result.findings += dns_findings(result.records)
    return result


__all__ = ["diagnose", "reply_findings", "worker_findings"]
