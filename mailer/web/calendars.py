"""Calendar feeds (RFC 5545, built with ``icalendar``): ``/calendar/{region}.ics``, ``/calendar/all.ics``
and one event's ``/calendar/event/{uid}.ics`` (the "add to calendar" link in the email).

A region's feed holds the upcoming events of sent issues that a member living in that region could
see: the issue's audience reaches the region, and the event's regions (its own, else its item's) are
empty or name the region or one of its ancestors. Interests are not applied: a feed is public and
has no member behind it, so an event for the refugees team shows in every feed of its region. An
audience's interest and field conditions are likewise taken as "may match".

UIDs are the email's (``mailer.issue.calendar_text.event_uid``), so rebuilding a feed or downloading an
event from two places gives the same UID and a calendar client updates rather than duplicates.
DTSTAMP is the time the issue was sent, in UTC, so it is stable too; times are in the ``timezone``
setting's zone (Europe/London by default), with its VTIMEZONE in the file. An all-day event is
``DTSTART;VALUE=DATE`` with an exclusive ``DTEND`` (the day after its last day), so Peace Week,
``start: 2025-12-08`` and ``end: 2025-12-14``, is 20251208 to 20251215: seven days.

An event a local group sent on the desk (docs/decisions.md, The desk) is in the feeds as soon as an editor
accepts it into an issue (``contributed_events``), with the UID ``contribution-{id}@{list_domain}``, until
that issue is sent and its own entry takes over.

A region's feed speaks as the region's network (``networks.of_region``): its PRODID and calendar name
carry the network's name ("Kent Network: events in Canterbury"); one event's file speaks as its
issue's network; ``all.ics``, and a region outside every network, as the organisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import icalendar
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.archive import STARTED, SentIssue, issue_network, sent_issues
from mailer.audience import segments
from mailer.audience.networks import Network, networks_of, of_region
from mailer.audience.shape import Shape
from mailer.compose import CalendarEntry, calendar_entries
from mailer.db import Session
from mailer.errors import MailerError
from mailer.issue import Event, Newsletter
from mailer.issue.calendar_text import event_uid, place_text, sentence
from mailer.issue.schema import one_line
from mailer.settings import Settings
from mailer.web.context import web

MEDIA_TYPE = "text/calendar; charset=utf-8"


@dataclass(frozen=True)
class FeedEvent:
    """One calendar entry of a sent issue, with its UID."""

    sent: SentIssue
    entry: CalendarEntry
    regions: tuple[str, ...]
    uid: str


# ---------------------------------------------------------------------------------------------
# Who an event is for


def _may_reach(node: segments.Node, seen: frozenset[str]) -> bool | None:
    """Whether a member whose region and ancestors are ``seen`` matches ``node``: True, False, or
    None when it depends on their interests or fields."""
    match node:
        case segments.All():
            return True
        case segments.RegionIs(slug=slug):
            return slug in seen
        case segments.InterestIs() | segments.FieldIs() | segments.SegmentRef():
            return None
        case segments.Not(operand=operand):
            inner = _may_reach(operand, seen)
            return None if inner is None else not inner
        case segments.And(operands=operands):
            values = [_may_reach(o, seen) for o in operands]
            return False if False in values else (None if None in values else True)
        case segments.Or(operands=operands):
            values = [_may_reach(o, seen) for o in operands]
            return True if True in values else (None if None in values else False)
    return None  # pragma: no cover


def audience_reaches(expression: str, shape: Shape, region: str) -> bool:
    """Whether the audience ``expression`` may include members living in ``region``."""
    try:
        node = segments.resolve(segments.parse(expression), shape)
    except MailerError:
        return True  # an audience that no longer resolves: its events stay public
    return _may_reach(node, frozenset(shape.ancestors(region))) is not False


def entry_regions(issue: Newsletter, entry: CalendarEntry) -> tuple[str, ...]:
    """The regions an entry is for: its own, else its item's; () is the whole audience."""
    if entry.event.regions is not None:
        return tuple(entry.event.regions)
    item = next((i for i in issue.items if i.id == entry.item_id), None)
    return tuple(item.regions) if item is not None else ()


def is_upcoming(event: Event, today: date) -> bool:
    """Not over yet: its last day is today or later (an event over several days stays until it ends)."""
    return event.last_day >= today


def issue_events(sent: SentIssue, list_domain: str) -> list[FeedEvent]:
    issue = sent.issue
    if not isinstance(issue, Newsletter):
        return []
    return [
        FeedEvent(sent, entry, entry_regions(issue, entry), event_uid(sent.slug, entry.key, list_domain))
        for entry in calendar_entries(issue)
    ]


def feed_events(
    issues: Iterable[SentIssue], shape: Shape, region: str | None, today: date, list_domain: str
) -> list[FeedEvent]:
    """The upcoming events of ``issues`` for a member of ``region`` (None: every event), by start."""
    out = []
    for sent in issues:
        if region is not None and not audience_reaches(sent.issue.audience, shape, region):
            continue
        seen = frozenset(shape.ancestors(region)) if region is not None else frozenset()
        for fe in issue_events(sent, list_domain):
            if not is_upcoming(fe.entry.event, today):
                continue
            if region is None or not fe.regions or any(r in seen for r in fe.regions):
                out.append(fe)
    out.sort(key=lambda fe: (fe.entry.sort_key, fe.uid))
    return out


def contributed_events(
    session: Session, shape: Shape, settings: Settings, region: str | None, today: date, sent: set[str]
) -> list[FeedEvent]:
    """The upcoming events accepted from local groups' contributions (the desk's inbox)
    for a member of ``region`` (None: every one): in the feeds at once, before their issue is sent;
    once it is (its slug in ``sent``), the issue's own entry takes over. UID:
    ``contribution-{id}@{list_domain}``; DTSTAMP: when it was accepted."""
    from mailer.desk.inbox import accepted_events

    seen = frozenset(shape.ancestors(region)) if region is not None else frozenset()
    # The network owning the region, None for none (``of_region``): a whole network's event is in
    # its own regions' feeds, never in those of a region outside every network.
    owner = of_region(shape, settings, region) if region is not None and shape.networks else None
    out = []
    for a in accepted_events(session):
        regions = tuple(a.event.regions or ())
        if a.issue_slug in sent or not is_upcoming(a.event, today):
            continue
        if region is not None and regions and not any(r in seen for r in regions):
            continue
        whole = region is not None and not regions and shape.networks
        if whole and (owner is None or owner.slug != a.network):
            continue  # for a whole network: in its regions' feeds only
        pending = SentIssue(
            campaign_id=0,
            slug=a.issue_slug,
            title=a.issue_title,
            subject=a.issue_title,
            status="accepted",
            sent_at=a.decided_at,
            issue=Newsletter(kind="newsletter", title=a.issue_title, subject=a.issue_title, date=today),
            network=a.network,
        )
        uid = one_line(f"contribution-{a.id}@{settings.list_domain}").replace(" ", "-")
        out.append(FeedEvent(pending, CalendarEntry(f"contribution-{a.id}", a.event), regions, uid))
    return out


# ---------------------------------------------------------------------------------------------
# iCalendar


def _stamp(sent: SentIssue) -> datetime:
    if sent.sent_at is not None:
        return sent.sent_at.astimezone(UTC).replace(microsecond=0)
    return datetime.combine(sent.issue.date, time(), UTC)


def ics_event(fe: FeedEvent, settings: Settings) -> icalendar.Event:
    """The VEVENT of one entry."""
    ev = fe.entry.event
    base = settings.base_url.rstrip("/")
    archive = f"{base}/archive/{fe.sent.slug}/"
    out = icalendar.Event()
    out.add("uid", fe.uid)
    out.add("dtstamp", _stamp(fe.sent))
    out.add("summary", ev.title)
    if ev.all_day:
        # VALUE=DATE, and DTEND is exclusive (RFC 5545 3.6.1): the day after the last day.
        out.add("dtstart", ev.day)
        out.add("dtend", ev.last_day + timedelta(days=1))
    else:
        out.add("dtstart", ev.start_at(settings.zone))
        end = ev.end_at(settings.zone)
        if end is not None:
            out.add("dtend", end)
    place = place_text(ev)
    if place:
        out.add("location", place[0].upper() + place[1:])
    lines = []
    if ev.contact:
        lines.append(sentence(ev.contact))
    if ev.booking is not None:
        lines.append(f"{ev.booking.text}: {ev.booking.url}")
    sent = fe.sent.campaign_id != 0  # 0: accepted from a contribution, its issue not sent yet
    if sent:
        lines.append(f"From {fe.sent.issue.title}: {archive}")
    if lines:
        out.add("description", "\n".join(lines))
    if ev.booking is not None or sent:
        out.add("url", ev.booking.url if ev.booking is not None else archive)
    out.add("transp", "OPAQUE")
    return out


def ics_calendar(
    events: list[FeedEvent], settings: Settings, name: str, network: Network | None = None
) -> bytes:
    """A VCALENDAR of ``events`` with the VTIMEZONE of the ``timezone`` setting covering them,
    made by ``network`` (its name in PRODID; the organisation's when None)."""
    cal = icalendar.Calendar()
    cal.add("prodid", f"-//{network.name if network is not None else settings.organisation}//mailer//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", settings.timezone)
    timed = [fe.entry.event.day for fe in events if not fe.entry.event.all_day]
    if timed:
        first, last = min(timed), max(timed)
        cal.add_component(
            icalendar.Timezone.from_tzid(
                settings.timezone, first_date=date(first.year, 1, 1), last_date=date(last.year + 1, 12, 31)
            )
        )
    for fe in events:
        cal.add_component(ics_event(fe, settings))
    return bytes(cal.to_ical())


# ---------------------------------------------------------------------------------------------
# Routes


def _ics(body: bytes, filename: str | None = None) -> Response:
    headers = {"Cache-Control": "public, max-age=900", "X-Content-Type-Options": "nosniff"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(body, media_type=MEDIA_TYPE, headers=headers)


def _today(now: datetime, zone: tzinfo) -> date:
    return now.astimezone(zone).date()


async def index(request: Request) -> Response:
    """A page listing the feeds, for people."""
    w = web(request)
    regions = [(r.slug, w.shape.label(r.slug), depth) for depth, r in w.shape.walk()]
    groups: list[tuple[Network, list[tuple[str, str, int]]]] = []
    if w.shape.networks:  # several networks: each one's regions under its name
        # Each region under the network owning it (``of_region``); a region of none under none.
        owner = {slug: of_region(w.shape, w.settings, slug) for slug, _label, _depth in regions}
        groups = [
            (n, [r for r in regions if (o := owner[r[0]]) is not None and o.slug == n.slug])
            for n in networks_of(w.shape, w.settings)
        ]
    return w.pages.page(request, "calendars.html", {"regions": regions, "groups": groups})


async def feed(request: Request) -> Response:
    w = web(request)
    name = request.path_params["name"]
    region: str | None = None
    if name != "all":
        if name not in w.shape.regions:
            raise HTTPException(404)
        region = name
    today = _today(w.clock(), w.settings.zone)

    def read(s: Session) -> tuple[list[SentIssue], list[FeedEvent]]:
        issues = sent_issues(s, w.cache)
        return issues, contributed_events(s, w.shape, w.settings, region, today, {i.slug for i in issues})

    issues, accepted = await w.read(read)
    events = feed_events(issues, w.shape, region, today, w.settings.list_domain) + accepted
    events.sort(key=lambda fe: (fe.entry.sort_key, fe.uid))
    # Whether to brand the feed: as the network owning the region (``of_region``); None (the
    # organisation, unbranded) for all.ics, one network, or a region outside every network.
    network = of_region(w.shape, w.settings, region) if region is not None and w.shape.networks else None
    label = w.shape.regions[region].name if region else "all regions"
    speaker = network.name if network is not None else w.settings.organisation
    return _ics(ics_calendar(events, w.settings, f"{speaker}: events in {label}", network))


async def one_event(request: Request) -> Response:
    """One event's .ics, by its UID without the domain (``{slug}-{entry key}``), past or upcoming."""
    w = web(request)
    local = request.path_params["uid"]
    issues = await w.read(lambda s: sent_issues(s, w.cache, STARTED))
    for sent in issues:
        if not local.startswith(sent.slug + "-"):
            continue
        for fe in issue_events(sent, w.settings.list_domain):
            if fe.uid.split("@", 1)[0] == local:
                network = issue_network(w.shape, w.settings, sent)
                body = ics_calendar([fe], w.settings, fe.entry.event.title, network)
                return _ics(body, filename=f"{local}.ics")
    raise HTTPException(404)


routes = [
    Route("/calendar/", index, methods=["GET"]),
    Route("/calendar/event/{uid}.ics", one_event, methods=["GET"]),
    Route("/calendar/{name}.ics", feed, methods=["GET"]),
]
