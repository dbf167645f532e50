"""Calendar feeds: RFC 5545 via icalendar, the seed issue's events at the right London times, stable
UIDs (the email's), a region's events and its ancestors', and each event's own .ics download."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from starlette.applications import Starlette
from support.ics_check import check_ics

from mailer.audience.shape import Shape
from mailer.compose import calendar_entries, compose
from mailer.db import Database
from mailer.issue import load_issue
from mailer.issue.calendar_text import event_uid
from mailer.models import Campaign
from mailer.render import Renderer
from mailer.settings import Settings
from mailer.web import create_app

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "campaigns" / "2025-11-kent-network" / "issue.yaml"
SLUG = "2025-11-kent-network"
LONDON = ZoneInfo("Europe/London")
ISSUE_DAY = datetime(2025, 11, 17, 9, 0, tzinfo=UTC)


def add_sent(
    db: Database, slug: str = SLUG, source: str | None = None, audience: str = "region:kent"
) -> None:
    with db.session() as s:
        s.add(
            Campaign(
                slug=slug,
                kind="newsletter",
                title="Kent Network Newsletter",
                subject="Kent Network newsletter",
                audience=audience,
                issue_date="2025-11-17",
                source=SEED.read_text(encoding="utf-8") if source is None else source,
                status="sent",
                started_at=datetime(2025, 11, 17, 8, 0, tzinfo=UTC),
                finished_at=datetime(2025, 11, 17, 8, 30, tzinfo=UTC),
            )
        )


def make_app(settings: Settings, db: Database, shape: Shape, now: datetime = ISSUE_DAY) -> Starlette:
    async def no_mail(message: object) -> None:  # the calendar never mails
        raise AssertionError("no mail expected")

    return create_app(settings, shape=shape, database=db, clock=lambda: now, send_mail=no_mail)


@pytest.fixture
def client(settings: Settings, db: Database, shape: Shape) -> Iterator[TestClient]:
    add_sent(db)
    with TestClient(make_app(settings, db, shape), base_url="http://127.0.0.1:8000") as c:
        yield c


def feed(client: TestClient, path: str) -> icalendar.Calendar:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    return check_ics(response.content)


def events(cal: icalendar.Calendar) -> dict[str, icalendar.Component]:
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def uid(key: str, settings: Settings) -> str:
    return event_uid(SLUG, key, settings.list_domain)


def test_kent_feed_carries_the_seed_events_at_london_times(client: TestClient, settings: Settings) -> None:
    cal = feed(client, "/calendar/kent.ics")
    assert str(cal["VERSION"]) == "2.0" and str(cal["METHOD"]) == "PUBLISH"
    zones = cal.walk("VTIMEZONE")
    assert [str(z["TZID"]) for z in zones] == ["Europe/London"]
    found = events(cal)
    speaker = found[uid("speaker-meeting-1", settings)]
    start = speaker.decoded("DTSTART")
    assert start == datetime(2025, 11, 18, 19, 30, tzinfo=LONDON)
    assert start.utcoffset() == timedelta(0)  # GMT in November
    assert speaker["DTSTART"].params["TZID"] == "Europe/London"
    assert "TZID=Europe/London:20251118T193000" in speaker.to_ical().decode()
    training = found[uid("direct-action-training-1", settings)]
    assert training.decoded("DTSTART") == datetime(2025, 11, 25, 18, 0, tzinfo=LONDON)
    assert training.decoded("DTEND") == datetime(2025, 11, 25, 19, 30, tzinfo=LONDON)
    noon = found[uid("stand-up-trafalgar-square-1", settings)]
    assert noon.decoded("DTSTART") == datetime(2025, 11, 22, 12, 0, tzinfo=LONDON)
    for event in found.values():
        stamp = event.decoded("DTSTAMP")
        assert stamp == datetime(2025, 11, 17, 8, 30, tzinfo=UTC)
        assert re.search(r"^DTSTAMP:\d{8}T\d{6}Z\r?$", event.to_ical().decode(), re.M)
        assert str(event["SUMMARY"])
    # Kent's own and the whole audience's events; not those of Maidstone or Canterbury only.
    assert set(found) == {
        uid(k, settings)
        for k in (
            "speaker-meeting-1",
            "defend-dissent-1",
            "defend-dissent-2",
            "direct-action-training-1",
            "stand-up-trafalgar-square-1",
            "calendar-2",
        )
    }


def test_a_region_gets_its_ancestors_events_and_its_own(client: TestClient, settings: Settings) -> None:
    maidstone = events(feed(client, "/calendar/maidstone-medway-swale.ics"))
    assert uid("write-for-rights-1", settings) in maidstone  # Maidstone's own (all day)
    assert uid("calendar-1", settings) in maidstone
    assert uid("speaker-meeting-1", settings) in maidstone  # the whole audience's (Kent)
    assert uid("soroptimist-march-1", settings) not in maidstone  # Canterbury's
    stall = maidstone[uid("write-for-rights-1", settings)]
    assert stall.decoded("DTSTART") == date(2025, 11, 29)
    assert stall.decoded("DTEND") == date(2025, 11, 30)
    canterbury = events(feed(client, "/calendar/canterbury.ics"))
    march = canterbury[uid("soroptimist-march-1", settings)]
    assert march.decoded("DTSTART") == datetime(2025, 11, 29, 10, 45, tzinfo=LONDON)
    assert uid("write-for-rights-1", settings) not in canterbury
    # Sussex is not in the issue's audience (region:kent), nor is the South East as a whole.
    assert events(feed(client, "/calendar/sussex.ics")) == {}
    assert events(feed(client, "/calendar/south-east.ics")) == {}
    everything = events(feed(client, "/calendar/all.ics"))
    assert len(everything) == 9


def test_uids_are_the_emails_and_stable_across_rebuilds(
    client: TestClient, settings: Settings, db: Database, shape: Shape
) -> None:
    first = client.get("/calendar/all.ics").content
    with TestClient(make_app(settings, db, shape), base_url="http://127.0.0.1:8000") as again:
        second = again.get("/calendar/all.ics").content
    assert first == second
    loaded = load_issue(SEED, shape)
    expected = {uid(entry.key, settings) for entry in calendar_entries(loaded.issue)}
    assert set(events(check_ics(first))) == expected


def test_only_upcoming_events_are_in_feeds(settings: Settings, db: Database, shape: Shape) -> None:
    add_sent(db)
    later = datetime(2025, 11, 26, 12, 0, tzinfo=UTC)
    with TestClient(make_app(settings, db, shape, later), base_url="http://127.0.0.1:8000") as client:
        found = events(feed(client, "/calendar/all.ics"))
    assert uid("speaker-meeting-1", settings) not in found  # 18 November: past
    assert uid("defend-dissent-2", settings) in found  # 27 November
    assert uid("calendar-2", settings) in found


def test_add_to_calendar_links_in_the_email_download_their_event(
    client: TestClient, settings: Settings, shape: Shape
) -> None:
    loaded = load_issue(SEED, shape)
    variant = compose(loaded.issue, shape, "canterbury", frozenset({"students"}))
    html = Renderer(settings).render(variant, loaded).html
    links = sorted(set(re.findall(re.escape(settings.base_url) + r"(/calendar/event/[^\"<\s]+\.ics)", html)))
    assert links, "the email has add-to-calendar links"
    for path in links:
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-disposition"].startswith("attachment;")
        cal = check_ics(response.content)
        (event,) = cal.walk("VEVENT")
        assert str(event["UID"]).split("@")[0] == path.removeprefix("/calendar/event/").removesuffix(".ics")
    # Past events download too (the link in an old email keeps working).
    response = client.get(f"/calendar/event/{SLUG}-speaker-meeting-1.ics")
    assert response.status_code == 200


def test_summer_times_are_bst(settings: Settings, db: Database, shape: Shape) -> None:
    source = """
kind: newsletter
title: Summer
subject: Summer
date: 2026-06-01
audience: region:kent
items:
  - id: picnic
    title: Picnic
    highlight: come to the picnic
    events:
      - title: Summer picnic
        start: 2026-06-10 19:00
        end: 2026-06-10 21:30
        location: Mote Park, Maidstone
"""
    add_sent(db, "2026-06-summer", source=source)
    with TestClient(
        make_app(settings, db, shape, datetime(2026, 6, 1, tzinfo=UTC)), base_url="http://127.0.0.1:8000"
    ) as client:
        cal = feed(client, "/calendar/kent.ics")
    (event,) = cal.walk("VEVENT")
    start = event.decoded("DTSTART")
    assert start == datetime(2026, 6, 10, 19, 0, tzinfo=LONDON)
    assert start.astimezone(UTC) == datetime(2026, 6, 10, 18, 0, tzinfo=UTC)
    assert event.decoded("DTEND").astimezone(UTC) == datetime(2026, 6, 10, 20, 30, tzinfo=UTC)
    (zone,) = cal.walk("VTIMEZONE")
    assert [str(c["TZNAME"]) for c in zone.walk("DAYLIGHT")] == ["BST"]


PEACE_WEEK = """
kind: newsletter
title: Peace
subject: Peace
date: 2025-11-17
audience: region:kent
items:
  - id: peace-week
    title: Peace Week
    highlight: join Peace Week
    events:
      - title: Peace Week
        start: 2025-12-08
        end: 2025-12-14
        location: Canterbury
calendar:
  - {title: New Year peace walk, start: 2025-12-31, end: 2026-01-02}
"""


def test_an_event_over_several_days_is_a_seven_day_all_day_event(
    settings: Settings, db: Database, shape: Shape, tmp_path: Path
) -> None:
    """Peace Week, 8 to 14 December: DTSTART;VALUE=DATE 20251208 and an exclusive DTEND 20251215, in
    the feeds, in the event's own download, and behind the email's "Add to calendar" link."""
    add_sent(db, "2025-12-peace", source=PEACE_WEEK)
    key = event_uid("2025-12-peace", "peace-week-1", settings.list_domain)

    def check(event: icalendar.Component) -> None:
        assert event.decoded("DTSTART") == date(2025, 12, 8) and event.decoded("DTEND") == date(2025, 12, 15)
        assert not isinstance(event.decoded("DTSTART"), datetime)
        assert (event.decoded("DTEND") - event.decoded("DTSTART")).days == 7
        raw = event.to_ical().decode()
        assert "DTSTART;VALUE=DATE:20251208\r\n" in raw and "DTEND;VALUE=DATE:20251215\r\n" in raw

    day = datetime(2025, 12, 10, 12, 0, tzinfo=UTC)  # in the middle of the week: still listed
    with TestClient(make_app(settings, db, shape, day), base_url="http://127.0.0.1:8000") as client:
        found = events(feed(client, "/calendar/kent.ics"))
        check(found[key])
        walk = found[event_uid("2025-12-peace", "calendar-1", settings.list_domain)]
        assert (walk.decoded("DTSTART"), walk.decoded("DTEND")) == (date(2025, 12, 31), date(2026, 1, 3))
        # The link in the email (calendar_text.calendar_url) downloads the same event.
        path = tmp_path / "2025-12-peace" / "issue.yaml"
        path.parent.mkdir()
        path.write_text(PEACE_WEEK, encoding="utf-8")
        loaded = load_issue(path, shape)
        html = Renderer(settings).render(compose(loaded.issue, shape, "kent", frozenset()), loaded).html
        link = f"{settings.base_url}/calendar/event/2025-12-peace-peace-week-1.ics"
        assert f'href="{link}"' in html and "Monday 8 – Sunday 14 December" in html
        response = client.get(link.removeprefix(settings.base_url))
        assert response.status_code == 200, response.text
        (one,) = check_ics(response.content).walk("VEVENT")
        check(one)
        assert str(one["UID"]) == key
    last_day = datetime(2025, 12, 14, 23, 0, tzinfo=UTC)
    after = datetime(2025, 12, 15, 9, 0, tzinfo=UTC)
    with TestClient(make_app(settings, db, shape, last_day), base_url="http://127.0.0.1:8000") as client:
        assert key in events(feed(client, "/calendar/kent.ics"))
    with TestClient(make_app(settings, db, shape, after), base_url="http://127.0.0.1:8000") as client:
        assert key not in events(feed(client, "/calendar/kent.ics"))


def test_unknown_region_or_event_is_a_404_page(client: TestClient) -> None:
    for path in ("/calendar/atlantis.ics", f"/calendar/event/{SLUG}-nothing-9.ics", "/calendar/event/x.ics"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "Page not found" in response.text


def test_calendar_page_lists_the_feeds(client: TestClient, settings: Settings) -> None:
    page = client.get("/calendar/")
    assert page.status_code == 200
    assert f"{settings.base_url}/calendar/all.ics" in page.text
    assert f"{settings.base_url}/calendar/canterbury.ics" in page.text


def test_drafts_have_no_events(settings: Settings, db: Database, shape: Shape) -> None:
    with db.session() as s:
        s.add(
            Campaign(
                slug="draft",
                kind="newsletter",
                title="Draft",
                subject="Draft",
                audience="region:kent",
                issue_date="2025-11-17",
                source=SEED.read_text(encoding="utf-8"),
                status="draft",
            )
        )
    with TestClient(make_app(settings, db, shape), base_url="http://127.0.0.1:8000") as client:
        assert events(feed(client, "/calendar/all.ics")) == {}


def test_a_multi_line_event_title_downloads_as_one_line(
    settings: Settings, db: Database, shape: Shape
) -> None:
    """A YAML block made the title several lines long; the calendar's name (X-WR-CALNAME) then held a
    line break and the "Add to calendar" link of every mail answered 500. Titles, places and
    contacts are folded to one line when the issue is read."""
    source = """
kind: newsletter
title: Multi
subject: Multi
date: 2026-06-01
audience: region:kent
items:
  - id: picnic
    title: Picnic
    highlight: come to the picnic
    events:
      - title: |
          Summer
          picnic
        start: 2026-06-10 19:00
        location: "Mote Park,\\r\\nMaidstone"
"""
    add_sent(db, "2026-06-multi", source=source)
    with TestClient(
        make_app(settings, db, shape, datetime(2026, 6, 1, tzinfo=UTC)), base_url="http://127.0.0.1:8000"
    ) as client:
        response = client.get("/calendar/event/2026-06-multi-picnic-1.ics")
        assert response.status_code == 200, response.text
        (event,) = check_ics(response.content).walk("VEVENT")
        assert str(event["SUMMARY"]) == "Summer picnic"
        assert str(event["LOCATION"]) == "Mote Park, Maidstone"
        assert b"X-WR-CALNAME:Summer picnic\r\n" in response.content
        assert client.get("/calendar/kent.ics").status_code == 200


def test_calendar_links_are_one_line_whatever_the_parts() -> None:
    from mailer.issue.calendar_text import calendar_url

    uid = event_uid("2026-06-multi", "picnic-1", "lists.example.org")
    assert uid == "2026-06-multi-picnic-1@lists.example.org"
    assert calendar_url("https://news.example.org/", uid) == (
        "https://news.example.org/calendar/event/2026-06-multi-picnic-1.ics"
    )
    odd = calendar_url("https://news.example.org", "a b\r\n/c@x")
    assert "\n" not in odd and " " not in odd and odd.endswith("/calendar/event/a%20b%0D%0A%2Fc.ics")
