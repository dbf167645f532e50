"""Plain words on the desk's pages, over HTTP on the demo workspace and both databases.

Every desk page any desk test's client gets is checked by ``support.plainwords`` (no command-line
option, no YAML line, no hash, no folder name in a heading); these tests reach the states where the
library's command-line wording used to come through: a schedule in the past (now said at the time
field, not in the banner), a contributor without a region on the people page, an issue file with
errors, and an approver following the issue list (to the approve page, never a 403).
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from support.desk import ISSUE, Desk, clock, demo_desk, form_of, sign_in, workspace
from support.plainwords import problems

from mailer.desk import people, wording
from mailer.errors import InvalidInput, MailerError
from mailer.sending import plan_send

__all__ = ["clock", "demo_desk", "workspace"]  # fixtures

ED, ANN, ROOT = "ed@example.org", "ann@example.org", "root@example.org"
PAGES = f"/desk/issues/{ISSUE}"


def test_the_librarys_command_line_hints_become_the_desks(demo_desk: Desk) -> None:
    desk = demo_desk
    said = []
    for role, network, region in (
        ("contributor", "central-england", ""),
        ("editor", "central-england", "birmingham"),
        ("editor", "", ""),
        ("contributor", "kent", "birmingham"),
    ):
        with pytest.raises(InvalidInput) as caught:
            people.check_role(desk.shape, desk.settings, role, network, region)
        said.append(wording.words(caught.value))
    assert said == [
        "a contributor needs a region (their local group): choose their local group's region",
        "only a contributor has a region: leave the region empty: only a contributor has one",
        "an editor works for one network: choose the network they work for",
        "region 'birmingham' belongs to network 'central-england', not 'kent': "
        "choose the network the region belongs to, or none",
    ]
    with pytest.raises(MailerError) as past:
        plan_send(desk.db, desk.settings, desk.shape, ISSUE, at="2020-01-01 08:00", to_workers=True)
    assert wording.field(past.value) == "at"
    assert "--" in (past.value.problem.hint or ""), "the command line keeps its words"
    assert "--" not in wording.words(past.value) and "send it now" in wording.words(past.value)


def test_a_schedule_in_the_past_is_said_at_the_time_field(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ED, "editor", "central-england")
    desk.add(ANN, "approver", "central-england")
    with desk.client() as ann, desk.client() as ed:
        sign_in(desk, ann, ANN)
        sign_in(desk, ed, ED)
        page = ann.get(f"{PAGES}/approve")
        assert ann.post(f"{PAGES}/approve", data=form_of(page.text, f"{PAGES}/approve")).status_code == 303
        page = ed.get(f"{PAGES}/send")
        past = ed.post(
            f"{PAGES}/send",
            data={**form_of(page.text, f"{PAGES}/send"), "when": "later", "at": "2020-01-01T08:00"},
        )
        assert past.status_code == 400
        at_error = re.search(r'<span class="error" id="at-error">([^<]+)</span>', past.text)
        assert at_error and "has passed" in at_error.group(1), past.text
        assert 'aria-describedby="at-error"' in past.text
        banner = re.search(r'<div class="problem" role="alert">(.*?)</div>', past.text, re.S)
        assert banner and "has passed" not in banner.group(1) and 'href="#at"' in banner.group(1)
        empty = ed.post(
            f"{PAGES}/send", data={**form_of(page.text, f"{PAGES}/send"), "when": "later", "at": ""}
        )
        assert empty.status_code == 400 and 'id="at-error">Give the day and time' in empty.text


def test_a_contributor_without_a_region_is_told_at_the_region(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ROOT, "admin")
    with desk.client() as root:
        sign_in(desk, root, ROOT)
        page = root.get("/desk/people")
        refused = root.post(
            "/desk/people/add",
            data={
                **form_of(page.text, "/desk/people/add"),
                "email": "bea@example.org",
                "name": "Bea",
                "role": "contributor",
                "network": "central-england",
                "region": "",
            },
        )
        assert refused.status_code == 400
        assert (
            "choose their local group&#39;s region" in refused.text
            or "choose their local group's region" in (refused.text)
        )


def test_an_approver_follows_the_issue_list_to_a_page_they_may_see(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ANN, "approver", "central-england")
    with desk.client() as ann:
        sign_in(desk, ann, ANN)
        listed = ann.get("/desk/networks/central-england/issues")
        assert listed.status_code == 200
        links = re.findall(r'<h2 class="card"><a href="([^"]+)">', listed.text)
        assert f"{PAGES}/approve" in links
        for link in links:
            assert ann.get(link).status_code == 200, link


def test_an_issue_with_errors_shows_them_without_file_lines(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ED, "editor", "central-england")
    path = desk.settings.workspace / "campaigns" / ISSUE / "issue.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("start: 2025-12-04 19:30", "start: 2025-13-04 19:30"),
        encoding="utf-8",
    )
    with desk.client() as ed:
        sign_in(desk, ed, ED)
        page = ed.get(f"/desk/issues/{ISSUE}")
        assert page.status_code in (200, 409)
        assert "No problems" not in page.text
        assert problems(page.text) == []
        sent = ed.get(f"{PAGES}/send")
        assert sent.status_code == 409 and "[line" not in sent.text


def test_the_check_finds_each_kind_of_wrong_word() -> None:
    page = (
        "<html><head><title>x</title></head><body><h1>Approve: 2025-12-central-england</h1>"
        "<p>give --region birmingham [line 20]; opened at version 7bd0a9f1c2e4</p>"
        '<a href="/desk/issues/2025-12-central-england/approve?copy=7bd0a9f1c2e4">look</a>'
        "<pre>--not ours</pre></body></html>"
    )
    found = problems(page)
    assert [f.split(":")[0] for f in found] == [
        "a command-line option",
        "a file's line",
        "a hash",
        "a folder name in a heading",
    ], found
    assert problems(f"<h1>Approve: Central England, {datetime(2025, 12, 1):%B %Y}</h1>") == []
