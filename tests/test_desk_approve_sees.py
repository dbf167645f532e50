"""An approver sees what they approve, over HTTP, on the demo workspace and both databases.

The approve page shows the copy each variant of the audience gets (its HTML in the preview's
sandboxed frame, its plain text on the page), chosen with a GET form; after an approval, an edit of
an item's text, an event's time and the audience, it lists exactly those changes (word by word,
"added" and "removed" for screen readers); an approval after a further edit the approver did not
see is refused, with a link to look again.
"""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import func, select
from support.browser import check_page, chromium, pictures, tab
from support.desk import ISSUE, Desk, browser_demo_desk, clock, demo_desk, form_of, sign_in, workspace

from mailer.audience.importer import Options, import_csv
from mailer.desk import approvals, changes, people, sessions
from mailer.desk.issuefile import record_edit, version_of
from mailer.models import Approval

__all__ = ["browser_demo_desk", "chromium", "clock", "demo_desk", "pictures", "tab", "workspace"]  # fixtures

ED, ANN = "ed@example.org", "ann@example.org"
PAGES = f"/desk/issues/{ISSUE}"


def issue_file(desk: Desk) -> Path:
    return desk.settings.workspace / "campaigns" / ISSUE / "issue.yaml"


def edit(desk: Desk, user_id: int, old: str, new: str) -> None:
    path = issue_file(desk)
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with desk.db.session() as s:
        record_edit(s, ISSUE, user_id, version_of(path.read_bytes()))


def copies(page: str) -> dict[str, str]:
    """The variant picker's choices: label (without the count) → value."""
    found = re.search(r'<select id="copy-choice" name="copy">(.*?)</select>', page, re.S)
    assert found, "the page has the variant picker"
    return {
        htmllib.unescape(label).rsplit(" (", 1)[0]: value
        for value, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', found.group(1))
    }


def plain_text(page: str) -> str:
    found = re.search(r'<pre tabindex="0" aria-labelledby="text-heading">(.*?)</pre>', page, re.S)
    assert found, "the page shows the plain text"
    return htmllib.unescape(found.group(1))


def section(page: str, heading: str, end: str) -> str:
    return page[page.index(heading) : page.index(end)]


def visible(fragment: str) -> str:
    return htmllib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)))


def test_the_approver_sees_each_variants_copy(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ANN, "approver", "central-england", name="Ann Approver")
    with desk.client() as ann:
        sign_in(desk, ann, ANN)
        page = ann.get(f"{PAGES}/approve")
        assert page.status_code == 200
        assert "frame-src 'self'" in page.headers["content-security-policy"]
        assert "It has not been approved before" in page.text
        choices = copies(page.text)
        birmingham = next(v for k, v in choices.items() if "Birmingham" in k)
        derby = next(v for k, v in choices.items() if "Derby" in k)

        shown = {}
        for name, key in (("birmingham", birmingham), ("derby", derby)):
            got = ann.get(f"{PAGES}/approve", params={"copy": key})
            assert got.status_code == 200
            text = plain_text(got.text)
            frame = re.search(r'<iframe sandbox="" src="([^"]+)"', got.text)
            assert frame, "the HTML copy in a sandboxed frame"
            html_copy = ann.get(htmllib.unescape(frame.group(1)))
            assert html_copy.status_code == 200 and "sandbox" in html_copy.headers["content-security-policy"]
            shown[name] = (text, html_copy.text)
        assert "Birmingham Group monthly meeting" in shown["birmingham"][0]
        assert "Derby Group meeting" not in shown["birmingham"][0]
        assert "Derby Group meeting" in shown["derby"][0]
        assert "Birmingham Group monthly meeting" not in shown["derby"][0]
        assert "Birmingham Group monthly meeting" in shown["birmingham"][1]
        assert "Derby Group meeting" in shown["derby"][1]
        assert "Birmingham Group monthly meeting" not in shown["derby"][1]

        wide = ann.get(f"{PAGES}/approve", params={"copy": derby, "width": "desktop"})
        assert 'width="1280"' in wide.text and "Show at phone width" in wide.text


def test_the_changes_since_the_last_approval_are_listed(demo_desk: Desk) -> None:
    desk = demo_desk
    ed = desk.add(ED, "editor", "central-england", name="Ed Editor")
    desk.add(ANN, "approver", "central-england", name="Ann Approver")
    with desk.client() as ann:
        sign_in(desk, ann, ANN)
        page = ann.get(f"{PAGES}/approve")
        assert ann.post(f"{PAGES}/approve", data=form_of(page.text, f"{PAGES}/approve")).status_code == 303
        assert "Nothing: it is approved as it is now." in ann.get(f"{PAGES}/approve").text

        edit(desk, ed, "vigils, talks, film screenings", "vigils, talks, film nights")
        edit(desk, ed, "start: 2025-12-04 19:30", "start: 2025-12-04 18:45")
        joiner = desk.settings.workspace / "joiner.csv"
        joiner.write_text(
            "email,name,postcode,region,interests,consent_source,consent_date\n"
            "new.member@example.org,New Member,B1 1AA,birmingham,,signup,2025-11-30\n",
            encoding="utf-8",
        )
        with desk.db.session() as s:
            import_csv(s, joiner, desk.shape, options=Options(consent="test members agreed"))

        page = ann.get(f"{PAGES}/approve")
        assert "Edited since approval" in page.text
        listed = section(page.text, 'id="changes"', 'id="copy"')
        items = re.findall(r"Item (added|removed|moved|changed)", listed)
        assert items == ["changed"], items
        assert "Peace Week: 8 to 14 December" in listed
        assert '<del><span class="visually-hidden">removed: </span>screenings</del>' in listed, listed
        assert '<ins><span class="visually-hidden">added: </span>nights</ins>' in listed
        assert "violations in conflicts" not in listed, "long unchanged text is cut short"
        events = re.findall(r"Event (added|removed|changed): <strong>([^<]+)</strong>", listed)
        assert events == [("changed", "Derby Group meeting")], events
        words = visible(listed)
        assert "Starts" in words and "removed: 19:30" in words and "added: 18:45" in words
        regions = re.findall(r"<li>([^<:]+): ([\d,]+) then, ([\d,]+) now</li>", listed)
        assert [r[0].rsplit(" › ", 1)[-1] for r in regions] == ["Members in all", "Birmingham"], regions
        assert all(int(after) == int(before) + 1 for _label, before, after in regions)
        assert "Event added" not in listed and "Item added" not in listed


def test_an_edit_the_approver_did_not_see_refuses_the_approval(demo_desk: Desk) -> None:
    desk = demo_desk
    ed = desk.add(ED, "editor", "central-england")
    desk.add(ANN, "approver", "central-england")
    with desk.client() as ann:
        sign_in(desk, ann, ANN)
        page = ann.get(f"{PAGES}/approve")
        seen = form_of(page.text, f"{PAGES}/approve")
        edit(desk, ed, "Refugee welcome in Coventry", "Refugees welcome in Coventry")
        refused = ann.post(f"{PAGES}/approve", data=seen)
        assert refused.status_code == 409
        assert "changed after you opened it" in refused.text
        assert f'href="{PAGES}/approve"' in refused.text and "Look at the issue again" in refused.text
        with desk.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Approval)) == 0
        again = ann.get(f"{PAGES}/approve")
        assert "Refugees welcome in Coventry" in plain_text(
            ann.get(
                f"{PAGES}/approve",
                params={"copy": copies(again.text)[next(k for k in copies(again.text) if "Coventry" in k)]},
            ).text
        )
        assert ann.post(f"{PAGES}/approve", data=form_of(again.text, f"{PAGES}/approve")).status_code == 303


def test_compare_reads_moves_additions_and_removals() -> None:
    before = (
        "title: T\nitems:\n  - id: a\n    title: A\n    body: one two three\n"
        "  - id: b\n    title: B\n    body: x\n  - id: c\n    title: C\n    body: y\n"
        "calendar:\n  - title: Fair\n    start: 2025-12-01 10:00\n"
    )
    after = (
        "title: T\n# a note\nitems:\n  - id: b\n    title: B\n    body: x\n  - id: a\n    title: A\n"
        "    body: one two three\n  - id: d\n    title: D\n    body: z\n"
        "calendar:\n  - title: Fair\n    start: 2025-12-01 10:00\n    location: Hall\n  - title: Walk\n"
        "    start: 2025-12-02\n"
    )
    audience = {"audience": "region:x", "total": 3, "by_region": [["X", 3]]}
    found = changes.compare(before, audience, after, audience)
    kinds = sorted((i.kind, i.title) for i in found.items)
    assert kinds == [("added", "D"), ("moved", "A"), ("moved", "B"), ("removed", "C")]
    assert [(e.kind, e.title) for e in found.calendar] == [("changed", "Fair"), ("added", "Walk")]
    assert found.audience is None and not found.issue
    assert changes.compare(before, audience, before + "# only a comment\n", audience).none


@pytest.mark.browser
def test_the_approve_page_in_a_browser(tab: Page, browser_demo_desk: Desk, pictures: Path) -> None:
    """The approve page with its changes and a chosen copy: WCAG checks and axe-core at 375 and
    1280 px, without JavaScript."""
    from support.axe import check_axe

    desk = browser_demo_desk
    ed = desk.add(ED, "editor", "central-england")
    ann = desk.add(ANN, "approver", "central-england", name="Ann Approver")
    with desk.db.session() as s:
        issue = approvals.resolve(s, desk.settings, desk.shape, ISSUE)
        approver = people.person(s, ann)
        assert approver is not None
        approvals.approve(s, issue, approver, seen=issue.fingerprint, now=datetime.now(UTC))
    edit(desk, ed, "vigils, talks, film screenings", "vigils, talks, film nights")
    edit(desk, ed, "start: 2025-12-04 19:30", "start: 2025-12-04 18:45")
    with desk.db.session() as s:
        value = sessions.create(s, ann, now=datetime.now(UTC))
    base = desk.settings.base_url
    tab.context.add_cookies([{"name": sessions.PLAIN_COOKIE, "value": value, "url": base}])
    tab.goto(base + f"{PAGES}/approve")
    tab.get_by_role("heading", name="What changed since the last approval").wait_for()
    check_page(tab, pictures, "desk-approve-changes")
    check_axe(tab, name="desk-approve-changes")
    derby = next(label for label in tab.locator("#copy-choice option").all_inner_texts() if "Derby" in label)
    tab.get_by_label("Show the copy of").select_option(label=derby)
    tab.get_by_role("button", name="Show this copy").click()
    tab.get_by_role("heading", name="As plain text").wait_for()
    assert "Derby Group meeting" in tab.locator("pre").inner_text()
    assert "Derby Group meeting" in tab.frame_locator("iframe").locator("body").inner_text()
    check_page(tab, pictures, "desk-approve-copy")
    check_axe(tab, name="desk-approve-copy")
