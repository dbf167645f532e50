"""The desk as a library (``mailer.desk``), called from Python with no web request, on SQLite and
PostgreSQL: a person with a role, a sign-in link turned into a session, a contribution through
the inbox into an issue's file, and an approval bound to the issue's content."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from support.desk import ISSUE, workspace

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import (
    approvals,
    contribution_forms,
    inbox,
    issuefile,
    issues,
    notifications,
    people,
    sessions,
)
from mailer.desk import forms as desk_forms
from mailer.desk.approvals import ApprovalRefused
from mailer.forms import read
from mailer.issue import load_campaign
from mailer.settings import Settings

__all__ = ["workspace"]  # fixture

NOW = datetime(2025, 11, 20, 9, 0, tzinfo=UTC)
CE = "central-england"


def add(
    db: Database, settings: Settings, shape: Shape, email: str, role: str, region: str = ""
) -> people.Person:
    checked = people.check_role(shape, settings, role, CE, region)
    with db.session() as s:
        return people.add(s, email, checked, by=None, now=NOW).person


def test_a_person_with_a_role_and_what_it_lets_them_do(
    db: Database, settings: Settings, shape: Shape
) -> None:
    bea = add(db, settings, shape, "Bea@Example.org", "contributor", "birmingham")
    assert bea.email == "bea@example.org" and [r.role for r in bea.roles] == ["contributor"]
    assert people.can(bea, "submit", CE, "birmingham", shape=shape)
    assert not people.can(bea, "review", CE) and not people.can(bea, "submit", "kent")
    with db.session() as s:
        assert people.find(s, "bea@example.org").id == bea.id
        admin = people.add(
            s, "root@example.org", people.check_role(shape, settings, "admin"), by=None, now=NOW
        )
        (role,) = bea.roles
        assert people.take_role(s, role.id, by=admin.person, now=NOW) == "done"
        assert people.take_role(s, role.id, by=admin.person, now=NOW) == "missing"
        after = people.person(s, bea.id)
        assert after is not None and after.roles == ()


def test_a_sign_in_link_becomes_a_session_once(db: Database, settings: Settings, shape: Shape) -> None:
    ed = add(db, settings, shape, "ed@example.org", "editor")
    with db.session() as s:
        assert sessions.mail_link(s, "nobody@example.org", now=NOW) is None
        token = sessions.mail_link(s, "ed@example.org", now=NOW)
    assert token is not None
    notice = notifications.sign_in_link(settings, "ed@example.org", token)
    assert notice.to == "ed@example.org" and notice.context["sign_in_url"].endswith(f"/desk/sign-in/{token}")
    with db.session() as s:
        value = sessions.start_with_link(s, token, now=NOW, user_agent="test")
        assert value is not None
        assert sessions.start_with_link(s, token, now=NOW) is None, "a link works once"
        current = sessions.lookup(s, value, now=NOW + timedelta(minutes=1))
        assert current is not None and current.user_id == ed.id
        sessions.sign_out(s, current.id, by=ed.id, email=ed.email, now=NOW)
        assert sessions.lookup(s, value, now=NOW) is None
    with db.session() as s:
        late = sessions.mail_link(s, "ed@example.org", now=NOW)
        assert late is not None
        assert (
            sessions.start_with_link(s, late, now=NOW + sessions.LINK_LIFETIME + timedelta(seconds=1)) is None
        )


def test_a_contribution_goes_through_the_inbox_into_the_issue_file(
    db: Database, settings: Settings, shape: Shape
) -> None:
    bea = add(db, settings, shape, "bea@example.org", "contributor", "birmingham")
    ed = add(db, settings, shape, "ed@example.org", "editor")
    today = date.today()
    regions = contribution_forms.regions_for(bea, shape, settings, CE)
    assert regions == ["birmingham"]
    raw = {
        "title": "Birmingham vigil",
        "region": "birmingham",
        "date": (today + timedelta(days=30)).isoformat(),
        "start_time": "18:30",
        "place": "Victoria Square",
        "booking_link": "javascript:alert(1)",
    }
    refused = contribution_forms.check_event(raw, shape, regions, today)
    assert not refused.ok and set(refused.errors) == {"booking_link"}
    checked = contribution_forms.check_event({**raw, "booking_link": ""}, shape, regions, today)
    assert checked.ok, checked.errors
    with db.session() as s:
        row_id = inbox.submit(s, CE, checked, by=bea.id, now=NOW)
        (entry,) = inbox.listed(s, CE, status="new")
        assert entry.id == row_id and entry.title == "Birmingham vigil"
        assert inbox.claim(s, CE, row_id, by=ed.id, now=NOW, status="accepted") == "done"
        assert inbox.claim(s, CE, row_id, by=ed.id, now=NOW, status="declined") == "decided"
    version, event = inbox.write_into_issue(
        settings.workspace, shape, ISSUE, "event", "calendar", checked.entry
    )
    with db.session() as s:
        inbox.accepted(
            s,
            row_id,
            slug=ISSUE,
            issue_title="",
            placed="calendar",
            event=event,
            by=ed.id,
            now=NOW,
            version=version,
        )
        assert issuefile.last_editor(s, ISSUE) == ed.id
        assert [(e.id, e.event.title) for e in inbox.accepted_events(s)] == [(row_id, "Birmingham vigil")]
    calendar = load_campaign(settings.workspace, ISSUE, shape).issue.calendar
    assert calendar[-1].title == "Birmingham vigil" and calendar[-1].regions == ["birmingham"]


def test_an_approval_is_bound_to_the_content(db: Database, settings: Settings, shape: Shape) -> None:
    ed = add(db, settings, shape, "ed@example.org", "editor")
    ann = add(db, settings, shape, "ann@example.org", "approver")
    with db.session() as s:
        issue = approvals.resolve(s, settings, shape, ISSUE)
        assert issues.status(s, settings, shape, ISSUE) == "draft"
        with pytest.raises(ApprovalRefused):
            approvals.approve(s, issue, ann, seen="not what is there", now=NOW)
        approvals.approve(s, issue, ann, seen=issue.fingerprint, now=NOW)
        assert issues.status(s, settings, shape, ISSUE) == "approved"
    path: Path = settings.workspace / "campaigns" / ISSUE / "issue.yaml"
    edited = path.read_text(encoding="utf-8").replace("preheader: Peace Week", "preheader: Now Peace Week", 1)
    path.write_text(edited, encoding="utf-8")
    with db.session() as s:
        issues.record_saved(s, ISSUE, issuefile.version_of(edited), by=ed.id, now=NOW)
        assert issues.status(s, settings, shape, ISSUE) == "edited", "an edit after approval undoes it"
        again = approvals.resolve(s, settings, shape, ISSUE)
        assert again.fingerprint != issue.fingerprint
        assert approvals.may_approve(s, ann, again) and not approvals.may_approve(s, ed, again)


def test_the_desk_forms_refuse_at_their_fields(shape: Shape) -> None:
    """Pure checks: no database. Each wrong field gets its own sentence, all at once."""
    got = read(desk_forms.NewIssueForm, {"title": "", "slug": "Not A Slug", "date": "2026-02-30"})
    assert set(got.errors) == {"title", "slug", "date"} and got.values["slug"] == "Not A Slug"
    form = read(
        desk_forms.NewIssueForm, {"title": "January", "slug": "2026-01-x", "date": "2026-01-05"}
    ).checked()
    assert (form.slug, form.date) == ("2026-01-x", date(2026, 1, 5))
    item = {
        "title": "Stall",
        "highlight": "",
        "body": "Text",
        "region": "birmingham",
        "link_text_1": "Our page",
    }
    refused = contribution_forms.check_item({**item, "interests": ["unicorns"]}, shape, ["birmingham"])
    assert set(refused.errors) == {"highlight", "link_url_1", "interests"}
    assert refused.values["interests"] == [], "an unknown interest is not shown again"
    fine = contribution_forms.check_item(
        {**item, "highlight": "our stall", "link_url_1": "https://example.org/"}, shape, ["birmingham"]
    )
    assert fine.ok and fine.entry["links"] == [{"text": "Our page", "url": "https://example.org/"}]
