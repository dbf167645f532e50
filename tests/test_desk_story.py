"""The desk's whole story in Chromium, on a fresh demo workspace and both
databases: a Birmingham contributor signs in by the mailed link and submits an event; the Central
England editor starts a new issue and accepts the event into it, previews the Birmingham and the
Derby copies (the event is only in Birmingham's), test-sends to herself (it arrives at the SMTP
server); an approver approves; the editor schedules it after seeing the counts per region and
variant; its time comes and a worker (the library's, as ``mailer worker`` runs it) sends it; the
progress and report pages show the counts, and the event reached Birmingham's members only.

Every page is checked as every page of the site is (support.browser.check_page: contrast, one
h1, labels, no sideways scrolling) and by axe-core (tests/support/axe.py: no serious or critical
violation), at 375 and 1280 px, with a screenshot of each in the test's folder (or
MAILER_SCREENSHOTS).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import launch_chromium
from playwright.sync_api import Browser, BrowserContext, Page
from sqlalchemy import select
from support.axe import check_axe
from support.browser import WIDTHS, check_page
from support.desk import Desk, browser_demo_desk, run_worker_until_done, workspace

from mailer.models import Campaign, Member, Region
from mailer.sending import start_due

__all__ = ["browser_demo_desk", "workspace"]  # fixtures

BEA, ED, ANN = "bea@example.org", "edith@example.org", "ann@example.org"
EVENT = "Human Rights Day vigil in Birmingham"
CE = "/desk/networks/central-england"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as launched:
        yield launched


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    """Where the screenshots go: MAILER_SCREENSHOTS, else the test's own folder."""
    wanted = os.environ.get("MAILER_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Story:
    """The browser, one context (and tab) per person, and what every page is checked for."""

    def __init__(self, chromium: Browser, desk: Desk, artefacts: Path, backend: str) -> None:
        self.chromium, self.desk, self.artefacts, self.backend = chromium, desk, artefacts, backend
        self.base = desk.settings.base_url
        self.contexts: list[BrowserContext] = []
        self.shots: list[str] = []

    def tab(self) -> Page:
        width, height = WIDTHS["desktop"]
        context = self.chromium.new_context(
            viewport={"width": width, "height": height}, java_script_enabled=False
        )
        self.contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        for context in self.contexts:
            context.close()

    def check(self, page: Page, name: str, *, allow: tuple[str, ...] = ()) -> None:
        """check_page and axe-core at 375 and at 1280 px, with a screenshot at each."""
        for width_name, (width, height) in (("phone", WIDTHS["phone"]), ("desktop", WIDTHS["desktop"])):
            page.set_viewport_size({"width": width, "height": height})
            page.width_name = width_name  # type: ignore[attr-defined]
            check_page(page, self.artefacts, f"story-{self.backend}-{name}")
            check_axe(page, name=f"{name} at {width} px", allow=allow)
            self.shots.append(f"story-{self.backend}-{name}-{width_name}.png")

    def sign_in(self, page: Page, address: str) -> None:
        """Sign in by the link mailed to ``address`` (read from the test SMTP server)."""
        before = len(self.desk.mails_to(address, 0, 0))
        page.goto(self.base + "/desk/")
        page.get_by_role("heading", name="Sign in to the desk").wait_for()
        page.get_by_label("Your email address").fill(address)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Check your email").wait_for()
        mails = self.desk.mails_to(address, before + 1)
        assert len(mails) == before + 1, f"a sign-in link was mailed to {address}"
        body = mails[-1].get_body(("plain",))
        assert body is not None
        found = re.search(
            r"(http://127\.0\.0\.1:\d+/desk/sign-in/[A-Za-z0-9_-]{43})\s", str(body.get_content())
        )
        assert found, "the mail holds the sign-in link"
        page.goto(found.group(1))
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Your desk").wait_for()


def messages_by_region(desk: Desk, slug: str) -> dict[str, list[str]]:
    """The campaign's messages the SMTP server got (not the tests), as text, by the home region of
    their recipient."""
    with desk.db.session() as s:
        regions = dict(
            s.execute(select(Member.email, Region.slug).join(Region, Region.id == Member.region_id)).all()
        )
    out: dict[str, list[str]] = {}
    for received in desk.smtp.messages:
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        subject = str(msg["Subject"])
        if subject.startswith("[TEST]") or f".{slug}@" not in str(msg["Message-ID"]):
            continue  # a test copy, a sign-in link or a desk notice
        body = msg.get_body(("plain",))
        if body is None:
            continue
        for rcpt in received.rcpt_tos:
            out.setdefault(regions.get(rcpt, "?"), []).append(str(body.get_content()))  # type: ignore[union-attr]
    return out


def subjects_to(desk: Desk, address: str) -> list[str]:
    """The subjects of the mails the SMTP server got for ``address``."""
    out = []
    for received in desk.smtp.messages:
        if address in received.rcpt_tos:
            out.append(str(email.message_from_bytes(received.data, policy=email.policy.default)["Subject"]))
    return out


@pytest.mark.browser
def test_the_whole_story(chromium: Browser, browser_demo_desk: Desk, artefacts: Path, backend: str) -> None:
    desk = browser_demo_desk
    desk.add(BEA, "contributor", region="birmingham", name="Bea Contributor")
    desk.add(ED, "editor", "central-england", name="Edith Editor")
    desk.add(ANN, "approver", "central-england", name="Ann Approver")
    story = Story(chromium, desk, artefacts, backend)
    today = date.today()
    slug = f"{today:%Y-%m}-central-england-special"
    title = "Central England Network: special issue"
    base = story.base
    try:
        # 1. A Birmingham contributor signs in by the mailed link and sends an event.
        bea = story.tab()
        story.sign_in(bea, BEA)
        story.check(bea, "home-contributor")
        bea.get_by_role("link", name="Central England Network").click()
        bea.get_by_role("link", name="Send an event or news to the newsletter").click()
        bea.get_by_role("link", name="Send an event", exact=True).click()
        bea.get_by_role("heading", name="Send an event").wait_for()
        story.check(bea, "contribute-event")
        bea.get_by_label("Title").fill(EVENT)
        bea.get_by_label("Day", exact=True).fill((today + timedelta(days=12)).isoformat())
        bea.get_by_label("Starts at").fill("18:30")
        bea.get_by_label("Place").fill("Victoria Square, Birmingham")
        bea.get_by_label("Description").fill(
            "Bring a candle; we read out the names of prisoners of conscience."
        )
        bea.get_by_role("button", name="Send to the editor").click()
        bea.get_by_text("it is in the editor's inbox").wait_for()
        story.check(bea, "contribute-sent")

        # 2. The Central England editor starts a new issue and accepts the event into it.
        ed = story.tab()
        story.sign_in(ed, ED)
        ed.goto(f"{base}{CE}/issues")
        ed.get_by_role("heading", name="Start a new issue").wait_for()
        story.check(ed, "issues")
        ed.get_by_label("Title").fill(title)
        ed.get_by_label("Name of its folder").fill(slug)
        ed.get_by_label("Date").fill(today.isoformat())
        ed.get_by_role("button", name="Start the issue").click()
        ed.wait_for_url(re.compile(rf"/desk/issues/{slug}\b"))
        story.check(ed, "issue-new")
        ed.goto(f"{base}{CE}/inbox")
        story.check(ed, "inbox")
        ed.get_by_role("link", name=EVENT).click()
        ed.get_by_role("heading", name="Accept it into an issue").wait_for()
        story.check(ed, "inbox-one")
        ed.get_by_label("Where it goes").select_option(f"{slug}/item")
        ed.get_by_role("button", name="Accept").click()
        ed.get_by_text("It is accepted into the issue.").wait_for()
        story.check(ed, "inbox-accepted")

        # 3. She previews the Birmingham and the Derby copies: the event is only in Birmingham's.
        ed.goto(f"{base}/desk/issues/{slug}/preview")
        ed.get_by_label("Region").select_option("birmingham")
        ed.get_by_role("button", name="Show this copy").click()
        ed.locator("pre").first.wait_for()
        assert EVENT in ed.locator("pre").first.inner_text()
        story.check(ed, "preview-birmingham")
        ed.get_by_label("Region").select_option("derby")
        ed.get_by_role("button", name="Show this copy").click()
        ed.locator("pre").first.wait_for()
        assert "Derby" in ed.get_by_role("heading", level=2).filter(has_text="Derby").first.inner_text()
        assert EVENT not in ed.locator("pre").first.inner_text()
        story.check(ed, "preview-derby")

        # 4. A test to herself: it arrives at the SMTP server.
        ed.goto(f"{base}/desk/issues/{slug}/send")
        ed.get_by_role("heading", name=f"Send: {title}").wait_for()
        assert "Not approved yet" in ed.content()
        story.check(ed, "send-unapproved")
        ed.get_by_role("button", name="Send me a test").click()
        ed.get_by_text("A test copy is on its way to you.").wait_for()
        story.check(ed, "send-tested")
        tests = [m for m in desk.mails_to(ED, 2) if str(m["Subject"]).startswith("[TEST]")]
        assert len(tests) == 1 and title in str(tests[0]["Subject"])

        # 5. An approver (not the last editor) approves it.
        ann = story.tab()
        story.sign_in(ann, ANN)
        ann.goto(f"{base}/desk/issues/{slug}/approve")
        ann.get_by_role("heading", name=f"Approve: {title}").wait_for()
        story.check(ann, "approve")
        ann.get_by_role("button", name="Approve this issue").click()
        ann.get_by_text("The issue is approved.").wait_for()
        story.check(ann, "approved")

        # 6. The editor schedules it, after seeing the counts per region and variant.
        when = (datetime.now(desk.settings.zone) + timedelta(days=1)).replace(
            hour=8, minute=0, second=0, microsecond=0
        )
        ed.goto(f"{base}/desk/issues/{slug}/send")
        ed.get_by_text("Approved", exact=True).wait_for()
        story.check(ed, "send-approved")
        ed.get_by_label("Later, at the date and time below").check()
        ed.get_by_label("Date and time to send").fill(when.strftime("%Y-%m-%dT%H:%M"))
        ed.get_by_role("button", name="Continue").click()
        ed.get_by_role("heading", name=f"Schedule: {title}").wait_for()
        confirm = ed.content()
        assert "Members by home region" in confirm and "Members by variant" in confirm
        for region in ("Birmingham", "Derby"):
            assert re.search(rf">[^<]*{region}</th><td>\d+</td>", confirm), region
        story.check(ed, "send-confirm")
        ed.get_by_role("button", name=re.compile("^Schedule it for")).click()
        ed.get_by_role("heading", name=f"Progress: {title}").wait_for()
        assert "The issue is scheduled." in ed.content() and "it starts on" in ed.content()
        assert ed.locator('meta[http-equiv="refresh"]').count() == 0, "the page never reloads itself"
        assert "no sending worker is running" in ed.content()  # none runs in this story
        # Without JavaScript: the Refresh button loads the page again.
        ed.get_by_text("The figures are as they were when this page was loaded.").wait_for()
        story.check(ed, "progress-scheduled")
        ed.get_by_role("button", name="Refresh").click()
        ed.get_by_role("heading", name=f"Progress: {title}").wait_for()
        # With it: our script updates the figures in place and offers to stop (WCAG 2.2.2).
        scripted = chromium.new_context(storage_state=ed.context.storage_state(), java_script_enabled=True)
        try:
            live = scripted.new_page()
            live.goto(ed.url)
            live.get_by_text("The figures update by themselves every 5 seconds.").wait_for()
            with live.expect_response(lambda r: r.url.endswith("/progress.json")) as fetched:
                pass
            assert fetched.value.ok
            live.get_by_role("button", name="Stop updating").click()
            live.get_by_text("The figures no longer update by themselves: use Refresh.").wait_for()
        finally:
            scripted.close()

        # 7. Its time comes; a worker sends it.
        with desk.db.session() as s:
            campaign = s.scalars(select(Campaign).where(Campaign.slug == slug)).one()
            assert campaign.status == "scheduled" and campaign.scheduled_at == when.astimezone(UTC)
        assert start_due(desk.db, now=when.astimezone(UTC)) == [slug]
        status = run_worker_until_done(desk, slug)
        assert status.status == "sent" and status.counts.get("sent") == status.total > 0

        # 8. The progress and report pages show the counts.
        ed.goto(f"{base}/desk/issues/{slug}/progress")
        assert ed.locator("#sent").inner_text() == f"{status.total:,}"
        assert ed.locator("#failed").inner_text() == "0" and ed.locator("#deferred").inner_text() == "0"
        story.check(ed, "progress-sent")
        ed.get_by_role("link", name="The report of this issue").click()
        ed.get_by_role("heading", name="What this issue did").wait_for()
        report = ed.content()
        assert f"{status.total:,}" in report and "<svg" in report
        story.check(ed, "report")
    finally:
        story.close()

    # The event went to Birmingham's members, and not to Derby's.
    received = messages_by_region(desk, slug)
    assert received.get("birmingham") and received.get("derby")
    assert all(EVENT in text for text in received["birmingham"])
    assert not any(EVENT in text for text in received["derby"])
    assert sum(len(v) for v in received.values()) == status.total
    # The desk told each person what was theirs: the editor of the new event, its sender of its fate.
    assert any(
        s.startswith(f"New event in the Central England Network inbox: {EVENT}")
        for s in subjects_to(desk, ED)
    )
    assert "Your event is in the Central England Network newsletter" in subjects_to(desk, BEA)
    shots = sorted(p.name for p in artefacts.glob(f"story-{backend}-*.png"))
    assert len(shots) == len(story.shots) and set(shots) == set(story.shots)
    assert any(s.endswith("-phone.png") for s in shots) and any(s.endswith("-desktop.png") for s in shots)
