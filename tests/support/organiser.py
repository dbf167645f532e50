"""Organisers' messages in tests (docs/events.md, Messages to the people coming): the Kent
newsletter's events in the table, the Maidstone, Medway and Swale group's meeting answered by
members and by someone who is not a member, and the desk at a clock inside the issue's month."""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from mailer.audience.shape import Shape
from mailer.audience.suppression import suppress
from mailer.db import Database
from mailer.events import answer_as_member, request_answer
from mailer.models import Rsvp
from mailer.settings import Settings
from mailer.web import create_app
from support.desk import Desk, TestClient, csrf_of, form_of
from support.events import GROUP_EVENT, ISSUE_TIME, at_issue_time, deliver, sent_with_events

COMING = ("ann@example.org", "bob@example.org")
SUPPRESSED = "sue@example.org"  # a member coming, whose address is suppressed since
NOT_A_MEMBER = "nia@example.org"  # answered on the public page, confirmed
WAITING = "wes@example.org"  # on the waiting list
NOT_COMING = "nod@example.org"


@dataclass
class Gathering:
    """The group's meeting with its answers, and the desk to write to them from."""

    desk: Desk
    members: dict[str, int]


def gathering(settings: Settings, db: Database, shape: Shape, workspace: Path, smtp: Any) -> Gathering:
    campaign = sent_with_events(db, settings, shape, workspace)
    members = {a: deliver(db, campaign, a) for a in (*COMING, SUPPRESSED, WAITING, NOT_COMING)}
    at = ISSUE_TIME + timedelta(minutes=1)
    with db.session() as s:
        for address in (*COMING, SUPPRESSED):
            answer_as_member(s, GROUP_EVENT, members[address], "yes", at)
        answer_as_member(s, GROUP_EVENT, members[NOT_COMING], "no", at)
        answer_as_member(s, GROUP_EVENT, members[WAITING], "yes", at)
        s.execute(update(Rsvp).where(Rsvp.member_id == members[WAITING]).values(answer="waitlist"))
        request_answer(s, GROUP_EVENT, NOT_A_MEMBER, "Nia", "yes", at)
        s.execute(update(Rsvp).where(Rsvp.email == NOT_A_MEMBER).values(confirmed_at=at))
        suppress(s, SUPPRESSED, reason="complaint", source="admin")
        assert s.scalar(select(Rsvp.id).where(Rsvp.email == NOT_A_MEMBER)) is not None
    configured = replace(settings, relay=smtp.url)
    app = create_app(configured, shape=shape, database=db, clock=at_issue_time())
    return Gathering(Desk(app, configured, db, shape, smtp, at_issue_time()), members)


def coordinator(desk: Desk, address: str, region: str) -> TestClient:
    """A desk client signed in as a new coordinator (a contributor) of ``region``."""
    from support.events import signed_in

    return signed_in(desk, address, "contributor", region)


def write(client: TestClient, uid: str, subject: str, body: str, *, waiting: bool = False) -> Any:
    """The message form filled in on the event's page and checked (the preview page's response)."""
    page = client.get(f"/desk/events/{uid}")
    assert page.status_code == 200, page.text
    data = {"csrf": csrf_of(page.text), "step": "preview", "subject": subject, "body": body}
    if waiting:
        data["waiting"] = "yes"
    return client.post(f"/desk/events/{uid}/message", data=data)


def confirm(client: TestClient, uid: str, preview: Any, step: str = "send") -> Any:
    """The preview page's form posted as a browser posts it (its values unescaped), by ``step``'s
    button."""
    fields = {k: html.unescape(v) for k, v in form_of(preview.text, f"/desk/events/{uid}/message").items()}
    return client.post(f"/desk/events/{uid}/message", data={**fields, "step": step})


def browser_sign_in(page: Any, desk: Desk, address: str) -> None:
    """Chromium signed in to the desk as ``address`` (added to the desk already)."""
    from datetime import UTC, datetime

    from mailer.desk import sessions
    from mailer.models import User

    with desk.db.session() as s:
        user = s.scalar(select(User.id).where(User.email == address))
        token = sessions.issue_link(s, int(user or 0), now=datetime.now(UTC))
    page.goto(f"{desk.settings.base_url}/desk/sign-in/{token}")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your desk").wait_for()
