"""An organiser writes to the people coming to an event (docs/events.md, Messages to the people
coming): a coordinator of the event's local group writes on the desk, checks how many it goes to,
sends; a round of the workers' chores sends it once to each attendee at a real SMTP server,
DKIM-signed, List-Unsubscribe for members, a footer for someone who is not a member, nothing to a
suppressed address; the next round sends nothing; another group's coordinator gets 403. Erasing a
person takes their answers and their mails' rows. Both databases."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.browser import chromium, tab
from support.desk import Desk, browser_desk
from support.events import GROUP_EVENT, ISSUE_TIME
from support.organiser import (
    COMING,
    NOT_A_MEMBER,
    SUPPRESSED,
    WAITING,
    browser_sign_in,
    confirm,
    coordinator,
    gathering,
    write,
)
from support.signatures import dns_for, verified
from support.smtp_server import SmtpTestServer

from mailer.audience.shape import Shape
from mailer.chores import default_chores
from mailer.db import Database
from mailer.message import dkim_keys
from mailer.models import AuditEntry, EventMail, OrganiserMessage, Rsvp
from mailer.rights.erasure import forget
from mailer.sending.chores import run_due_chores
from mailer.settings import Settings
from mailer.workspace import write_dkim_keys

__all__ = ["browser_desk", "chromium", "tab"]  # fixtures

SUBJECT = "Room change for Monday's meeting"
BODY = "Hello all,\n\nWe meet in room 2 upstairs, not the hall.\n<b>Bring a friend</b> & a flask.\n\nMo"


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def organiser_mails(smtp: SmtpTestServer) -> list[tuple[str, EmailMessage, bytes]]:
    return [(m.rcpt_tos[0], parse(m.data), m.data) for m in smtp.messages if SUBJECT.encode() in m.data]


def test_a_group_coordinator_writes_to_the_people_coming_and_the_workers_send_it_once(
    settings: Settings, db: Database, shape: Shape, workspace: Path, smtp_server: SmtpTestServer
) -> None:
    write_dkim_keys(workspace, settings)
    met = gathering(settings, db, shape, workspace, smtp_server)
    desk = met.desk
    with desk.client():
        other = coordinator(desk, "canterbury-coordinator@example.org", "canterbury")
        assert other.get(f"/desk/events/{GROUP_EVENT}").status_code == 403
        page = other.get("/desk/events")
        assert write_refused(other) == 403

        mine = coordinator(desk, "mms-coordinator@example.org", "maidstone-medway-swale")
        preview = write(mine, GROUP_EVENT, SUBJECT, BODY)
        assert preview.status_code == 200, preview.text
        # coming: two members, the suppressed one (left out when sent), the confirmed non-member
        assert "It will go to <strong>4</strong> people" in preview.text
        assert "&lt;b&gt;Bring a friend&lt;/b&gt;" in preview.text and "<b>Bring" not in preview.text
        sent = confirm(mine, GROUP_EVENT, preview)
        assert sent.status_code == 200 and "It goes to 4 people" in sent.text
        assert page.status_code == 200

    with db.session() as s:
        [message] = s.scalars(select(OrganiserMessage)).all()
        assert message.subject == SUBJECT and message.body == BODY + "\n" and message.recipients == 4
        audited = s.scalars(select(AuditEntry).where(AuditEntry.action == "event-message")).all()
        assert [(a.object, a.detail) for a in audited] == [(GROUP_EVENT, f"message {message.id} to 4 people")]

    settings = desk.settings  # relaying to the test server
    chores = default_chores(settings)
    now = ISSUE_TIME + timedelta(minutes=5)
    said = asyncio.run(run_due_chores(db, settings, chores, worker="w1", now=now))
    assert "event-mails: 3 event mail(s) sent, 0 failed" in said, said
    got = organiser_mails(smtp_server)
    assert sorted(to for to, _, _ in got) == sorted([*COMING, NOT_A_MEMBER])
    keys = dns_for(*dkim_keys(settings))
    for to, msg, raw in got:
        assert msg["Subject"] == SUBJECT
        assert all(verified(raw, keys)) and verified(raw, keys), to
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "We meet in room 2 upstairs" in text and "<b>Bring a friend</b> & a flask." in text
        assert not [p for p in msg.walk() if p.get_content_type() in ("text/html", "text/calendar")]
        if to == NOT_A_MEMBER:
            assert msg["List-Unsubscribe"] is None
            assert f"/events/{GROUP_EVENT}" in text and "cancel your answer" in text
        else:
            assert msg["List-Unsubscribe"] and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert "Unsubscribe: http" in text
    assert SUPPRESSED not in {to for to, _, _ in got} and WAITING not in {to for to, _, _ in got}

    asyncio.run(run_due_chores(db, settings, chores, worker="w2", now=now + timedelta(minutes=1)))
    assert len(organiser_mails(smtp_server)) == 4 - 1, "a second round sends nothing"
    with db.session() as s:
        statuses = sorted(s.scalars(select(EventMail.status).where(EventMail.kind == "organiser")))
    assert statuses == ["sent", "sent", "sent", "skipped"]


def write_refused(client: Any) -> int:
    from support.desk import csrf_of

    csrf = csrf_of(client.get("/desk/events").text)
    data = {"csrf": csrf, "step": "send", "subject": "Hi", "body": "Hello"}
    return int(client.post(f"/desk/events/{GROUP_EVENT}/message", data=data).status_code)


def test_the_waiting_list_too_when_asked(
    settings: Settings, db: Database, shape: Shape, workspace: Path, smtp_server: SmtpTestServer
) -> None:
    met = gathering(settings, db, shape, workspace, smtp_server)
    with met.desk.client():
        mine = coordinator(met.desk, "mms-coordinator@example.org", "maidstone-medway-swale")
        preview = write(mine, GROUP_EVENT, SUBJECT, BODY, waiting=True)
        assert "It will go to <strong>5</strong> people" in preview.text


def test_erasing_a_person_takes_their_answers_and_their_mails_rows(
    settings: Settings, db: Database, shape: Shape, workspace: Path, smtp_server: SmtpTestServer
) -> None:
    met = gathering(settings, db, shape, workspace, smtp_server)
    with met.desk.client():
        mine = coordinator(met.desk, "mms-coordinator@example.org", "maidstone-medway-swale")
        assert confirm(mine, GROUP_EVENT, write(mine, GROUP_EVENT, SUBJECT, BODY)).status_code == 200
    for address in (NOT_A_MEMBER, COMING[0]):
        with db.session() as s:
            rsvp = s.scalar(
                select(Rsvp.id)
                .join(EventMail, EventMail.rsvp_id == Rsvp.id)
                .where((Rsvp.email == address) | (Rsvp.member_id == met.members.get(address, -1)))
            )
            assert rsvp is not None
        report = forget(db, settings, address, actor="test")
        assert report.found and report.rsvps_removed == 1, address
        with db.session() as s:
            assert s.scalar(select(func.count()).where(EventMail.rsvp_id == rsvp)) == 0
            assert s.scalar(select(func.count()).where(Rsvp.id == rsvp)) == 0


@pytest.mark.browser
def test_the_message_form_in_a_browser(
    tab: Any,
    browser_desk: Desk,
    settings: Settings,
    db: Database,
    shape: Shape,
    workspace: Path,
    smtp_server: SmtpTestServer,
) -> None:
    from support.axe import check_axe

    gathering(settings, db, shape, workspace, smtp_server)
    page, desk = tab, browser_desk
    desk.add("mms-coordinator@example.org", "contributor", region="maidstone-medway-swale")
    browser_sign_in(page, desk, "mms-coordinator@example.org")
    page.goto(f"{desk.settings.base_url}/desk/events/{GROUP_EVENT}")
    page.get_by_role("heading", name="Write to the people coming").wait_for()
    check_axe(page)
    page.get_by_label("Subject").fill("Line one")
    page.get_by_role("button", name="Check before sending").click()
    page.get_by_text("Nothing was sent").wait_for()
    assert page.locator("#body-error").is_visible()
    check_axe(page)
    page.get_by_label("Message").fill(BODY)
    page.get_by_label("Send it to the waiting list too").check()
    page.get_by_role("button", name="Check before sending").click()
    page.get_by_role("heading", name="Check your message").wait_for()
    check_axe(page)
    page.get_by_role("button", name="Send it to 5 people").click()
    page.get_by_role("heading", name="Your message is on its way").wait_for()
    check_axe(page)
    with db.session() as s:
        [message] = s.scalars(select(OrganiserMessage)).all()
    assert message.body == BODY + "\n" and message.waiting_too and message.recipients == 5


def test_the_mails_text_as_a_member_and_as_someone_who_is_not_one(
    settings: Settings, db: Database, shape: Shape, workspace: Path
) -> None:
    from support.events import sent_with_events
    from support.rendering import check_golden

    from mailer.audience.shape import load_shape
    from mailer.events import find_event
    from mailer.events.reminders import DueMail, body_text
    from mailer.identity import Identity

    sent_with_events(db, settings, shape, workspace)
    with db.session() as s:
        event = find_event(s, GROUP_EVENT)
    assert event is not None
    kent = load_shape(Path(__file__).resolve().parent.parent / "lists").networks["kent"]
    identity = Identity(kent)  # the demo's Kent Network, with its postal address and privacy notice
    golden = Path(__file__).parent / "golden" / "events"
    member = DueMail("organiser", event, 1, 7, "ann@example.org", "Ann", 1, SUBJECT, BODY + "\n")
    text = body_text(member, settings, identity, "https://example.org/u/TOKEN")
    check_golden(golden / "organiser-member.txt", text)
    guest = DueMail("organiser", event, 2, None, NOT_A_MEMBER, "Nia", 2, SUBJECT, BODY + "\n")
    check_golden(golden / "organiser-not-a-member.txt", body_text(guest, settings, identity, ""))
