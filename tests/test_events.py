"""The events table in step with the issues, answers with capacity and a waiting list
(docs/events.md). Library calls on both databases; the sends and pages are in test_events_web.py."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer import events
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.issue import load_issue
from mailer.models import ConsentEvent, Member
from mailer.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SLUG = "2025-11-kent-network"
NOW = datetime(2025, 11, 17, 9, 0, tzinfo=UTC)


def issue_copy(workspace: Path) -> Path:
    dest = workspace / "campaigns" / SLUG
    if not dest.exists():
        shutil.copytree(REPO / "campaigns" / SLUG, dest)
    return dest / "issue.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def sync(db: Database, settings: Settings, shape: Shape, path: Path, now: datetime) -> events.SyncResult:
    loaded = load_issue(path, shape)
    with db.session() as session:
        return events.sync_events(session, loaded.issue, SLUG, now, settings=settings)


def members(db: Database, n: int) -> list[int]:
    with db.session() as session:
        rows = [Member(email=f"m{i}@example.org", address_hash=f"{i:064x}", name=f"M {i}") for i in range(n)]
        session.add_all(rows)
        session.flush()
        return [m.id for m in rows]


def test_sync_adds_every_entry_then_raises_sequence_only_for_what_members_plan_by(
    db: Database, settings: Settings, shape: Shape, workspace: Path
) -> None:
    path = issue_copy(workspace)
    first = sync(db, settings, shape, path, NOW)
    assert len(first.added) == 9 and not first.changed
    uid = f"{SLUG}-calendar-2"
    vigil = next(e for e in first.added if e.uid == uid)
    assert vigil.sequence == 0 and vigil.ends_at - vigil.starts_at == timedelta(hours=2)
    assert sync(db, settings, shape, path, NOW).nothing  # unchanged: nothing

    edit(path, "contact: Email vigil@example.org.", "contact: Email the vigil team.")
    assert sync(db, settings, shape, path, NOW).nothing  # the contact line is not planned by

    later = NOW + timedelta(hours=1)
    edit(path, "start: 2025-12-03 13:00", "start: 2025-12-03 14:00")
    result = sync(db, settings, shape, path, later)
    assert [(c.after.uid, c.what, c.after.sequence) for c in result.changed] == [(uid, ("time",), 1)]
    assert result.changed[0].after.last_modified == later

    edit(path, "Monthly Guantanamo vigil\n", "Monthly Guantanamo vigil\n    cancelled: true\n")
    result = sync(db, settings, shape, path, later)
    assert [(e.uid, e.sequence) for e in result.cancelled] == [(uid, 2)]


def test_a_timed_event_without_an_end_lasts_the_default_and_an_all_day_one_whole_days(
    db: Database, settings: Settings, shape: Shape, workspace: Path
) -> None:
    result = sync(db, settings, shape, issue_copy(workspace), NOW)
    speaker = next(e for e in result.added if e.uid == f"{SLUG}-speaker-meeting-1")
    assert speaker.ends_at - speaker.starts_at == timedelta(minutes=settings.event_default_minutes)
    whole = [e for e in result.added if e.all_day]
    assert whole and all((e.ends_at - e.starts_at).days >= 1 for e in whole)


def test_a_removed_entry_is_cancelled_and_an_item_moved_keeps_its_uids(
    db: Database, settings: Settings, shape: Shape, workspace: Path
) -> None:
    path = issue_copy(workspace)
    before = {e.uid for e in sync(db, settings, shape, path, NOW).added}
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("  - id: speaker-meeting\n")
    first_item, _, others = rest.partition("\n  - id: ")
    moved = others.replace("\ncalendar:", "\n" + sep + first_item + "\ncalendar:", 1)
    path.write_text(head + "  - id: " + moved, encoding="utf-8")
    result = sync(db, settings, shape, path, NOW)
    assert result.nothing, result.as_dict()  # the speaker meeting is now the last item: same UIDs

    edit(path, "Monthly Guantanamo vigil", "Guantanamo vigil, every month")
    result = sync(db, settings, shape, path, NOW)
    assert [(c.after.uid, c.what) for c in result.changed] == [(f"{SLUG}-calendar-2", ("title",))]

    text = path.read_text(encoding="utf-8")
    start = text.index("  - title: Guantanamo vigil")
    path.write_text(text[:start] + "\nsign_off: |" + text.split("\nsign_off: |", 1)[1], encoding="utf-8")
    result = sync(db, settings, shape, path, NOW)
    assert [e.uid for e in result.cancelled] == [f"{SLUG}-calendar-2"]
    assert {e.uid for e in result.cancelled} < before


@pytest.mark.parametrize("capacity", [2])
def test_capacity_puts_the_third_yes_on_the_waiting_list_and_moves_it_up(
    db: Database, settings: Settings, shape: Shape, workspace: Path, capacity: int
) -> None:
    path = issue_copy(workspace)
    edit(path, "Monthly Guantanamo vigil\n", f"Monthly Guantanamo vigil\n    capacity: {capacity}\n")
    sync(db, settings, shape, path, NOW)
    uid = f"{SLUG}-calendar-2"
    a, b, c, d = members(db, 4)
    with db.session() as session:
        assert events.answer_as_member(session, uid, a, "yes", NOW).answer == "yes"
        assert events.answer_as_member(session, uid, b, "yes", NOW).answer == "yes"
        assert events.answer_as_member(session, uid, c, "yes", NOW).answer == "waitlist"
        later = NOW + timedelta(seconds=1)
        assert events.answer_as_member(session, uid, d, "yes", later).answer == "waitlist"
        again = events.answer_as_member(session, uid, c, "yes", NOW)
        assert again.answer == "waitlist" and not again.changed
    with db.session() as session:
        moved = events.answer_as_member(session, uid, a, "no", NOW)
        assert moved.changed and len(moved.promoted) == 1
    with db.session() as session:
        listed = {x.member_id: x.answer for x in events.attendees(session, uid)}
        assert listed == {a: "no", b: "yes", c: "yes", d: "waitlist"}
        event = events.find_event(session, uid)
        assert event is not None
        assert events.counts(session, [event.id])[event.id] == events.Counts(yes=2, no=1, waitlist=1)
        logged = session.scalars(select(ConsentEvent.detail).where(ConsentEvent.action == "rsvp")).all()
        assert len(logged) == 6  # a, b, c, d; a's no; c moved up
    # raising the capacity moves d up
    edit(path, f"capacity: {capacity}", f"capacity: {capacity + 1}")
    assert len(sync(db, settings, shape, path, NOW).promoted) == 1


def test_a_non_members_answer_counts_once_confirmed_and_a_replayed_link_changes_nothing(
    db: Database, settings: Settings, shape: Shape, workspace: Path
) -> None:
    sync(db, settings, shape, issue_copy(workspace), NOW)
    uid = f"{SLUG}-calendar-2"
    with db.session() as session:
        asked = events.request_answer(session, uid, "guest@example.net", "Guest", "yes", NOW)
        assert events.attendees(session, uid) == []
    issued = NOW + timedelta(minutes=1)
    with db.session() as session:
        done = events.confirm_answer(session, asked.rsvp_id, "yes", asked.serial, issued)
        assert done.answer == "yes" and done.changed
    with db.session() as session, pytest.raises(events.StaleConfirmation):
        events.confirm_answer(session, asked.rsvp_id, "yes", asked.serial, issued)
    with db.session() as session:
        assert [(x.email, x.answer) for x in events.attendees(session, uid)] == [("guest@example.net", "yes")]


def test_the_events_sync_chore_follows_a_hand_edit_of_a_sent_issue(
    db: Database, settings: Settings, shape: Shape, workspace: Path
) -> None:
    import asyncio

    from mailer.events.watch import sync_edited
    from mailer.models import Campaign
    from mailer.sending.chores import ChoreContext

    path = issue_copy(workspace)
    sync(db, settings, shape, path, NOW)
    with db.session() as session:
        session.add(
            Campaign(
                slug=SLUG,
                kind="newsletter",
                title="t",
                subject="s",
                audience="region:kent",
                issue_date="2025-11-17",
                source="",
                status="sent",
            )
        )
    context = ChoreContext(db, settings, NOW + timedelta(hours=1), None, "test-worker")
    assert asyncio.run(sync_edited(context)) == ""  # nothing changed
    edit(path, "location: Outside the Houses of Parliament, London", "location: Parliament Square, London")
    line = asyncio.run(sync_edited(context))
    assert f"{SLUG}-calendar-2" in line and "place" in line
    with db.session() as session:
        event = events.find_event(session, f"{SLUG}-calendar-2")
        assert event is not None and event.sequence == 1 and event.announced_sequence == 0
