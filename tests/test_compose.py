"""Composing variants: the visibility rule, British calendar wording, and planning a send in SQL.

The planning tests run on SQLite and PostgreSQL (the ``db`` fixture) over members inserted here, and
count the renderer's calls: once per variant, never per member.
"""

from __future__ import annotations

import json
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest
from support.cli_runner import MailerCli
from support.members import MEMBERS, add_members

from mailer.audience.shape import Shape
from mailer.compose import (
    calendar_entries,
    compose,
    compose_all,
    plan,
    relevant_interests,
)
from mailer.db import Database
from mailer.issue import Event, LoadedIssue, Newsletter, load_issue
from mailer.issue.calendar_text import (
    calendar_line,
    calendar_url,
    day_text,
    days_text,
    event_uid,
    time_text,
    when_text,
)
from mailer.render import Renderer
from mailer.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SEED_SLUG = "2025-11-kent-network"
SEED_PATH = REPO / "campaigns" / SEED_SLUG / "issue.yaml"


def event(**kw: Any) -> Event:
    kw.setdefault("title", "A meeting")
    return Event.model_validate(kw)


# ---------------------------------------------------------------------------------------------
# British wording


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (time(19, 30), "7:30pm"),
        (time(18, 0), "6:00pm"),
        (time(10, 45), "10:45am"),
        (time(13, 0), "1:00pm"),
        (time(12, 0), "noon"),
        (time(0, 0), "midnight"),
        (time(12, 30), "12:30pm"),
        (time(0, 15), "12:15am"),
        (time(9, 5), "9:05am"),
    ],
)
def test_time_text(at: time, expected: str) -> None:
    assert time_text(at) == expected


def test_when_text_cases_of_the_seed() -> None:
    assert when_text(event(start="2025-11-18 19:30")) == "Tuesday 18 November at 7:30pm"
    assert (
        when_text(event(start="2025-11-25 18:00", end="2025-11-25 19:30"))
        == "Tuesday 25 November from 6:00pm to 7:30pm"
    )
    assert when_text(event(start="2025-11-22 12:00")) == "Saturday 22 November at noon"
    assert when_text(event(start="2025-11-29")) == "Saturday 29 November"
    assert when_text(event(start="2025-11-29 10:45")) == "Saturday 29 November at 10:45am"
    assert (
        when_text(event(start="2025-12-03 13:00", end="2025-12-03 15:00"))
        == "Wednesday 3 December from 1:00pm to 3:00pm"
    )
    assert (
        when_text(event(start="2025-12-31 20:00", end="2026-01-01 00:00"))
        == "Wednesday 31 December from 8:00pm to midnight"
    )


def test_when_text_across_days_and_years() -> None:
    overnight = event(start="2025-12-31 22:00", end="2026-01-01 01:00")
    assert when_text(overnight) == "Wednesday 31 December from 10:00pm to Thursday 1 January at 1:00am"
    assert when_text(overnight, date(2025, 11, 17)) == (
        "Wednesday 31 December from 10:00pm to Thursday 1 January 2026 at 1:00am"
    )
    assert day_text(date(2026, 1, 6), date(2025, 11, 17)) == "Tuesday 6 January 2026"
    assert day_text(date(2025, 1, 6), date(2025, 11, 17)) == "Monday 6 January"


def test_when_text_of_an_event_over_several_days() -> None:
    week = event(start="2025-12-08", end="2025-12-14")
    assert when_text(week) == when_text(week, date(2025, 11, 17)) == "Monday 8 – Sunday 14 December"
    assert when_text(event(start="2025-11-30", end="2025-12-02")) == "Sunday 30 November – Tuesday 2 December"
    assert when_text(event(start="2025-12-31", end="2026-01-02"), date(2025, 11, 17)) == (
        "Wednesday 31 December 2025 – Friday 2 January 2026"
    )
    assert when_text(event(start="2025-12-31", end="2026-01-02")) == (
        "Wednesday 31 December 2025 – Friday 2 January 2026"  # both years, whatever today is
    )
    assert when_text(event(start="2026-12-07", end="2026-12-13"), date(2025, 11, 17)) == (
        "Monday 7 – Sunday 13 December 2026"
    )
    assert when_text(event(start="2025-11-29", end="2025-11-29")) == "Saturday 29 November"  # one day
    assert days_text(date(2025, 11, 29), date(2025, 11, 29)) == "Saturday 29 November"
    assert calendar_line(
        event(title="Peace Week", start="2025-12-08", end="2025-12-14", location="Canterbury")
    ) == ("Monday 8 – Sunday 14 December: Peace Week. Canterbury.")
    # Timed events keep today's wording.
    assert (
        when_text(event(start="2025-12-08 19:00", end="21:00")) == "Monday 8 December from 7:00pm to 9:00pm"
    )


def test_an_event_over_several_days_sorts_by_its_first_day_and_is_past_after_its_last(shape: Shape) -> None:
    def issue(on: str) -> Newsletter:
        return Newsletter.model_validate(
            {
                "kind": "newsletter",
                "title": "T",
                "subject": "S",
                "date": on,
                "calendar": [
                    {"title": "Vigil", "start": "2025-12-09 18:00"},
                    {"title": "Peace Week", "start": "2025-12-08", "end": "2025-12-14"},
                    {"title": "Stall", "start": "2025-12-08 10:00"},
                ],
            }
        )

    titles = [e.event.title for e in compose_all(issue("2025-11-17")).calendar]
    assert titles == ["Peace Week", "Stall", "Vigil"]  # all day on the 8th first, then by time
    assert [e.event.title for e in compose(issue("2025-12-14"), shape, "kent", frozenset()).calendar] == [
        "Peace Week"  # its last day: still on
    ]
    assert compose(issue("2025-12-15"), shape, "kent", frozenset()).calendar == ()


def test_calendar_line_has_when_what_where_and_contact() -> None:
    online = event(
        title="Kent Network speaker meeting",
        start="2025-11-18 19:30",
        online=True,
        contact="Email speakers@example.org for a link",
    )
    assert calendar_line(online) == (
        "Tuesday 18 November at 7:30pm: Kent Network speaker meeting. Online. "
        "Email speakers@example.org for a link."
    )
    placed = event(title="Stall", start="2025-11-29", location="Faversham market")
    assert calendar_line(placed) == "Saturday 29 November: Stall. Faversham market."


def test_uid_and_add_to_calendar_url() -> None:
    uid = event_uid(SEED_SLUG, "speaker-meeting-1", "lists.example.org")
    assert uid == "2025-11-kent-network-speaker-meeting-1@lists.example.org"
    assert calendar_url("https://kent.example.org/", uid) == (
        "https://kent.example.org/calendar/event/2025-11-kent-network-speaker-meeting-1.ics"
    )


# ---------------------------------------------------------------------------------------------
# The visibility rule, on a small issue of our own


def small_issue() -> Newsletter:
    return Newsletter.model_validate(
        {
            "kind": "newsletter",
            "title": "Test",
            "subject": "Test",
            "date": "2025-11-17",
            "audience": "all",
            "items": [
                {"id": "everyone", "title": "For all", "highlight": "read this"},
                {
                    "id": "kent-only",
                    "title": "Kent",
                    "highlight": "Kent thing",
                    "regions": ["kent"],
                    "events": [
                        {"title": "Kent meeting", "start": "2025-11-20 19:00"},
                        {"title": "Past meeting", "start": "2025-11-01 19:00"},
                        {
                            "title": "Medway stall",
                            "start": "2025-11-29",
                            "regions": ["maidstone-medway-swale"],
                        },
                    ],
                },
                {
                    "id": "refugees",
                    "title": "Refugees",
                    "highlight": "refugee thing",
                    "interests": ["refugees", "womens-rights"],
                    "events": [{"title": "Refugee talk", "start": "2025-11-19 18:00", "interests": []}],
                },
                {"id": "report", "title": "A report", "highlight": False},
            ],
            "calendar": [
                {"title": "Late vigil", "start": "2025-12-03 13:00"},
                {"title": "Sussex meeting", "start": "2025-11-18 19:00", "regions": ["sussex"]},
                {"title": "Schools day", "start": "2025-11-18", "interests": ["schools"]},
            ],
        }
    )


def test_region_rule_uses_ancestors(shape: Shape) -> None:
    issue = small_issue()
    medway = compose(issue, shape, "maidstone-medway-swale", frozenset())
    assert medway.item_ids == ("everyone", "kent-only", "report")
    sussex = compose(issue, shape, "brighton-hove", frozenset())
    assert sussex.item_ids == ("everyone", "report")
    nowhere = compose(issue, shape, None, frozenset())
    assert nowhere.item_ids == ("everyone", "report")
    # A region above the item's region does not see it: targeting Kent is not targeting the South East.
    assert compose(issue, shape, "south-east", frozenset()).item_ids == ("everyone", "report")


def test_interest_rule_needs_one_shared_interest(shape: Shape) -> None:
    issue = small_issue()
    assert "refugees" in compose(issue, shape, "kent", frozenset({"womens-rights"})).item_ids
    assert "refugees" not in compose(issue, shape, "kent", frozenset({"schools"})).item_ids
    assert relevant_interests(issue) == {"refugees", "womens-rights", "schools"}


def test_events_inherit_follow_their_item_and_skip_the_past(shape: Shape) -> None:
    issue = small_issue()
    medway = compose(issue, shape, "maidstone-medway-swale", frozenset({"schools"}))
    assert [e.event.title for e in medway.calendar] == [
        "Schools day",  # all day, before the timed entries of 18 November
        "Kent meeting",
        "Medway stall",
        "Late vigil",
    ]
    canterbury = compose(issue, shape, "canterbury", frozenset({"refugees"}))
    # The event's own interests ([] = everyone) apply only once its item shows.
    assert [e.event.title for e in canterbury.calendar] == ["Refugee talk", "Kent meeting", "Late vigil"]
    sussex = compose(issue, shape, "brighton-hove", frozenset())
    assert [e.event.title for e in sussex.calendar] == ["Sussex meeting", "Late vigil"]
    full = compose_all(issue)
    assert "Past meeting" not in [e.event.title for e in full.calendar]
    assert len(full.calendar) == 6


def test_highlights_follow_items_and_skip_reports(shape: Shape) -> None:
    variant = compose(small_issue(), shape, "kent", frozenset({"refugees"}))
    assert [h.item_id for h in variant.highlights] == ["everyone", "kent-only", "refugees"]
    assert "report" in variant.item_ids


def test_same_items_share_one_key(shape: Shape) -> None:
    issue = small_issue()
    # Canterbury and Thanet see exactly the same: one variant.
    a = compose(issue, shape, "canterbury", frozenset())
    b = compose(issue, shape, "thanet", frozenset({"fundraising"}))
    assert a.key == b.key
    assert a.label == "Canterbury · no interests"
    # Medway sees the stall too: another variant.
    assert compose(issue, shape, "maidstone-medway-swale", frozenset()).key != a.key
    # Keys are stable from run to run (a hash, not an id()).
    assert compose(issue, shape, "canterbury", frozenset()).key == a.key


def test_entry_keys_name_items_and_calendar(shape: Shape) -> None:
    issue = small_issue()
    keys = [e.key for e in compose_all(issue).calendar]
    assert set(keys) == {"kent-only-1", "kent-only-3", "refugees-1", "calendar-1", "calendar-2", "calendar-3"}
    found = next((e for e in calendar_entries(issue) if e.key == "kent-only-3"), None)
    assert found is not None and found.event.title == "Medway stall"


# ---------------------------------------------------------------------------------------------
# The seed issue


@pytest.fixture
def seed(shape: Shape) -> LoadedIssue:
    return load_issue(SEED_PATH, shape)


def test_seed_variants_of_three_members(seed: LoadedIssue, shape: Shape) -> None:
    issue = seed.issue
    kent = compose(issue, shape, "kent", frozenset())
    medway = compose(issue, shape, "maidstone-medway-swale", frozenset({"refugees"}))
    schools = compose(issue, shape, "canterbury", frozenset({"schools"}))
    assert "refugees" not in kent.item_ids and "working-with-schools" not in kent.item_ids
    assert {"refugees", "refugee-family-reunion"} <= set(medway.item_ids)
    assert "working-with-schools" not in medway.item_ids
    assert {"working-with-schools", "soroptimist-march"} <= set(schools.item_ids)
    assert "soroptimist-march" not in medway.item_ids
    medway_dates = [e.key for e in medway.calendar]
    assert "write-for-rights-1" in medway_dates and "calendar-1" in medway_dates  # stall, group meeting
    assert "write-for-rights-1" not in [e.key for e in schools.calendar]
    assert len({kent.key, medway.key, schools.key}) == 3
    full = compose_all(issue)
    assert len(full.items) == len(issue.items) and len(full.highlights) == 18 and len(full.calendar) == 9


# ---------------------------------------------------------------------------------------------
# Planning over a real database


def test_plan_groups_members_into_variants(
    db: Database, seed: LoadedIssue, shape: Shape, tmp_path: Path
) -> None:
    ids = add_members(db, MEMBERS)
    with db.session() as session:
        variant_plan = plan(session, seed, shape)
        assert variant_plan.audience == "region:kent"
        assert variant_plan.total == 8  # not Sussex, not the suppressed member
        counts = {p.variant.label: p.members for p in variant_plan.variants}
        assert counts == {
            "Kent · no interests": 3,  # kent1, kent2 and Thanet share a variant
            "Canterbury · schools": 2,
            "Maidstone, Medway & Swale · refugees": 2,
            "Maidstone, Medway & Swale · no interests": 1,
        }
        kent = next(p for p in variant_plan.variants if p.variant.label.startswith("Kent"))
        assert {(g.region, g.members) for g in kent.groups} == {("kent", 2), ("thanet", 1)}

        pairs = [pair for chunk in variant_plan.recipients(session, chunk_size=3) for pair in chunk]
        assert len(pairs) == 8 and len({m for m, _ in pairs}) == 8
        assert [m for m, _ in pairs] == sorted(m for m, _ in pairs)
        by_member = dict(pairs)
        assert ids["sussex@example.org"] not in by_member and ids["gone@example.org"] not in by_member
        assert by_member[ids["kent1@example.org"]] == by_member[ids["thanet@example.org"]] == kent.variant.key
        assert by_member[ids["medway1@example.org"]] == by_member[ids["medway2@example.org"]]
        assert by_member[ids["medway1@example.org"]] != by_member[ids["medway3@example.org"]]
        for member_id, key in pairs:
            assert variant_plan.variant(key).key == key
            assert member_id in ids.values()

        # Render once per variant, however many members: our own Renderer counts its calls.
        renderer = Renderer(Settings(workspace=tmp_path))
        rendered = {
            key: renderer.render(variant_plan.variant(key), seed) for key in sorted(set(by_member.values()))
        }
        assert renderer.renders == len(variant_plan.variants) == 4 < len(pairs)
        assert all(r.variant_key == key for key, r in rendered.items())

        other = plan(session, seed, shape, audience="interest:refugees")
        assert other.total == 3  # the two Medway members and the Sussex one


def test_plan_of_an_alert_is_one_variant(db: Database, shape: Shape) -> None:
    add_members(
        db, [("mp1@example.org", "kent", ["mp-advocacy"]), ("mp2@example.org", None, ["mp-advocacy"])]
    )
    alert = load_issue(REPO / "campaigns" / "2025-11-echr-alert" / "issue.yaml", shape)
    with db.session() as session:
        variant_plan = plan(session, alert, shape)
        assert variant_plan.total == 2 and len(variant_plan.variants) == 1
        (chunk,) = list(variant_plan.recipients(session))
        assert len(chunk) == 2


def test_variants_command(db: Database, seed: LoadedIssue, settings: Settings, mailer_cli: MailerCli) -> None:
    add_members(db, MEMBERS)
    folder = settings.workspace / "campaigns" / SEED_SLUG
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.yaml").write_text(SEED_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    args = ["-w", str(settings.workspace), "campaigns", "variants", SEED_SLUG]
    result = mailer_cli(*args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["recipients"] == 8 and len(data["variants"]) == 4
    first = data["variants"][0]
    assert first["label"] == "Kent · no interests and 1 more group" and first["recipients"] == 3
    assert first["items"][0] == "speaker-meeting" and "refugees" not in first["items"]
    human = mailer_cli(*args)
    assert human.exit_code == 0, human.output
    assert "4 variants for 8 recipient(s) of region:kent" in human.output
    assert "Canterbury · schools  (2 recipient(s))" in human.output
