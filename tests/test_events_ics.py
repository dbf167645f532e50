"""The calendar members add events to, against RFC 5545 (tests/support/ics_check.py): every feed and
every one-event file of a sent issue; a DTEND for every timed event; all-day events TRANSPARENT;
SEQUENCE and LAST-MODIFIED kept per event across edits; a cancelled event leaves the feeds."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
from support.desk import BASE, TestClient
from support.ics_check import check_ics

from mailer import events
from mailer.audience.shape import Shape
from mailer.compose import calendar_entries
from mailer.db import Database
from mailer.issue import load_issue
from mailer.models import Campaign
from mailer.settings import Settings
from mailer.web import create_app

REPO = Path(__file__).resolve().parent.parent
SLUG = "2025-11-kent-network"
NOW = datetime(2025, 11, 17, 9, 0, tzinfo=UTC)
VIGIL = f"{SLUG}-calendar-2"


@pytest.fixture
def issue(workspace: Path) -> Path:
    dest = workspace / "campaigns" / SLUG
    shutil.copytree(REPO / "campaigns" / SLUG, dest)
    return dest / "issue.yaml"


def send(
    db: Database, settings: Settings, shape: Shape, path: Path, now: datetime = NOW
) -> events.SyncResult:
    """The issue as sent (its campaign row, what the feeds read), and its events in step."""
    loaded = load_issue(path, shape)
    with db.session() as s:
        if s.query(Campaign).filter_by(slug=SLUG).one_or_none() is None:
            s.add(
                Campaign(
                    slug=SLUG,
                    kind="newsletter",
                    title=loaded.issue.title,
                    subject=loaded.issue.subject,
                    audience="region:kent",
                    issue_date="2025-11-17",
                    source=path.read_text(encoding="utf-8"),
                    status="sent",
                    started_at=NOW - timedelta(hours=1),
                    finished_at=NOW - timedelta(minutes=30),
                )
            )
            s.flush()
        return events.sync_events(s, loaded.issue, SLUG, now, settings=settings)


@pytest.fixture
def client(settings: Settings, db: Database, shape: Shape) -> Iterator[TestClient]:
    async def no_mail(message: object) -> None:
        raise AssertionError("no mail expected")

    app = create_app(settings, shape=shape, database=db, clock=lambda: NOW, send_mail=no_mail)
    with TestClient(app, base_url=BASE) as c:
        yield c


def ics(client: TestClient, path: str) -> icalendar.Calendar:
    response = client.get(path)
    assert response.status_code == 200, (path, response.text)
    return check_ics(response.content)


def by_uid(cal: icalendar.Calendar) -> dict[str, icalendar.Component]:
    return {str(e["UID"]).split("@")[0]: e for e in cal.walk("VEVENT")}


def test_every_feed_and_every_event_file_passes_the_rfc_5545_check(
    client: TestClient, settings: Settings, db: Database, shape: Shape, issue: Path
) -> None:
    send(db, settings, shape, issue)
    for region in [*shape.regions, "all"]:
        ics(client, f"/calendar/{region}.ics")
    loaded = load_issue(issue, shape)
    timed_without_end = 0
    for entry in calendar_entries(loaded.issue):
        local = f"{SLUG}-{entry.key}"
        (event,) = ics(client, f"/calendar/event/{local}.ics").walk("VEVENT")
        assert int(event["SEQUENCE"]) == 0
        if not entry.event.all_day and entry.event.end is None:
            timed_without_end += 1
            length = event.decoded("DTEND") - event.decoded("DTSTART")
            assert length == timedelta(minutes=settings.event_default_minutes)
    assert timed_without_end == 5  # the seed's timed events with no end: no longer instants


def test_an_edit_raises_sequence_and_a_cancelled_event_leaves_the_feeds(
    client: TestClient, settings: Settings, db: Database, shape: Shape, issue: Path
) -> None:
    send(db, settings, shape, issue)
    vigil = by_uid(ics(client, "/calendar/kent.ics"))[VIGIL]
    assert int(vigil["SEQUENCE"]) == 0

    edited = NOW + timedelta(hours=2)
    text = issue.read_text(encoding="utf-8").replace("start: 2025-12-03 13:00", "start: 2025-12-03 12:00", 1)
    issue.write_text(text, encoding="utf-8")
    send(db, settings, shape, issue, edited)
    vigil = by_uid(ics(client, "/calendar/kent.ics"))[VIGIL]
    assert int(vigil["SEQUENCE"]) == 1 and vigil.decoded("LAST-MODIFIED") == edited
    assert vigil.decoded("DTSTART").hour == 12 and str(vigil["UID"]) == f"{VIGIL}@{settings.list_domain}"
    untouched = by_uid(ics(client, "/calendar/kent.ics"))[f"{SLUG}-speaker-meeting-1"]
    assert int(untouched["SEQUENCE"]) == 0

    issue.write_text(
        text.replace("Monthly Guantanamo vigil\n", "Monthly Guantanamo vigil\n    cancelled: true\n")
    )
    send(db, settings, shape, issue, edited + timedelta(hours=1))
    assert VIGIL not in by_uid(ics(client, "/calendar/kent.ics"))
    assert VIGIL not in by_uid(ics(client, "/calendar/all.ics"))
    (gone,) = ics(client, f"/calendar/event/{VIGIL}.ics").walk("VEVENT")
    assert str(gone["STATUS"]) == "CANCELLED" and int(gone["SEQUENCE"]) == 2


def test_all_day_events_are_transparent_and_timed_ones_opaque(
    client: TestClient, settings: Settings, db: Database, shape: Shape, issue: Path
) -> None:
    text = issue.read_text(encoding="utf-8")
    text = text.replace(
        "calendar:   # dated entries with no section of their own\n",
        "calendar:\n  - title: Peace Week\n    start: 2025-12-08\n    end: 2025-12-14\n",
        1,
    )
    issue.write_text(text, encoding="utf-8")
    send(db, settings, shape, issue)
    found = by_uid(ics(client, "/calendar/all.ics"))
    week = found[f"{SLUG}-calendar-1"]
    assert (
        str(week["TRANSP"]) == "TRANSPARENT" and (week.decoded("DTEND") - week.decoded("DTSTART")).days == 7
    )
    for e in found.values():
        timed = isinstance(e.decoded("DTSTART"), datetime)
        assert str(e["TRANSP"]) == ("OPAQUE" if timed else "TRANSPARENT")
