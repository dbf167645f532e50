"""The events table kept in step with the issues (docs/events.md, Sequence rules).

``sync_events`` is called when an issue is sent (``mailer.sending.snapshot.enqueue``) and when a sent
issue's file is edited (the desk, ``mailer campaigns events``, and the workers' ``events-sync``
chore, which catches edits made by hand). Each calendar entry of the issue is one row, keyed by its
UID (``{slug}-{entry key}``). When what members plan by changes (time, place or title), or the entry
is cancelled (``cancelled: true``, or removed from the file), its ``sequence`` is raised and
``last_modified`` set, so that calendar clients take the new version (RFC 5545 3.8.7.4, 3.8.7.3);
the result says what changed, so that attendees can be told.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.compose import CalendarEntry, calendar_entries
from mailer.errors import MailerError
from mailer.events.rsvps import promote_waiting
from mailer.events.views import EventInfo, info
from mailer.issue.calendar_text import event_uid, place_text
from mailer.issue.load import load_campaign
from mailer.issue.schema import Event, Issue, Newsletter
from mailer.models import Campaign, EventRow
from mailer.settings import Settings

#: What members plan by: a change to any of these raises the event's SEQUENCE.
PLANNED = ("time", "place", "title")


@dataclass(frozen=True)
class EventChange:
    """An event whose time, place or title changed: ``what`` names which (of ``PLANNED``)."""

    before: EventInfo
    after: EventInfo
    what: tuple[str, ...]


@dataclass
class SyncResult:
    """What ``sync_events`` did: events new to the table, changed (time, place, title), cancelled,
    restored (cancelled before, in the issue again), and the waitlisted people a raised capacity
    moved up (rsvp ids)."""

    added: list[EventInfo] = field(default_factory=list)
    changed: list[EventChange] = field(default_factory=list)
    cancelled: list[EventInfo] = field(default_factory=list)
    restored: list[EventInfo] = field(default_factory=list)
    promoted: list[int] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not (self.added or self.changed or self.cancelled or self.restored)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": [e.uid for e in self.added],
            "changed": [{"uid": c.after.uid, "what": list(c.what)} for c in self.changed],
            "cancelled": [e.uid for e in self.cancelled],
            "restored": [e.uid for e in self.restored],
            "promoted": len(self.promoted),
        }


def local_uid(slug: str, entry_key: str) -> str:
    """The UID of an entry without the domain (``event_uid``'s part before the ``@``)."""
    return event_uid(slug, entry_key, "x").rsplit("@", 1)[0]


def entry_regions(issue: Newsletter, entry: CalendarEntry) -> tuple[str, ...]:
    """The regions an entry is for: its own, else its item's; () is the issue's whole audience."""
    if entry.event.regions is not None:
        return tuple(entry.event.regions)
    item = next((i for i in issue.items if i.id == entry.item_id), None)
    return tuple(item.regions) if item is not None else ()


def event_times(event: Event, settings: Settings) -> tuple[datetime, datetime]:
    """(start, end) of an event as aware instants: a timed event without an end lasts the
    ``event_default_minutes`` setting; an all-day one runs from midnight of its first day to
    midnight after its last (in the ``timezone`` setting's zone)."""
    zone = settings.zone
    if event.all_day:
        start = datetime.combine(event.day, time(), zone)
        return start, datetime.combine(event.last_day + timedelta(days=1), time(), zone)
    start = event.start_at(zone)
    end = event.end_at(zone)
    return start, end if end is not None else start + timedelta(minutes=settings.event_default_minutes)


def content_hash(event: Event, settings: Settings) -> str:
    """A hash of what members plan by: the times, the place (and online link), the title."""
    return ";".join(_parts(event, settings).values())


def _parts(event: Event, settings: Settings) -> dict[str, str]:
    start, end = event_times(event, settings)

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    return {
        "time": digest(f"{start.isoformat()}|{end.isoformat()}|{event.all_day}"),
        "place": digest(f"{place_text(event)}|{event.online_url}"),
        "title": digest(event.title),
    }


def _what_changed(old_hash: str, new_hash: str) -> tuple[str, ...]:
    old, new = old_hash.split(";"), new_hash.split(";")
    if len(old) != len(PLANNED):
        return PLANNED
    return tuple(name for name, a, b in zip(PLANNED, old, new, strict=True) if a != b)


def _network_of(session: Session, slug: str) -> str:
    return session.scalars(select(Campaign.network).where(Campaign.slug == slug)).first() or ""


def sync_events(
    session: Session,
    issue: Issue,
    slug: str,
    now: datetime,
    *,
    settings: Settings,
    network: str | None = None,
) -> SyncResult:
    """Bring the ``events`` rows of campaign ``slug`` in step with ``issue`` (see the module's
    docstring); ``network`` defaults to the campaign's. Returns what changed."""
    result = SyncResult()
    rows = {r.uid: r for r in session.scalars(select(EventRow).where(EventRow.campaign_slug == slug))}
    network = _network_of(session, slug) if network is None else network
    seen: set[str] = set()
    entries = calendar_entries(issue) if isinstance(issue, Newsletter) else []
    for entry in entries:
        assert isinstance(issue, Newsletter)
        uid = local_uid(slug, entry.key)
        seen.add(uid)
        ev = entry.event
        start, end = event_times(ev, settings)
        digest = content_hash(ev, settings)
        values = {
            "network": network,
            "entry_key": entry.key,
            "regions": ",".join(entry_regions(issue, entry)),
            "title": ev.title[:500],
            "starts_at": start,
            "ends_at": end,
            "all_day": ev.all_day,
            "place": place_text(ev),
            "online_url": ev.online_url,
            "capacity": ev.capacity,
            "remind_hours": ev.remind_hours,
        }
        row = rows.get(uid)
        if row is None:
            row = EventRow(
                uid=uid,
                campaign_slug=slug,
                sequence=0,
                announced_sequence=0,
                last_modified=now,
                content_hash=digest,
                cancelled_at=now if ev.cancelled else None,
                created_at=now,
                **values,
            )
            session.add(row)
            session.flush()
            result.added.append(info(row))
            continue
        before = info(row)
        raised_capacity = row.capacity is not None and (ev.capacity is None or ev.capacity > row.capacity)
        for name, value in values.items():
            setattr(row, name, value)
        what = _what_changed(row.content_hash, digest) if row.content_hash != digest else ()
        if ev.cancelled and row.cancelled_at is None:
            row.cancelled_at = now
            _bump(row, now, digest)
            result.cancelled.append(info(row))
        elif not ev.cancelled and row.cancelled_at is not None:
            row.cancelled_at = None
            _bump(row, now, digest)
            result.restored.append(info(row))
        elif what:
            _bump(row, now, digest)
            result.changed.append(EventChange(before, info(row), what))
        if raised_capacity and row.cancelled_at is None:
            session.flush()
            result.promoted += promote_waiting(session, row.id, now)
    for uid, row in rows.items():
        if uid not in seen and row.cancelled_at is None:
            row.cancelled_at = now
            _bump(row, now, row.content_hash)
            result.cancelled.append(info(row))
    session.flush()
    return result


#: The campaigns whose events follow their issue files: sent, or on their way.
SENT_STATES = ("queued", "scheduled", "sending", "paused", "sent")


def sync_from_file(
    session: Session, settings: Settings, shape: Shape | None, slug: str, now: datetime
) -> SyncResult | None:
    """``sync_events`` from campaign ``slug``'s issue file as it is now, if the campaign was sent (or
    is being sent); None if it was not, or the file cannot be read (``ContentError``: a broken edit
    changes no event; the editor sees the problems where they edit)."""
    campaign = session.scalars(select(Campaign).where(Campaign.slug == slug)).one_or_none()
    if campaign is None or campaign.status not in SENT_STATES:
        return None
    try:
        loaded = load_campaign(settings.workspace, slug, shape)
    except MailerError:
        return None
    return sync_events(session, loaded.issue, slug, now, settings=settings, network=campaign.network)


def synced_slugs(session: Session) -> list[str]:
    """The campaigns that have events in the table (those the events-sync chore keeps in step)."""
    return sorted(set(session.scalars(select(EventRow.campaign_slug).distinct())))


def _bump(row: EventRow, now: datetime, digest: str) -> None:
    row.sequence += 1
    row.last_modified = now
    row.content_hash = digest
