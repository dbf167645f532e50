"""Calendar feeds (RFC 5545, built with ``icalendar``): ``/calendar/{region}.ics``, ``/calendar/all.ics``
and one event's ``/calendar/event/{uid}.ics`` (the "add to calendar" link in the email).

A region's feed holds the upcoming events of sent issues that a member living in that region could
see: the issue's audience reaches the region, and the event's regions (its own, else its item's) are
empty or name the region or one of its ancestors. Interests are not applied: a feed is public and
has no member behind it, so an event for the refugees team shows in every feed of its region. An
audience's interest and field conditions are likewise taken as "may match".

UIDs are the email's (``mailer.issue.calendar_text.event_uid``), so rebuilding a feed or downloading an
event from two places gives the same UID and a calendar client updates rather than duplicates.
DTSTAMP is the time the issue was sent, in UTC, so it is stable too; SEQUENCE and LAST-MODIFIED come
from the events table (``mailer.events``: raised when an event's time, place or title change), and a
cancelled event leaves the feeds (its own file says STATUS:CANCELLED); times are in the ``timezone``
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

from collections.abc import Iterable, Mapping
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
from mailer.events import EventInfo, entry_regions, event_times, events_of
from mailer.issue import Event, Newsletter
from mailer.issue.calendar_text import event_uid, place_text, sentence
from mailer.issue.schema import one_line
from mailer.settings import Settings
from mailer.web.context import web

MEDIA_TYPE = "text/calendar; charset=utf-8"


@dataclass(frozen=True)
class FeedEvent:
    """One calendar entry of a sent issue, with its UID and, once its issue is sent, its row of the
    events table (``state``: SEQUENCE, LAST-MODIFIED, cancelled)."""

    sent: SentIssue
    entry: CalendarEntry
    regions: tuple[str, ...]
    uid: str
    state: EventInfo | None = None


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


def is_upcoming(event: Event, today: date) -> bool:
    """Not over yet: its last day is today or later (an event over several days stays until it ends)."""
    return event.last_day >= today


def issue_events(
    sent: SentIssue, list_domain: str, states: Mapping[str, EventInfo] | None = None
) -> list[FeedEvent]:
    """The calendar entries of ``sent``, each with its row of the events table in ``states`` (by UID
    without the domain) when it has one."""
    issue = sent.issue
    if not isinstance(issue, Newsletter):
        return []
    out = []
    for entry in calendar_entries(issue):
        uid = event_uid(sent.slug, entry.key, list_domain)
        state = (states or {}).get(uid.rsplit("@", 1)[0])
        out.append(FeedEvent(sent, entry, entry_regions(issue, entry), uid, state))
    return out


def is_cancelled(fe: FeedEvent) -> bool:
    """Cancelled: in the issue file (``cancelled: true``) or in the events table (left out of it)."""
    return fe.entry.event.cancelled or (fe.state is not None and fe.state.cancelled)


def feed_events(
    issues: Iterable[SentIssue],
    shape: Shape,
    region: str | None,
    today: date,
    list_domain: str,
    states: Mapping[str, EventInfo] | None = None,
) -> list[FeedEvent]:
    """The upcoming events of ``issues`` for a member of ``region`` (None: every event), by start;
    a cancelled event leaves the feeds."""
    out = []
    for sent in issues:
        if region is not None and not audience_reaches(sent.issue.audience, shape, region):
            continue
        seen = frozenset(shape.ancestors(region)) if region is not None else frozenset()
        for fe in issue_events(sent, list_domain, states):
            if not is_upcoming(fe.entry.event, today) or is_cancelled(fe):
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
        if a.issue_slug in sent or not is_upcoming(a.event, today) or a.event.cancelled:
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


def _planned(fe: FeedEvent, settings: Settings) -> tuple[str, str, date | datetime, date | datetime]:
    """Title, place, start and end of an entry: the events table's (kept in step with edits made
    after the send) once it has a row, else the issue's. An all-day event's are dates, its end the
    day after its last day (DTEND is exclusive, RFC 5545 3.6.1); a timed one's aware times in the
    ``timezone`` setting's zone, its end the default duration after the start when it gave none."""
    ev, state, zone = fe.entry.event, fe.state, settings.zone
    if state is not None:
        start, end = state.starts_at.astimezone(zone), state.ends_at.astimezone(zone)
        if state.all_day:
            return state.title, state.place, start.date(), end.date()
        return state.title, state.place, start, end
    start, end = event_times(ev, settings)
    if ev.all_day:
        return ev.title, place_text(ev), ev.day, ev.last_day + timedelta(days=1)
    return ev.title, place_text(ev), start, end


def ics_event(fe: FeedEvent, settings: Settings) -> icalendar.Event:
    """The VEVENT of one entry. A timed event without an end lasts the ``event_default_minutes``
    setting (a DTEND always: without one a client shows an instant); an all-day one is TRANSPARENT
    (Peace Week does not mark anyone busy all week), a timed one OPAQUE. SEQUENCE and LAST-MODIFIED
    come from the events table, raised when time, place or title change (``mailer.events``), so a
    client takes the new version; a cancelled event says so (STATUS:CANCELLED)."""
    ev = fe.entry.event
    base = settings.base_url.rstrip("/")
    archive = f"{base}/archive/{fe.sent.slug}/"
    out = icalendar.Event()
    out.add("uid", fe.uid)
    stamp = _stamp(fe.sent)
    out.add("dtstamp", stamp)
    title, place, start, end = _planned(fe, settings)
    out.add("summary", title)
    out.add("dtstart", start)
    out.add("dtend", end)
    state = fe.state
    out.add("sequence", state.sequence if state is not None else 0)
    modified = state.last_modified if state is not None else stamp
    out.add("last-modified", modified.astimezone(UTC).replace(microsecond=0))
    if is_cancelled(fe):
        out.add("status", "CANCELLED")
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
    out.add("transp", "TRANSPARENT" if ev.all_day else "OPAQUE")
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

    def read(s: Session) -> tuple[list[SentIssue], list[FeedEvent], dict[str, EventInfo]]:
        issues = sent_issues(s, w.cache)
        states = events_of(s, [i.slug for i in issues])
        return (
            issues,
            contributed_events(s, w.shape, w.settings, region, today, {i.slug for i in issues}),
            states,
        )

    issues, accepted, states = await w.read(read)
    events = feed_events(issues, w.shape, region, today, w.settings.list_domain, states) + accepted
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

    def read(s: Session) -> tuple[list[SentIssue], dict[str, EventInfo]]:
        issues = [i for i in sent_issues(s, w.cache, STARTED) if local.startswith(i.slug + "-")]
        return issues, events_of(s, [i.slug for i in issues])

    issues, states = await w.read(read)
    for sent in issues:
        for fe in issue_events(sent, w.settings.list_domain, states):
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
