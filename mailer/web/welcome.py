"""The welcome mail a new member gets (docs/decisions.md, Networks): from their region's network, with its
welcome text, their local group's contact, the next events near them and their preferences link.  Sent when
a sign-up is confirmed (``signup.confirm``: a new member, or one coming back after an unsubscribe;
confirming twice sends one welcome) and, with ``mailer lists import --welcome``, to each member an import
added (the ids its report names, ``ImportReport.added_ids``: ``members.members_added``, ``send_welcomes``);
never to a member an import only updated.

- **From** the network of the member's region (``networks.member_network``); a region outside every
  declared network, or none, gets the organisation's (the workspace's default network).
- **The text** is the network's ``welcome`` (``Network.welcome_text``), in the template
  ``web/mail/welcome.txt``: a workspace's ``templates/web/mail/welcome.txt`` replaces the packaged
  one, like every template.
- **The local group** is the nearest region up the tree from the member's with a ``contact`` in
  ``lists/regions.toml`` (Birmingham's own, else West Midlands', …).
- **The next events** are those of the region's calendar feed (``calendars.feed_events``: sent
  issues whose audience reaches the region, events of the region or a region above it, not over
  yet), the first ``NEXT_EVENTS``, each with its "add to calendar" link.
- **The preferences link** is a signed ``preferences`` token, as in every other system mail.
- **It is marketing mail**, so it carries what campaign mail does: the network's postal address,
  charity line and privacy notice (``web/mail/_footer.txt``), a List-Id and List-Unsubscribe (https
  and mailto) with One-Click (``system_mail``'s ``unsubscribe_token``). The token names no
  campaign, so its unsubscribe stops all mail, as a link of no campaign does.

A welcome is a courtesy: if it cannot be built or sent, the confirmation stands (the caller logs
it), and an import reports how many were not sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from typing import Any

from mailer import tokens
from mailer.archive import SentIssue, sent_issues
from mailer.audience.members import NewMember
from mailer.audience.networks import Network, member_network
from mailer.audience.shape import Shape
from mailer.db import Session
from mailer.errors import ConfigError, MailerError
from mailer.issue.calendar_text import calendar_url, place_text, when_text
from mailer.settings import Settings
from mailer.slots import greeting_for
from mailer.web.calendars import feed_events
from mailer.web.context import SendMail
from mailer.web.mail import system_mail
from mailer.web.pages import Pages

NEXT_EVENTS = 5
TEMPLATE = "welcome.txt"


@dataclass(frozen=True)
class NextEvent:
    """One upcoming event, in words: "Tuesday 9 December from 6:30pm to 8:30pm"."""

    when: str
    title: str
    place: str
    calendar_url: str


@dataclass(frozen=True)
class GroupContact:
    """The local group a member belongs to: the region carrying the contact line, and the line."""

    region: str
    name: str
    contact: str


@dataclass(frozen=True)
class Welcome:
    """What a member's welcome says; ``welcome_message`` turns it into the mail."""

    network: Network
    region: str | None
    region_name: str
    group: GroupContact | None
    events: tuple[NextEvent, ...]
    preferences_url: str
    calendar_feed: str
    unsubscribe_token: str = ""
    """A signed ``unsubscribe`` token: the welcome is marketing mail, with List-Unsubscribe."""

    @property
    def text(self) -> str:
        return self.network.welcome_text()


def network_of_member(shape: Shape, settings: Settings, region: str | None) -> Network:
    """The network a member of ``region`` belongs to (``networks.member_network``); the
    organisation's (the default network) for a region outside every declared network, or none."""
    return member_network(shape, settings, region)


def group_contact(shape: Shape, region: str | None) -> GroupContact | None:
    """The nearest region from ``region`` up the tree with a ``contact`` line."""
    if region is None or region not in shape.regions:
        return None
    for slug in shape.ancestors(region):
        found = shape.regions[slug]
        if found.contact:
            return GroupContact(slug, found.name, found.contact)
    return None


def next_events(
    issues: Sequence[SentIssue],
    shape: Shape,
    settings: Settings,
    region: str | None,
    today: date,
    limit: int = NEXT_EVENTS,
) -> list[NextEvent]:
    """The first ``limit`` upcoming events of ``region``'s calendar feed (none without a region)."""
    if region is None or region not in shape.regions:
        return []
    found = feed_events(issues, shape, region, today, settings.list_domain)[:limit]
    return [
        NextEvent(
            when=when_text(fe.entry.event, today),
            title=fe.entry.event.title,
            place=place_text(fe.entry.event),
            calendar_url=calendar_url(settings.base_url, fe.uid),
        )
        for fe in found
    ]


def welcome_for(
    settings: Settings,
    shape: Shape,
    issues: Sequence[SentIssue],
    *,
    member_id: int,
    region: str | None,
    today: date,
) -> Welcome:
    """The welcome of member ``member_id`` living in ``region``; ``issues``: the sent issues
    (``archive.sent_issues``), whose calendars give the next events."""
    if not settings.secrets:
        raise ConfigError(
            "a welcome mail carries a signed preferences link and needs the key for signed links",
            field="secret",
            hint="set MAILER_SECRET or create .mailer-secret (mailer serve creates one)",
        )
    known = region if region is not None and region in shape.regions else None
    token = tokens.sign("preferences", member_id, keys=settings.secrets)
    leave = tokens.sign("unsubscribe", member_id, keys=settings.secrets)
    base = settings.base_url.rstrip("/")
    return Welcome(
        network=network_of_member(shape, settings, known),
        region=known,
        region_name=shape.regions[known].name if known else "",
        group=group_contact(shape, known),
        events=tuple(next_events(issues, shape, settings, known, today)),
        preferences_url=tokens.link(settings.base_url, "preferences", token),
        calendar_feed=f"{base}/calendar/{known}.ics" if known else f"{base}/calendar/",
        unsubscribe_token=leave,
    )


def welcome_message(
    pages: Pages,
    settings: Settings,
    shape: Shape,
    issues: Sequence[SentIssue],
    *,
    member_id: int,
    to: str,
    region: str | None,
    today: date,
    first_name: str = "",
) -> EmailMessage:
    """The welcome mail for member ``member_id`` (address ``to``, living in ``region``, greeted by
    ``first_name``), From their region's network, rendered from ``web/mail/welcome.txt``."""
    welcome = welcome_for(settings, shape, issues, member_id=member_id, region=region, today=today)
    return render_welcome(pages, settings, welcome, to=to, first_name=first_name)


def render_welcome(
    pages: Pages, settings: Settings, welcome: Welcome, *, to: str, first_name: str = ""
) -> EmailMessage:
    return system_mail(
        pages,
        settings,
        TEMPLATE,
        to=to,
        greeting=greeting_for(first_name, settings.greeting, settings.greeting_without_name),
        network=welcome.network,
        unsubscribe_token=welcome.unsubscribe_token or None,
        unsubscribe_url=tokens.link(settings.base_url, "unsubscribe", welcome.unsubscribe_token)
        if welcome.unsubscribe_token
        else "",
        welcome=welcome,
        welcome_text=welcome.text,
        group=welcome.group,
        events=welcome.events,
        preferences_url=welcome.preferences_url,
        calendar_feed=welcome.calendar_feed,
        region_name=welcome.region_name,
    )


# ---------------------------------------------------------------------------------------------
# Welcomes for an import (``mailer lists import --welcome``)


@dataclass
class WelcomeReport:
    """How the welcomes of an import went: ``sent``, and each address not sent to with why."""

    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": [{"email": e, "reason": r} for e, r in self.failed]}


def send_welcomes(
    session: Session,
    pages: Pages,
    settings: Settings,
    shape: Shape,
    members: Sequence[NewMember],
    *,
    today: date,
    send: SendMail,
) -> WelcomeReport:
    """Mail each of ``members`` their welcome through ``send``, one at a time; a welcome that
    cannot be built or sent is counted in ``failed`` with why, and the others go on."""
    report = WelcomeReport()
    if not members:
        return report
    issues = sent_issues(session, {})
    messages: list[tuple[str, EmailMessage | None, str]] = []
    for member in members:
        try:
            msg = welcome_message(
                pages,
                settings,
                shape,
                issues,
                member_id=member.id,
                to=member.email,
                region=member.region,
                today=today,
                first_name=member.first_name,
            )
            messages.append((member.email, msg, ""))
        except MailerError as exc:
            messages.append((member.email, None, str(exc)))

    async def run() -> None:
        for address, message, problem in messages:
            if message is None:
                report.failed.append((address, problem))
                continue
            try:
                await send(message)
            except (MailerError, OSError) as exc:
                report.failed.append((address, str(exc) or type(exc).__name__))
            else:
                report.sent += 1

    asyncio.run(run())
    return report
