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


def sent_with_events(db: Any, settings: Any, shape: Any, workspace: Any, slug: str = SLUG) -> int:
    """Campaign ``slug`` (the Kent newsletter's file) recorded as sent, with its events synced, and no
    one sent it yet; its id. Members get it with ``deliver``."""
    import shutil
    from pathlib import Path

    from sqlalchemy import select

    from mailer import events
    from mailer.issue import load_issue
    from mailer.models import Campaign, Variant

    repo = Path(__file__).resolve().parents[2]
    dest = workspace / "campaigns" / slug
    if not dest.exists():
        shutil.copytree(repo / "campaigns" / SLUG, dest)
    loaded = load_issue(dest / "issue.yaml", shape)
    with db.session() as s:
        campaign = Campaign(
            slug=slug,
            kind="newsletter",
            title=loaded.issue.title,
            subject=loaded.issue.subject,
            audience="region:kent",
            issue_date="2025-11-17",
            source=(dest / "issue.yaml").read_text(encoding="utf-8"),
            status="sent",
            started_at=ISSUE_TIME,
            finished_at=ISSUE_TIME,
        )
        s.add(campaign)
        s.flush()
        s.add(Variant(campaign_id=campaign.id, key="v", label="x", subject="s", text="t", html="h"))
        events.sync_events(s, loaded.issue, slug, ISSUE_TIME, settings=settings)
        assert s.scalar(select(Campaign.id).where(Campaign.slug == slug)) == campaign.id
        return campaign.id


def deliver(db: Any, campaign_id: int, address: str) -> int:
    """A member ``address`` who was sent campaign ``campaign_id``; their member id."""
    from sqlalchemy import select

    from mailer.audience.addresses import address_hash, normalise
    from mailer.models import Delivery, Member, Variant

    with db.session() as s:
        email = normalise(address)
        member = s.scalars(select(Member).where(Member.email == email)).one_or_none()
        if member is None:
            member = Member(email=email, address_hash=address_hash(s, email), name="Pat")
            s.add(member)
            s.flush()
        variant = s.scalars(select(Variant.id).where(Variant.campaign_id == campaign_id)).first()
        assert variant is not None
        s.add(Delivery(campaign_id=campaign_id, member_id=member.id, variant_id=variant, status="sent"))
        return member.id
