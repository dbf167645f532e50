"""An issue's life at the desk: where it stands (draft, approved, edited since, or its campaign's
status), and the record of who started and saved it (``issue_edits``, the audit log)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.desk import approvals, audit
from mailer.desk.issuefile import record_edit
from mailer.errors import MailerError
from mailer.models import Campaign
from mailer.settings import Settings


def status(session: Session, settings: Settings, shape: Shape, slug: str) -> str:
    """draft, approved (``approvals``: of the file and audience as they are now), edited since
    approval, or the campaign's status once it has been scheduled or sent."""
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is not None and campaign.status != "draft":
        return campaign.status
    try:
        issue = approvals.resolve(session, settings, shape, slug)
    except MailerError:
        return "draft"  # an issue with errors: not approvable as it is
    standing = approvals.standing(session, slug, issue.fingerprint)
    return "approved" if standing.approved else "edited" if standing.edited_since else "draft"


def statuses(session: Session, settings: Settings, shape: Shape, slugs: Iterable[str]) -> dict[str, str]:
    return {slug: status(session, settings, shape, slug) for slug in slugs}


def campaign_statuses(session: Session, slugs: Iterable[str]) -> dict[str, str]:
    """The status of each of ``slugs`` that has a campaign (draft, scheduled, sending, sent …)."""
    wanted = list(slugs)
    rows = session.execute(select(Campaign.slug, Campaign.status).where(Campaign.slug.in_(wanted)))
    return {slug: state for slug, state in rows}


def record_started(
    session: Session, slug: str, version: str, *, by: int, network: str, now: datetime
) -> None:
    """``by`` started the issue ``slug`` (its file now at ``version``) for ``network``."""
    record_edit(session, slug, by, version, now=now)
    audit.record(session, "issue.new", by=by, object=slug, detail=network, now=now)


def record_saved(
    session: Session, slug: str, version: str, *, by: int, action: str = "save", now: datetime
) -> None:
    """``by`` saved the issue ``slug`` (now at ``version``) with the form's ``action``."""
    record_edit(session, slug, by, version, now=now)
    audit.record(session, "issue.save", by=by, object=slug, detail=action or "save", now=now)
