"""Sending an issue from the desk: a test to oneself, the confirmed send bound to what the sender
saw, and finding a campaign once it is sent or scheduled. Each call reads and writes the database
itself (the send plans in its own transactions), so it runs in a worker thread, not a request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mailer import sending
from mailer.audience.networks import Network, campaign_network
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import approvals, audit
from mailer.desk.approvals import Choice, IssueNow
from mailer.desk.people import Person
from mailer.errors import MailerError
from mailer.issue import load_campaign
from mailer.settings import Settings


def test_send(
    db: Database,
    writer: Database,
    settings: Settings,
    shape: Shape,
    slug: str,
    person: Person,
    *,
    now: datetime,
) -> sending.TestsSent:
    """Send issue ``slug`` as a test to ``person`` alone, and say so in the audit log."""
    plan = sending.plan_send(db, settings, shape, slug, tests=[person.email])
    result = sending.send(plan)
    assert isinstance(result, sending.TestsSent)
    with writer.session() as s:
        detail = "sent" if result.ok else "refused"
        audit.record(s, "issue.test-send", by=person.id, object=slug, detail=detail, now=now)
    return result


def confirm(
    db: Database,
    writer: Database,
    settings: Settings,
    shape: Shape,
    issue: IssueNow,
    person: Person,
    choice: Choice,
    *,
    seen: str,
    clock: Callable[[], datetime],
) -> str:
    """Send (or schedule) ``issue`` as ``person`` if it is still what they saw (``seen``, its
    fingerprint) and approved: "queued", "scheduled", or why not: "changed", "unapproved",
    "forbidden". Raises MailerError for a send that cannot be planned."""
    if seen != issue.fingerprint:  # not what they saw: nothing to plan
        return "changed"
    plan, fingerprint = approvals.plan_bound(db, settings, shape, issue.slug, choice)
    with db.session() as s:
        standing = approvals.standing(s, issue.slug, fingerprint)
    if not approvals.may_send_as(person, issue.key, choice, approved=standing.approved):
        return "forbidden" if standing.approved else "unapproved"
    if seen != fingerprint:
        return "changed"
    result = sending.send(plan)
    if isinstance(result, sending.Scheduled):
        action, detail = "issue.schedule", f"{plan.members} members at {result.at} ({settings.timezone})"
    elif isinstance(result, sending.Queued):
        action, detail = "issue.send", f"{plan.members} members, queued for the workers"
    else:
        action, detail = "issue.send", type(result).__name__
    with writer.session() as s:
        audit.record(s, action, by=person.id, object=issue.slug, detail=detail, now=clock())
    return "scheduled" if isinstance(result, sending.Scheduled) else "queued"


@dataclass(frozen=True)
class Sent:
    """A campaign sent or scheduled, and the network it speaks as (None when that cannot be told)."""

    slug: str
    title: str
    status: str
    scheduled_at: datetime | None
    network: Network | None


def find_sent(db: Database, settings: Settings, shape: Shape, slug: str) -> Sent | None:
    """The campaign ``slug`` (its status, which may still be draft) and the network it speaks
    as; None when there is no campaign of that name."""
    with db.session() as s:
        found = sending.find_campaign(s, slug)
        if found is None:
            return None
        title, status, at, sent_as = found.title, found.status, found.scheduled_at, found.network
    return Sent(slug, title, status, at, _network_of(settings, shape, slug, sent_as or ""))


def campaign_status(db: Database, slug: str) -> str:
    """The status of the campaign ``slug``; "" when there is none."""
    with db.session() as s:
        found = sending.find_campaign(s, slug)
        return found.status if found is not None else ""


def _network_of(settings: Settings, shape: Shape, slug: str, sent_as: str) -> Network | None:
    """The network a sent campaign speaks as (``networks.campaign_network``): the one it was sent
    as, else its issue file's (read only then); None when that is unknown or cannot be told."""
    try:
        if sent_as or not shape.networks:
            return campaign_network(shape, settings, sent_as)
        issue = load_campaign(settings.workspace, slug, shape).issue
        return campaign_network(shape, settings, issue.network, audience=issue.audience)
    except MailerError:
        return None
