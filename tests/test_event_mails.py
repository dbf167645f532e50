"""Reminders and change mails, sent by real ``mailer worker`` processes (three of them, on
PostgreSQL, as tests/test_workers.py runs them) with the events' clock moved by the
``events_clock`` setting: every attendee gets one reminder with a valid ICS, a time change reaches
them with SEQUENCE raised, a cancellation mails them (METHOD:CANCEL) and the event leaves the
calendar; nobody gets any of these twice. Then the same library round on both databases."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from conftest import REPO, TEST_SECRET, _empty_pg
from sqlalchemy import select
from support.ics_check import check_ics
from support.signatures import dns_for, verified
from support.smtp_server import SmtpTestServer

from mailer import sending
from mailer.audience.importer import import_csv
from mailer.audience.shape import Shape, load_shape, sync
from mailer.audience.synthetic import generate, write_csv
from mailer.db import Database, open_database
from mailer.events import answer_as_member, sync_events
from mailer.events.digest import calendar_events
from mailer.events.reminders import send_due
from mailer.issue import load_campaign
from mailer.message import dkim_keys
from mailer.models import EventMail, Member
from mailer.settings import Settings, load
from mailer.transport import open_transport
from mailer.workspace import write_dkim_keys

LONDON = ZoneInfo("Europe/London")
SLUG = "2025-11-kent-network"
UID = f"{SLUG}-speaker-meeting-1"  # Tuesday 18 November 2025 at 7:30pm
ANSWERED = datetime(2025, 11, 17, 12, 0, tzinfo=LONDON)
MORNING = "2025-11-18 09:00"  # within the 24 hours before the meeting
ATTENDEES = 5


def configure(workspace: Path, **values: object) -> None:
    path = workspace / "mailer.toml"
    text = path.read_text()
    for name, value in values.items():
        text, n = re.subn(rf"(?m)^{name} = .*$", f"{name} = {json.dumps(value)}", text)
        assert n == 1, name
    path.write_text(text)


def sent_newsletter(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp: Path, capacity: int | None = None
) -> list[int]:
    """The Kent newsletter enqueued (its events in the table; nobody mailed it: it is not started)
    and ``ATTENDEES`` members saying yes to its speaker meeting (``capacity`` places, if given: the
    others wait); their member ids."""
    shutil.copytree(REPO / "campaigns" / SLUG, workspace / "campaigns" / SLUG)
    if capacity is not None:
        path = workspace / "campaigns" / SLUG / "issue.yaml"
        start = "start: 2025-11-18 19:30"
        path.write_text(path.read_text().replace(start, f"{start}\n        capacity: {capacity}", 1))
    csv_path = tmp / "members.csv"
    write_csv(csv_path, generate(30, shape, seed=5))
    with db.session() as session:
        assert import_csv(session, csv_path, shape).rejected == 0
    sending.enqueue(db, sending.prepare(db, settings, shape, SLUG))
    with db.session() as session:
        members = session.scalars(select(Member.id).order_by(Member.id).limit(ATTENDEES)).all()
        for member_id in members:
            answer_as_member(session, UID, member_id, "yes", ANSWERED)
    return list(members)


def edit_meeting(db: Database, settings: Settings, workspace: Path, old: str, new: str, at: str) -> None:
    """Edit the sent issue's file and bring the events in step, as the desk does after an edit."""
    path = workspace / "campaigns" / SLUG / "issue.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    issue = load_campaign(workspace, SLUG, None).issue
    with db.session() as session:
        sync_events(
            session, issue, SLUG, datetime.fromisoformat(at).replace(tzinfo=LONDON), settings=settings
        )


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def calendar_of(msg: EmailMessage) -> icalendar.Calendar:
    parts = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, "one ICS file"
    return check_ics(parts[0].get_content())


KIND_WORDS = ("Reminder", "Changed", "Cancelled", "A place for you")


def event_mails(smtp: SmtpTestServer) -> list[tuple[str, EmailMessage]]:
    """(recipient, message) of every event mail received, in order (the newsletter left out)."""
    return [(m.rcpt_tos[0], parse(m.data)) for m in smtp.messages if b"text/calendar" in m.data]


def by_kind(smtp: SmtpTestServer) -> Counter[tuple[str, str]]:
    """(subject's first word, recipient) of every event mail received."""
    return Counter((msg["Subject"].split(":")[0], to) for to, msg in event_mails(smtp))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[dict[str, str], int], None]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str], n: int) -> None:
        for i in range(n):
            err = open(tmp_path / f"w{i}.err", "wb")  # noqa: SIM115 - the child writes to it
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "mailer", "worker", "--id", f"w{i}"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )
            err.close()

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_three_workers_remind_each_attendee_once_then_tell_a_change_and_a_cancellation(
    pg_session_url: str,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
    workers: Callable[[dict[str, str], int], None],
) -> None:
    _empty_pg(pg_session_url)
    configure(workspace, heartbeat_seconds=0.5, lease_seconds=3.0)
    env = {"MAILER_DATABASE_URL": pg_session_url, "MAILER_SECRET": TEST_SECRET}
    settings = load(workspace, env=env)
    shape = load_shape(workspace / "lists")
    db = open_database(settings)
    try:
        with db.session() as session:
            sync(session, shape)
        attendees = sent_newsletter(db, settings, shape, workspace, tmp_path)
        sending.start_campaign(db, SLUG)  # the workers send it too: its events are in the calendar
        with db.session() as session:
            addresses = set(session.scalars(select(Member.email).where(Member.id.in_(attendees))))
        run_env = dict(os.environ, MAILER_WORKSPACE=str(workspace), MAILER_RELAY=smtp_server.url, **env)
        workers(dict(run_env, MAILER_EVENTS_CLOCK=MORNING), 3)

        wait_for(lambda: len(event_mails(smtp_server)) >= ATTENDEES, 45, "the reminders")
        time.sleep(6)  # more than a round of the chore: nobody is reminded twice
        reminders = by_kind(smtp_server)
        assert reminders == Counter({("Reminder", a): 1 for a in addresses}), reminders
        for _to, msg in event_mails(smtp_server):
            assert msg["List-Unsubscribe"] and msg["List-Unsubscribe-Post"] and msg["From"]
            event = calendar_of(msg).walk("VEVENT")[0]
            assert str(event["UID"]) == f"{UID}@{settings.list_domain}" and int(event["SEQUENCE"]) == 0
            assert event.decoded("DTSTART") == datetime(2025, 11, 18, 19, 30, tzinfo=LONDON)

        edit_meeting(db, settings, workspace, "start: 2025-11-18 19:30", "start: 2025-11-18 20:00", MORNING)
        wait_for(lambda: len(event_mails(smtp_server)) >= 2 * ATTENDEES, 45, "the change mails")
        for _to, msg in event_mails(smtp_server)[ATTENDEES:]:
            assert msg["Subject"].startswith("Changed: ")
            event = calendar_of(msg).walk("VEVENT")[0]
            assert int(event["SEQUENCE"]) == 1
            assert event.decoded("DTSTART") == datetime(2025, 11, 18, 20, 0, tzinfo=LONDON)

        edit_meeting(
            db,
            settings,
            workspace,
            "start: 2025-11-18 20:00",
            "start: 2025-11-18 20:00\n        cancelled: true",
            MORNING,
        )
        wait_for(lambda: len(event_mails(smtp_server)) >= 3 * ATTENDEES, 45, "the cancellations")
        time.sleep(6)
        for _to, msg in event_mails(smtp_server)[2 * ATTENDEES :]:
            cal = calendar_of(msg)
            event = cal.walk("VEVENT")[0]
            assert str(cal["METHOD"]) == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
            assert int(event["SEQUENCE"]) == 2
        assert len(event_mails(smtp_server)) == 3 * ATTENDEES, "each mail once"
        assert set(by_kind(smtp_server).values()) == {1}
        with db.session() as session:
            kinds = Counter(session.scalars(select(EventMail.kind).where(EventMail.status == "sent")))
        assert kinds == Counter({"reminder": ATTENDEES, "change": ATTENDEES, "cancel": ATTENDEES})
        with db.session() as session:  # the cancelled meeting has left the calendar the digests read
            uids = {c.uid for c in calendar_events(session, shape, settings, ANSWERED.date(), 14)}
        assert uids and f"{UID}@{settings.list_domain}" not in uids
    finally:
        db.dispose()


@pytest.mark.slow
def test_a_round_sends_what_is_due_and_then_nothing(
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
) -> None:
    sent_newsletter(db, settings, shape, workspace, tmp_path)
    write_dkim_keys(workspace, settings)

    async def round_at(when: str) -> tuple[int, int]:
        now = datetime.fromisoformat(when).replace(tzinfo=LONDON)
        async with open_transport(smtp_server.url, concurrency=1, timeout=5) as transport:
            done = await send_due(db, settings, transport, "w1", now)
        return done.sent, done.failed

    assert asyncio.run(round_at("2025-11-17 18:00")) == (0, 0), "more than 24 hours before"
    assert asyncio.run(round_at(MORNING)) == (ATTENDEES, 0)
    assert asyncio.run(round_at("2025-11-18 10:00")) == (0, 0), "each reminder once"
    msg = parse(smtp_server.messages[0].data)
    title = "Kent Network speaker meeting with Steve Wilkins, Kent Stand Up To Racism"
    assert msg["Subject"] == f"Reminder: {title}, Tuesday 18 November at 7:30pm"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "When: Tuesday 18 November at 7:30pm" in text and "Unsubscribe: http" in text
    assert verified(smtp_server.messages[0].data, dns_for(*dkim_keys(settings))) == [True, True]
    assert msg["List-Id"] and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.slow
def test_someone_moved_up_from_the_waiting_list_is_told_once(
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
) -> None:
    members = sent_newsletter(db, settings, shape, workspace, tmp_path, capacity=2)
    with db.session() as session:  # the first to say yes gives up their place: the first waiting gets it
        answer_as_member(session, UID, members[0], "no", ANSWERED + timedelta(hours=1))
        moved_up = session.scalars(select(Member.email).where(Member.id == members[2])).one()

    async def round_at(when: str) -> tuple[int, int]:
        now = datetime.fromisoformat(when).replace(tzinfo=LONDON)
        async with open_transport(smtp_server.url, concurrency=1, timeout=5) as transport:
            done = await send_due(db, settings, transport, "w1", now)
        return done.sent, done.failed

    assert asyncio.run(round_at("2025-11-17 14:00")) == (1, 0), "before the reminders' window"
    assert asyncio.run(round_at("2025-11-17 14:05")) == (0, 0), "told once"
    [(to, msg)] = event_mails(smtp_server)
    assert to == moved_up and msg["Subject"].startswith("A place for you: ")
    assert "it is yours" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
