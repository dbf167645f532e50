""" "What's on near you": the digest the workers send on its schedule (docs/events.md, The digest).

A digest is an issue file of ``kind: digest`` (``mailer.issue.schema.Digest``): a title and intro,
how many ``days`` ahead it looks, and when it goes out (``every: weekly`` on a day of the week, or
``monthly`` on a day of the month, at a ``time``). The ``digests`` chore (listed in
``mailer.chores``) looks at every digest on each round of the workers; when a run is due it

1. gathers the calendar (:func:`calendar_events`): the events of sent issues and the events
   accepted from local groups' contributions, in the next ``days`` days, each with the regions
   and interests it is for (an event for "the whole audience" is for its issue's regions, else its
   network's: a Kent-wide event is for Kent);
2. makes the run's issue (the digest with those events) and its audience: the digest's, narrowed
   to the members who would see at least one event, so that nobody gets an empty digest;
3. enqueues it as a campaign of its own, ``<digest slug>-<run day>``, and starts it: the workers
   send it like any campaign (variants rendered once, DKIM, List-Unsubscribe, suppressions and
   network leaves honoured, a report per run).

A new campaign per run rather than a stage of one campaign: a stage adds members to the same
content, but each run's content is new (other events, other members with none), and a campaign
of its own gives each run its report, its "nobody twice" (one delivery per campaign and member)
and a slug that says which run it was, so a run is never started twice (a run whose campaign
exists is done).

``approval: required`` holds each run until the digest stands approved on the desk
(``mailer.desk.approvals``: bound to the digest's file and its audience as the approver saw them);
a run waits until then, for at most a day (``LATE``, as for workers that were stopped): a run
not started by then is skipped, and the next one goes out on time.
"""

from __future__ import annotations

import asyncio
import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from mailer.archive import issue_network, sent_issues
from mailer.audience.networks import Network, audience_regions, named
from mailer.audience.segments import MAX_TERMS
from mailer.audience.shape import Shape, load_shape
from mailer.compose import calendar_entries, plan
from mailer.db import Database, Session
from mailer.desk.approvals import resolve, standing
from mailer.desk.inbox import accepted_events
from mailer.errors import MailerError
from mailer.events import local_uid
from mailer.events.reminders import events_now
from mailer.identity import issue_identity
from mailer.issue import Digest, Event, LoadedIssue, Newsletter, campaign_slugs, load_campaign
from mailer.issue.calendar_text import event_uid
from mailer.issue.schedule import WEEKDAYS
from mailer.issue.schema import one_line
from mailer.models import EventRow
from mailer.readiness import require_ready
from mailer.render import Renderer
from mailer.sending.chores import Chore, ChoreContext
from mailer.sending.control import start_campaign
from mailer.sending.prepare import Prepared, network_line, template_for
from mailer.sending.queue import find_campaign
from mailer.sending.snapshot import enqueue
from mailer.settings import Settings

#: A run starts at most this late (workers stopped, an approver away); after that it is skipped.
LATE = timedelta(hours=24)
#: Campaign statuses whose issues' events are in the calendar.
SENT = ("sending", "paused", "sent")


@dataclass(frozen=True)
class CalendarEvent:
    """An event of the calendar with its UID, the regions and interests it is for (resolved: its
    own, else its item's; "the whole audience" made the issue's or network's regions) and the
    network it belongs to ("" when it cannot be told)."""

    uid: str
    event: Event
    network: str


@dataclass(frozen=True)
class DigestRun:
    """What the chore did about one digest: ``started`` (its campaign enqueued for ``members``),
    ``waiting`` (for approval), or ``nobody`` (no member has an event in its window)."""

    slug: str
    campaign: str
    outcome: str
    members: int = 0
    events: int = 0

    def line(self) -> str:
        if self.outcome == "started":
            return f"{self.campaign}: {self.events} event(s) to {self.members} member(s)"
        if self.outcome == "waiting":
            return f"{self.campaign}: waiting for an approver on the desk"
        return f"{self.campaign}: no member has an event in the next days; nothing sent"


# ---------------------------------------------------------------------------------------------
# When


def last_run(digest: Digest, zone: ZoneInfo, now: datetime) -> datetime | None:
    """The latest time the digest was due at or before ``now`` (aware, in ``zone``); None before its
    ``date``. A weekly digest is due on its weekday, a monthly one on its day of the month."""
    local = now.astimezone(zone)
    if digest.every == "weekly":
        assert isinstance(digest.day, str)
        back = (local.weekday() - WEEKDAYS.index(digest.day)) % 7
        due = datetime.combine(local.date() - timedelta(days=back), digest.time, zone)
        if due > local:
            due -= timedelta(days=7)
    else:
        assert isinstance(digest.day, int)
        due = datetime.combine(local.date().replace(day=digest.day), digest.time, zone)
        if due > local:
            year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
            due = datetime.combine(date(year, month, digest.day), digest.time, zone)
    return due if due.date() >= digest.date else None


def next_run(digest: Digest, zone: ZoneInfo, after: datetime) -> datetime:
    """The first time the digest is due after ``after`` (at most a month and a day later)."""
    if digest.every == "weekly":
        ahead = datetime.combine(after.astimezone(zone).date() + timedelta(days=8), digest.time, zone)
    else:
        local = after.astimezone(zone)
        days = calendar.monthrange(local.year, local.month)[1]
        ahead = datetime.combine(local.date() + timedelta(days=days + 1), digest.time, zone)
    found = last_run(digest, zone, ahead)
    assert found is not None
    while True:
        earlier = last_run(digest, zone, found - timedelta(minutes=1))
        if earlier is None or earlier <= after:
            return found
        found = earlier


# ---------------------------------------------------------------------------------------------
# The calendar


def _resolved(event: Event, regions: list[str], interests: list[str]) -> Event:
    return event.model_copy(update={"regions": regions, "interests": interests})


def _whole_audience(shape: Shape, audience: str, network: Network | None) -> list[str]:
    """The regions an event for "everyone in the audience" is for: those its issue's audience
    names, else its network's ([]: everyone, in a workspace of one network)."""
    try:
        named_regions = audience_regions(audience, shape)
    except MailerError:
        named_regions = set()
    if named_regions:
        return sorted(named_regions)
    return list(network.regions) if network is not None and shape.networks else []


def _in_window(event: Event, today: date, until: date) -> bool:
    """Not over by ``today``, and starting before ``until``."""
    return event.last_day >= today and event.day < until


def calendar_events(
    session: Session, shape: Shape, settings: Settings, today: date, days: int
) -> list[CalendarEvent]:
    """The calendar's events from ``today`` for ``days`` days, by start: those of sent issues and
    those accepted from local groups (until their issue is sent and its own entry takes over)."""
    until = today + timedelta(days=days)
    found: dict[str, CalendarEvent] = {}
    sent = sent_issues(session, {}, SENT)
    # Cancelled since (an edit of the sent issue, the events table says): not on the calendar.
    cancelled = set(session.scalars(select(EventRow.uid).where(EventRow.cancelled_at.is_not(None))))
    for issue_sent in sent:
        issue = issue_sent.issue
        if not isinstance(issue, Newsletter):
            continue
        owner = issue_network(shape, settings, issue_sent)
        items = {item.id: item for item in issue.items}
        for entry in calendar_entries(issue):
            ev, item = entry.event, items.get(entry.item_id or "")
            if (
                ev.cancelled
                or not _in_window(ev, today, until)
                or local_uid(issue_sent.slug, entry.key) in cancelled
            ):
                continue
            regions = ev.regions if ev.regions is not None else (item.regions if item else [])
            interests = ev.interests if ev.interests is not None else (item.interests if item else [])
            regions = list(regions) or _whole_audience(shape, issue.audience, owner)
            uid = event_uid(issue_sent.slug, entry.key, settings.list_domain)
            found.setdefault(uid, CalendarEvent(uid, _resolved(ev, regions, list(interests)), owner.slug))
    sent_slugs = {s.slug for s in sent}
    for accepted in accepted_events(session):
        ev = accepted.event
        if accepted.issue_slug in sent_slugs or ev.cancelled or not _in_window(ev, today, until):
            continue
        group = _network(shape, settings, accepted.network)
        regions = list(ev.regions or ()) or _whole_audience(shape, "all", group)
        uid = one_line(f"contribution-{accepted.id}@{settings.list_domain}").replace(" ", "-")
        found.setdefault(
            uid, CalendarEvent(uid, _resolved(ev, regions, list(ev.interests or ())), accepted.network)
        )
    return sorted(found.values(), key=lambda c: (c.event.wall_start, not c.event.all_day, c.uid))


def _network(shape: Shape, settings: Settings, slug: str) -> Network | None:
    try:
        return named(shape, settings, slug) if slug else None
    except MailerError:
        return None


def _known(event: CalendarEvent, shape: Shape) -> CalendarEvent | None:
    """The event with only the regions and interests the lists still have; None when every region
    (or every interest) it was for has gone."""
    ev = event.event
    regions = [r for r in ev.regions or () if r in shape.regions]
    interests = [i for i in ev.interests or () if i in shape.interests]
    if (ev.regions and not regions) or (ev.interests and not interests):
        return None
    return CalendarEvent(event.uid, _resolved(ev, regions, interests), event.network)


def who_sees_any(events: list[CalendarEvent]) -> str | None:
    """A segment expression of the members who would see at least one of ``events``, as composing
    has it (an event's regions, and its interests); None when one is for everyone (no narrowing).
    Past the segments' limit on conditions, the regions alone (their interests left to composing)."""
    regions: set[str] = set()
    interests: set[str] = set()
    both: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for c in events:
        rs, its = tuple(sorted(c.event.regions or ())), tuple(sorted(c.event.interests or ()))
        if not rs and not its:
            return None
        if rs and its:
            both.add((rs, its))
        else:
            (regions if rs else interests).update(rs or its)
    terms = len(regions) + len(interests) + sum(len(r) + len(i) for r, i in both)
    if terms > MAX_TERMS:
        if interests:
            return None
        regions.update(r for rs, _ in both for r in rs)
        both = set()
    alternatives = [f"region:{r}" for r in sorted(regions)] + [f"interest:{i}" for i in sorted(interests)]
    for rs, its in sorted(both):
        either = " or ".join([f"region:{r}" for r in rs])
        alternatives.append(f"(({either}) and ({' or '.join(f'interest:{i}' for i in its)}))")
    return " or ".join(alternatives)


# ---------------------------------------------------------------------------------------------
# A run


def run_slug(slug: str, due: datetime) -> str:
    """The campaign of the run due at ``due``: ``<digest slug>-<day>``."""
    return f"{slug}-{due:%Y-%m-%d}"


def _waits_for_approval(db: Database, settings: Settings, shape: Shape, loaded: LoadedIssue) -> bool:
    digest = loaded.issue
    if not isinstance(digest, Digest) or digest.approval != "required":
        return False
    with db.session() as session:
        now = resolve(session, settings, shape, loaded.slug)
        return not standing(session, loaded.slug, now.fingerprint).approved


def prepare_run(
    db: Database, settings: Settings, shape: Shape, loaded: LoadedIssue, campaign: str, today: date
) -> Prepared | None:
    """The run of ``loaded`` (a digest) as campaign ``campaign``: the calendar's events from
    ``today`` gathered, the audience narrowed to who sees any, planned and rendered; None when no
    member would get an event."""
    digest = loaded.issue
    assert isinstance(digest, Digest)
    identity = issue_identity(
        shape, settings, digest.network, digest.audience, path=loaded.path, line=network_line(loaded)
    )
    network = identity.network.slug if shape.networks else ""
    with db.session() as session:
        found = calendar_events(session, shape, settings, today, digest.days)
    events = [k for c in found if (not network or c.network == network) and (k := _known(c, shape))]
    if not events:
        return None
    issue = digest.model_copy(
        update={
            "date": today,
            "calendar": [c.event for c in events],
            "calendar_uids": [c.uid for c in events],
        }
    )
    run = LoadedIssue(campaign, loaded.path, issue, [], loaded.lines)
    narrowed = who_sees_any(events)
    audience = f"({digest.audience}) and ({narrowed})" if narrowed else digest.audience
    with db.session() as session:
        the_plan = plan(session, run, shape, audience, network)
    if not the_plan.total:
        return None
    renderer = Renderer(settings, identity)
    rendered = {p.variant.key: renderer.render(p.variant, run) for p in the_plan.variants}
    template_for(settings, campaign, next(iter(rendered.values())), kind="digest", identity=identity)
    return Prepared(run, audience, the_plan, renderer, rendered, network, identity)


def start_digest(
    db: Database, settings: Settings, shape: Shape, slug: str, now: datetime
) -> DigestRun | None:
    """Start the run of digest ``slug`` due at ``now``, if one is and it has not started; what was
    done (None: not due, or its run started already)."""
    loaded = load_campaign(settings.workspace, slug, shape)
    digest = loaded.issue
    if not isinstance(digest, Digest):
        return None
    due = last_run(digest, settings.zone, now)
    if due is None or now - due > LATE:
        return None
    campaign = run_slug(slug, due)
    with db.session() as session:
        if find_campaign(session, campaign) is not None:
            return None
    if _waits_for_approval(db, settings, shape, loaded):
        return DigestRun(slug, campaign, "waiting")
    require_ready(settings, shape)
    prepared = prepare_run(db, settings, shape, loaded, campaign, now.astimezone(settings.zone).date())
    if prepared is None:
        return DigestRun(slug, campaign, "nobody")
    enqueue(db, prepared)
    start_campaign(db, campaign)
    events = len(prepared.loaded.issue.calendar) if isinstance(prepared.loaded.issue, Digest) else 0
    return DigestRun(slug, campaign, "started", prepared.plan.total, events)


def digest_slugs(settings: Settings) -> list[str]:
    """The workspace's digests: its campaigns whose file says ``kind: digest`` (read cheaply)."""
    out = []
    for slug in campaign_slugs(settings.workspace):
        path = settings.workspace / "campaigns" / slug / "issue.yaml"
        try:
            head = path.read_text(encoding="utf-8")[:4096]
        except (OSError, UnicodeDecodeError):
            continue
        if any(line.split("#")[0].strip() == "kind: digest" for line in head.splitlines()):
            out.append(slug)
    return out


def start_due_digests(db: Database, settings: Settings, now: datetime) -> list[DigestRun]:
    """Every digest's run that is due at ``now`` and not started: started (or waiting, or nobody)."""
    shape = load_shape(settings.workspace / "lists")
    done = []
    for slug in digest_slugs(settings):
        run = start_digest(db, settings, shape, slug, now)
        if run is not None:
            done.append(run)
    return done


async def digest_chore(context: ChoreContext) -> str:
    """The ``digests`` chore: start every due run; a line for each (a run waiting for its approver,
    or with nobody to send to, says so on each round until its day is over)."""
    now = events_now(context.settings, context.now)
    runs = await asyncio.to_thread(start_due_digests, context.db, context.settings, now)
    return "; ".join(run.line() for run in runs)


DIGESTS = Chore("digests", timedelta(minutes=1), digest_chore)
"""Looks every minute (one worker at a time) for a digest whose run is due."""
