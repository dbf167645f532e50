"""Sent issues as the archive, the calendar feeds and the welcome mail see them: read from the
``campaigns`` table (and ``variants``, each as its members got it).

A campaign row keeps the issue file as sent (``source``), so the archive shows what went out even if
the workspace's file changed or went since. Parsed issues are kept per (campaign, source) in the
``cache`` the caller passes (the web app's state).

Each sent issue speaks as its network (docs/decisions.md, Networks): the one its campaign row names
(``Campaign.network``); a row naming none ("", a campaign sent before networks, or by a workspace
with one) speaks as the network its issue names or its audience implies, else the workspace's first
(``issue_network``).

``started_campaign`` and ``variant_html`` answer the archive's pages: whether a campaign went out
(its images may be served) and a variant's stored HTML.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience.networks import Network, campaign_network, networks_of
from mailer.audience.shape import Shape
from mailer.errors import ContentError, MailerError, Problem
from mailer.issue import ISSUE_FILE, Alert, Newsletter, read_yaml
from mailer.models import Campaign, Variant
from mailer.settings import Settings

#: Statuses whose members may hold the mail, so "view in browser" must work.
STARTED = ("sending", "paused", "sent", "cancelled")


@dataclass(frozen=True)
class SentIssue:
    """A campaign that went out, with its issue parsed (``slug``, ``path``, ``issue``: ``compose.Loaded``)."""

    campaign_id: int
    slug: str
    title: str
    subject: str
    status: str
    sent_at: datetime | None
    issue: Newsletter | Alert
    network: str = ""
    """The network the campaign row names (a slug; "" when it names none): see ``issue_network``."""

    @property
    def path(self) -> Path:
        return Path("campaigns") / self.slug / ISSUE_FILE


def parse_source(slug: str, text: str) -> Newsletter | Alert:
    """The issue in ``text`` (an issue file as sent), validated without the workspace's lists.

    Regions and interests are not checked against today's lists (they may have changed since), nor
    local image files (the archive links them under /files/).
    """
    path = Path("campaigns") / slug / ISSUE_FILE
    problems: list[Problem] = []
    data: Any = read_yaml(text, path, problems)[0]
    if problems or not isinstance(data, dict):
        why = "; ".join(map(str, problems)) or "not a set of fields"
        raise ContentError([Problem(f"the issue as sent does not load: {why}", path=path)])
    model: type[Newsletter] | type[Alert] = Alert if data.get("kind") == "alert" else Newsletter
    try:
        return model.model_validate(data, context={"shape": None, "folder": None})
    except ValidationError as exc:
        raise ContentError([Problem(f"the issue as sent does not load: {exc}", path=path)]) from exc


def _row_issue(cache: dict[Any, Any], row: Any) -> Newsletter | Alert | None:
    key = ("issue", row.id, hashlib.sha256(row.source.encode()).hexdigest())
    if key not in cache:
        try:
            cache[key] = parse_source(row.slug, row.source)
        except ContentError:
            cache[key] = None  # not shown, rather than breaking every page
    issue: Newsletter | Alert | None = cache[key]
    return issue


def sent_issues(
    session: Session, cache: dict[Any, Any], statuses: tuple[str, ...] = ("sent",), *, slug: str | None = None
) -> list[SentIssue]:
    """Campaigns in ``statuses`` (only ``slug``, if given) with their issues, newest first."""
    query = select(
        Campaign.id,
        Campaign.slug,
        Campaign.title,
        Campaign.subject,
        Campaign.status,
        Campaign.source,
        Campaign.issue_date,
        Campaign.started_at,
        Campaign.finished_at,
        Campaign.network,
    ).where(Campaign.status.in_(statuses))
    if slug is not None:
        query = query.where(Campaign.slug == slug)
    rows = session.execute(query).all()
    out = []
    for row in rows:
        issue = _row_issue(cache, row)
        if issue is None:
            continue
        out.append(
            SentIssue(
                campaign_id=row.id,
                slug=row.slug,
                title=row.title,
                subject=row.subject,
                status=row.status,
                sent_at=row.finished_at or row.started_at,
                issue=issue,
                network=row.network or "",
            )
        )
    out.sort(key=lambda s: (s.issue.date, s.slug), reverse=True)
    return out


def sent_issue(
    session: Session, cache: dict[Any, Any], slug: str, statuses: tuple[str, ...] = ("sent",)
) -> SentIssue | None:
    """The campaign ``slug`` if it is in ``statuses``, with its issue."""
    found = sent_issues(session, cache, statuses, slug=slug)
    return found[0] if found else None


def started_campaign(session: Session, slug: str) -> int | None:
    """The id of the campaign ``slug`` if it has started (``STARTED``: its members may hold the
    mail), else None."""
    return session.scalar(select(Campaign.id).where(Campaign.slug == slug, Campaign.status.in_(STARTED)))


def variant_html(session: Session, slug: str, key: str) -> str | None:
    """The stored HTML of variant ``key`` of the started campaign ``slug``, as its members got it
    (slot markers still in); None when there is no such variant."""
    html = session.scalar(
        select(Variant.html)
        .join(Campaign, Campaign.id == Variant.campaign_id)
        .where(Campaign.slug == slug, Campaign.status.in_(STARTED), Variant.key == key)
    )
    return None if html is None else str(html)


def issue_network(shape: Shape, settings: Settings, sent: SentIssue) -> Network:
    """The network ``sent`` speaks as (``networks.campaign_network``): its campaign's
    (``Campaign.network``), else the one its issue names, else the one its audience implies. A
    page shows what went out whatever changed since: a name that is no longer a network is passed
    over, and when the network still cannot be told the workspace's first one speaks."""
    networks = networks_of(shape, settings)
    known = {network.slug for network in networks}
    names = [slug for slug in (sent.network, sent.issue.network) if slug in known]
    try:
        return campaign_network(shape, settings, *names, audience=sent.issue.audience)
    except MailerError:  # ambiguous, or an audience that no longer resolves
        return networks[0]


def query_network(shape: Shape, settings: Settings, value: str | None) -> Network | None:
    """The network a page's ``?network=SLUG`` names: None when there is no such parameter (or it is
    empty); raises ``LookupError`` for a slug that is not one of the workspace's networks (the route
    answers 404). Compared as given, never looked up in the database or echoed back."""
    if not value:
        return None
    for network in networks_of(shape, settings):
        if network.slug == value:
            return network
    raise LookupError("no such network")
