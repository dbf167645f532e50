"""Events in tests (docs/events.md): the Kent newsletter really sent to the SMTP test server, the
RSVP links parsed out of what it received, and the web app (members' pages and the desk) at a
clock inside the issue's month, so that its events are still to come."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from mailer.desk import people, sessions
from mailer.web import create_app
from support.desk import BASE, Clock, Desk, TestClient, csrf_of
from support.sending import Mailing, parse

SLUG = "2025-11-kent-network"
#: A day of the issue's month: its events are still to come.
ISSUE_TIME = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
#: The Maidstone, Medway and Swale group's meeting: a calendar-only entry for that region.
GROUP_EVENT = f"{SLUG}-calendar-1"
RSVP_LINK = re.compile(r"https?://[^/\s]+(/rsvp/([a-z0-9-]+)/([a-z2-7]+))")


def at_issue_time() -> Clock:
    """A clock that reads ``ISSUE_TIME`` onwards."""
    return Clock(offset=ISSUE_TIME - datetime.now(UTC))


def sent_kent(mailing: Mailing, members: int = 60) -> list[EmailMessage]:
    """The Kent newsletter sent for real to ``members`` synthetic members; what the server got."""
    mailing.add(members)
    mailing.enqueue()
    summary = mailing.send()
    assert summary.sent > 0
    return [parse(m.data) for m in mailing.smtp.messages]


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def rsvp_links(msg: EmailMessage) -> dict[str, str]:
    """The RSVP link path of each event in a message's plain text, by event UID."""
    return {m.group(2): m.group(1) for m in RSVP_LINK.finditer(text_of(msg))}


def desk_for(mailing: Mailing, smtp: Any, clock: Clock) -> Desk:
    """The web app (members' pages and the desk) on the mailing's workspace and database."""
    configured = replace(mailing.settings, relay=smtp.url)
    app = create_app(configured, shape=mailing.shape, database=mailing.db, clock=clock)
    return Desk(app, configured, mailing.db, mailing.shape, smtp, clock)


def signed_in(desk: Desk, address: str, role: str, region: str = "") -> TestClient:
    """A desk client signed in as a new person ``address`` with ``role`` (of ``region``)."""
    checked = people.check_role(desk.shape, desk.settings, role, "", region)
    with desk.db.session() as s:
        user_id = people.add(s, address, checked, by=None, now=desk.clock()).person.id
        token = sessions.issue_link(s, user_id, now=desk.clock())
    client = TestClient(desk.app, base_url=BASE, follow_redirects=False)
    page = client.get(f"/desk/sign-in/{token}")
    done = client.post(f"/desk/sign-in/{token}", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303, done.text
    return client
