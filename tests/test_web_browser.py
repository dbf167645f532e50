"""The members' pages in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright, against the app served by uvicorn, at phone and desktop widths.

Unsubscribe with the page's button, change interests on the preferences page, and sign up and
confirm through the mail a real aiosmtpd server received. Every page is checked for what works
without a mouse or good eyes (one h1, headings in order, a label for every field, no sideways
scrolling on a phone) and photographed; set MAILER_SCREENSHOTS=DIR to keep the pictures.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from conftest import launch_chromium
from playwright.sync_api import Browser, Page
from sqlalchemy import select
from support.browser import WIDTHS, check_page, free_port, live_server
from support.hashes import address_hash

from mailer import tokens
from mailer.audience.addresses import normalise
from mailer.audience.networks import consent_text, default_network
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.models import Campaign, ConsentEvent, Interest, Member, Region, Suppression
from mailer.settings import Settings
from mailer.web import create_app

pytestmark = pytest.mark.browser

SEED = Path(__file__).resolve().parent.parent / "campaigns" / "2025-11-kent-network" / "issue.yaml"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("MAILER_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Site:
    base: str
    settings: Settings
    db: Database
    smtp: Any  # tests/support/smtp_server.py's SmtpTestServer


@pytest.fixture
def site(settings: Settings, db: Database, shape: Shape, smtp_server: Any) -> Iterator[Site]:
    port = free_port()
    configured = replace(settings, relay=smtp_server.url, base_url=f"http://127.0.0.1:{port}")
    app = create_app(configured, shape=shape, database=db)
    with live_server(app, port) as base:
        yield Site(base, configured, db, smtp_server)


@pytest.fixture(params=list(WIDTHS))
def page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    width, height = WIDTHS[request.param]
    context = browser.new_context(viewport={"width": width, "height": height}, java_script_enabled=False)
    tab = context.new_page()
    tab.width_name = request.param  # type: ignore[attr-defined]
    yield tab
    context.close()


def add_member(db: Database, address: str, interests: tuple[str, ...] = ("refugees",)) -> int:
    with db.session() as s:
        normal = normalise(address)
        member = Member(
            email=normal,
            address_hash=address_hash(normal),
            name="Ann Example",
            region_id=s.scalar(select(Region.id).where(Region.slug == "kent")),
            interests=list(s.scalars(select(Interest).where(Interest.slug.in_(interests)))),
        )
        s.add(member)
        s.flush()
        return member.id


def test_unsubscribe_with_the_button(page: Page, site: Site, screenshots: Path) -> None:
    member = add_member(site.db, "ann@example.org")
    with site.db.session() as s:
        campaign = Campaign(
            slug="2025-11-kent-network",
            kind="newsletter",
            title="Kent",
            subject="Kent",
            audience="region:kent",
            issue_date="2025-11-17",
            source=SEED.read_text(encoding="utf-8"),
            status="sending",
        )
        s.add(campaign)
        s.flush()
        campaign_id = campaign.id
    token = tokens.sign("unsubscribe", member, keys=site.settings.secrets, campaign=campaign_id)
    page.goto(f"{site.base}/u/{token}")
    check_page(page, screenshots, "unsubscribe")
    with site.db.session() as s:
        assert s.get(Suppression, address_hash("ann@example.org")) is None  # looking changed nothing
    page.get_by_role("button", name="Unsubscribe from all emails").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    check_page(page, screenshots, "unsubscribed")
    with site.db.session() as s:
        row = s.get(Suppression, address_hash("ann@example.org"))
        assert row is not None and row.source == "link" and row.campaign == "2025-11-kent-network"
    assert "/p/" not in page.content(), "no preferences link is minted in the page"
    page.get_by_role("link", name="Sign up again").click()
    page.get_by_role("heading", name="Sign up for our emails").wait_for()


def test_unsubscribe_page_mails_a_preferences_link(page: Page, site: Site, screenshots: Path) -> None:
    member = add_member(site.db, "dee@example.org")
    token = tokens.sign("unsubscribe", member, keys=site.settings.secrets)
    page.goto(f"{site.base}/u/{token}")
    page.get_by_role("button", name="Email me a link to my preferences").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    check_page(page, screenshots, "preferences-link-sent")
    deadline = time.monotonic() + 10
    while not site.smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    (received,) = site.smtp.messages
    assert received.rcpt_tos == ["dee@example.org"]
    link = re.search(rb"(http://127\.0\.0\.1:\d+/p/[a-z2-7]+)", received.data)
    assert link, "the mail holds a preferences link"
    page.goto(link.group(1).decode())
    page.get_by_role("heading", name="Your preferences").wait_for()


def test_expired_preferences_link_offers_a_fresh_one(page: Page, site: Site, screenshots: Path) -> None:
    member = add_member(site.db, "eve@example.org")
    old = datetime.now(UTC) - timedelta(days=site.settings.preferences_link_days + 1)
    token = tokens.sign("preferences", member, keys=site.settings.secrets, now=old)
    page.goto(f"{site.base}/p/{token}")
    page.get_by_role("heading", name="This link has expired").wait_for()
    check_page(page, screenshots, "preferences-expired")
    page.get_by_role("button", name="Email me a new link").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    deadline = time.monotonic() + 10
    while not site.smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.rcpt_tos for m in site.smtp.messages] == [["eve@example.org"]]


def test_change_interests_on_the_preferences_page(page: Page, site: Site, screenshots: Path) -> None:
    member = add_member(site.db, "ben@example.org", interests=("refugees", "palestine"))
    token = tokens.sign("preferences", member, keys=site.settings.secrets)
    page.goto(f"{site.base}/p/{token}")
    check_page(page, screenshots, "preferences")
    page.get_by_label("Refugees").uncheck()
    page.get_by_label("Working with schools").check()
    page.get_by_label("Your home region").select_option("canterbury")
    page.get_by_label("Your name").fill("Ben Example")
    page.get_by_role("button", name="Save my preferences").click()
    page.get_by_text("Your preferences are saved.").wait_for()
    check_page(page, screenshots, "preferences-saved")
    assert page.get_by_label("Working with schools").is_checked()
    assert not page.get_by_label("Refugees").is_checked()
    with site.db.session() as s:
        row = s.get(Member, member)
        assert row is not None
        assert sorted(i.slug for i in row.interests) == ["palestine", "schools"]
        assert row.region is not None and row.region.slug == "canterbury" and row.name == "Ben Example"
        events = list(s.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member)))
        assert [e.action for e in events] == ["preferences"]


def test_sign_up_and_confirm_through_the_mail(page: Page, site: Site, screenshots: Path) -> None:
    address = f"new.{page.width_name}@example.org"  # type: ignore[attr-defined]
    page.goto(f"{site.base}/subscribe")
    check_page(page, screenshots, "subscribe")
    page.get_by_label("Your name").fill("Cat Example")
    page.get_by_label("Your email address").fill(address)
    page.get_by_label("Or your postcode").fill("ct1 2aa")
    page.get_by_label("Refugees").check()
    page.get_by_label(re.compile("^I agree")).check()
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    check_page(page, screenshots, "check-inbox")

    deadline = time.monotonic() + 10
    while not site.smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    (received,) = site.smtp.messages
    assert received.rcpt_tos == [address]
    msg = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None
    link = re.search(r"(http://127\.0\.0\.1:\d+/confirm/\S+)", str(body.get_content()))
    assert link, "the mail holds the confirmation link"
    with site.db.session() as s:
        assert s.scalar(select(Member).where(Member.email == address)) is None

    page.goto(link.group(1))
    check_page(page, screenshots, "confirm")
    page.get_by_role("button", name="Confirm my sign-up").click()
    page.get_by_role("heading", name="You are signed up").wait_for()
    check_page(page, screenshots, "confirmed")
    with site.db.session() as s:
        member = s.scalar(select(Member).where(Member.email == address))
        assert member is not None and member.name == "Cat Example"
        assert member.region is not None and member.region.slug == "canterbury"
        assert [i.slug for i in member.interests] == ["refugees"]
        consent = s.scalar(select(ConsentEvent).where(ConsentEvent.member_id == member.id))
        assert consent is not None and consent.source == "signup"
        assert consent.wording == consent_text(default_network(site.settings), site.settings)
        assert consent.created_at <= datetime.now(UTC)


def test_the_other_pages(page: Page, site: Site, screenshots: Path) -> None:
    with site.db.session() as s:
        s.add(
            Campaign(
                slug="2025-11-kent-network",
                kind="newsletter",
                title="Amnesty International Kent Network Newsletter: November 2025",
                subject="Kent",
                audience="region:kent",
                issue_date="2025-11-17",
                source=SEED.read_text(encoding="utf-8"),
                status="sent",
            )
        )
    for path, name, heading in [
        ("/", "home", "Kent Network"),
        ("/archive/", "archive", "Past newsletters"),
        ("/calendar/", "calendars", "Event calendars"),
        ("/subscribe/embed", "embed", "Put our sign-up form on your website"),
        ("/u/notavalidtoken", "bad-link", "This link does not work"),
        ("/links", "links", "Your personal links"),
        ("/nowhere", "not-found", "Page not found"),
    ]:
        page.goto(site.base + path)
        page.get_by_role("heading", name=heading, exact=True).wait_for()
        check_page(page, screenshots, name)
    page.goto(site.base + "/archive/")
    page.get_by_role("link", name="Amnesty International Kent Network Newsletter: November 2025").click()
    page.get_by_text("Write for Rights 2025").first.wait_for()
    page.screenshot(path=str(screenshots / f"edition-{page.width_name}.png"))  # type: ignore[attr-defined]
