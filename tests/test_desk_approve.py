"""Approving and sending an issue on the desk, over HTTP, on the demo workspace and both databases.

An approver who did not edit the issue last approves it, bound to the issue file and its audience
as resolved; any later edit (or a change in who it reaches) voids the approval; an editor
test-sends to herself (the mail reaches the SMTP server), then sends or schedules once approved,
after seeing the counts per region and variant; the web only queues the campaign, a worker sends
it; progress with pause, resume and cancel; the report. Every new form refuses a post without its
CSRF value (403), and every action is in the audit log.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.desk import (
    ISSUE,
    Desk,
    clock,
    csrf_of,
    demo_desk,
    form_of,
    run_worker_until_done,
    sign_in,
    workspace,
)

from mailer.audience.importer import Options, import_csv
from mailer.desk import approvals
from mailer.desk.issuefile import record_edit, version_of
from mailer.models import Approval, AuditEntry, Campaign, Delivery
from mailer.sending import campaign_status, start_due

__all__ = ["clock", "demo_desk", "workspace"]  # fixtures

ED, ANN, ROOT = "ed@example.org", "ann@example.org", "root@example.org"
PAGES = f"/desk/issues/{ISSUE}"


def people_of(desk: Desk) -> dict[str, int]:
    return {
        ED: desk.add(ED, "editor", "central-england", name="Ed Editor"),
        ANN: desk.add(ANN, "approver", "central-england", name="Ann Approver"),
    }


def issue_file(desk: Desk) -> Path:
    return desk.settings.workspace / "campaigns" / ISSUE / "issue.yaml"


def edited_by(desk: Desk, user_id: int) -> None:
    """``user_id`` saved the issue on the desk (the row the compose page writes)."""
    with desk.db.session() as s:
        record_edit(s, ISSUE, user_id, version_of(issue_file(desk).read_bytes()))


def actions(desk: Desk) -> list[str]:
    with desk.db.session() as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def campaign_count(desk: Desk) -> int:
    with desk.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Campaign)) or 0)


def approve(desk: Desk, client: object) -> None:
    page = client.get(f"{PAGES}/approve")  # type: ignore[attr-defined]
    assert page.status_code == 200 and "Approve this issue" in page.text
    done = client.post(f"{PAGES}/approve", data=form_of(page.text, f"{PAGES}/approve"))  # type: ignore[attr-defined]
    assert done.status_code == 303, done.text


@pytest.mark.slow
def test_approve_then_send_through_the_workers(demo_desk: Desk) -> None:
    desk = demo_desk
    ids = people_of(desk)
    edited_by(desk, ids[ED])
    with desk.client() as ann, desk.client() as ed:
        sign_in(desk, ann, ANN)
        sign_in(desk, ed, ED)

        before = ed.get(f"{PAGES}/send")
        assert before.status_code == 200 and "Not approved yet" in before.text
        assert "Birmingham" in before.text and "Derby" in before.text, "the counts per region"
        assert f'action="{PAGES}/send"' not in before.text, "no send form before approval"
        refused = ed.post(f"{PAGES}/send", data={"csrf": csrf_of(before.text), "when": "now"})
        assert refused.status_code == 409 and campaign_count(desk) == 0

        page = ann.get(f"{PAGES}/approve")
        assert page.status_code == 200
        assert "Members by home region" in page.text and "Members by variant" in page.text
        approve(desk, ann)
        assert "Approved" in ann.get(f"{PAGES}/approve").text

        send_page = ed.get(f"{PAGES}/send")
        assert "Approved</strong> by Ann Approver" in send_page.text
        chosen = ed.post(f"{PAGES}/send", data={**form_of(send_page.text, f"{PAGES}/send"), "when": "now"})
        assert chosen.status_code == 200, chosen.text
        assert "Send it now to" in chosen.text
        assert "Members by home region" in chosen.text and "Birmingham" in chosen.text
        assert campaign_count(desk) == 0, "nothing is sent before confirming"
        members = int(re.search(r"Send it now to ([\d,]+) member", chosen.text).group(1).replace(",", ""))  # type: ignore[union-attr]

        sent = ed.post(f"{PAGES}/send/confirm", data=form_of(chosen.text, f"{PAGES}/send/confirm"))
        assert sent.status_code == 303 and sent.headers["location"] == f"{PAGES}/progress?live=1&done=queued"
        status = campaign_status(desk.db, desk.shape, ISSUE)
        assert status.status == "sending" and status.counts.get("pending") == members
        assert status.counts.get("sent", 0) == 0, "the web queued it; it did not send"

        progress = ed.get(sent.headers["location"])
        assert progress.status_code == 200
        # No reload: our script fetches the figures, and a Refresh button works without it.
        assert 'http-equiv="refresh"' not in progress.text
        assert '<script src="/desk/progress.js" defer></script>' in progress.text
        assert "script-src 'self'" in progress.headers["content-security-policy"]
        refresh = r'<form method="get" action="[^"]+/progress"[^>]*>\s*<button[^>]*>Refresh<'
        assert re.search(refresh, progress.text)
        assert "no sending worker is running" in progress.text  # nobody runs one in this test
        assert "Pause" in progress.text and "Cancel sending" in progress.text
        figures = ed.get(f"{PAGES}/progress.json")
        assert figures.headers["content-type"] == "application/json"
        assert figures.json()["waiting"] == members and figures.json()["live"] is True
        assert figures.json()["no_worker"].startswith("Nothing is going out yet")
        assert ed.get("/desk/progress.js").headers["content-type"].startswith("text/javascript")

        done = run_worker_until_done(desk, ISSUE)
        assert done.status == "sent" and done.counts.get("sent") == members
        progress = ed.get(f"{PAGES}/progress")
        assert "progress.js" not in progress.text and "no sending worker" not in progress.text
        assert re.search(rf'id="sent">{members:,}<', progress.text)

        report = ed.get(f"{PAGES}/report")
        assert report.status_code == 200
        assert "What this issue did" in report.text and "<svg" in report.text
        assert f"{members:,}" in report.text
    got = actions(desk)
    assert "issue.approve" in got and "issue.send" in got
    assert got.index("issue.approve") < got.index("issue.send")


def test_an_editor_cannot_approve_her_own_issue(demo_desk: Desk) -> None:
    desk = demo_desk
    ed = desk.add(ED, "editor", "central-england")
    desk.add(ED, "approver", "central-england")
    root = desk.add(ROOT, "admin")
    edited_by(desk, ed)
    with desk.client() as client:
        sign_in(desk, client, ED)
        page = client.get(f"{PAGES}/approve")
        assert page.status_code == 200
        assert "You edited this issue last" in page.text and "Approve this issue" not in page.text
        with desk.db.session() as s:
            issue = approvals.resolve(s, desk.settings, desk.shape, ISSUE)
        refused = client.post(
            f"{PAGES}/approve", data={"csrf": csrf_of(page.text), "fingerprint": issue.fingerprint}
        )
        assert refused.status_code == 403
    with desk.client() as admin:  # an admin who edited it last cannot either
        edited_by(desk, root)
        sign_in(desk, admin, ROOT)
        page = admin.get(f"{PAGES}/approve")
        assert "You edited this issue last" in page.text
        refused = admin.post(
            f"{PAGES}/approve", data={"csrf": csrf_of(page.text), "fingerprint": issue.fingerprint}
        )
        assert refused.status_code == 403
    with desk.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Approval)) == 0
    assert "issue.approve" not in actions(desk)


def test_an_edit_after_approval_voids_it(demo_desk: Desk) -> None:
    desk = demo_desk
    ids = people_of(desk)
    edited_by(desk, ids[ED])
    with desk.client() as ann, desk.client() as ed:
        sign_in(desk, ann, ANN)
        sign_in(desk, ed, ED)
        approve(desk, ann)
        approved = ed.get(f"{PAGES}/send")
        assert "Approved</strong>" in approved.text
        chosen = ed.post(f"{PAGES}/send", data={**form_of(approved.text, f"{PAGES}/send"), "when": "now"})
        confirm = form_of(chosen.text, f"{PAGES}/send/confirm")

        path = issue_file(desk)  # an edit: a comment is enough
        path.write_text(path.read_text(encoding="utf-8") + "# one more line\n", encoding="utf-8")
        edited_by(desk, ids[ED])

        void = ed.get(f"{PAGES}/send")
        assert "Edited since approval" in void.text and "Approved</strong>" not in void.text
        assert f'action="{PAGES}/send"' not in void.text
        late = ed.post(f"{PAGES}/send/confirm", data=confirm)
        assert late.status_code == 409 and "Nothing was sent" in late.text
        assert campaign_count(desk) == 0
        assert "Edited since approval" in ann.get(f"{PAGES}/approve").text

        # Approved again, then someone joins in Birmingham: who it reaches changed, so it is void too.
        approve(desk, ann)
        assert "Approved</strong>" in ed.get(f"{PAGES}/send").text
        joiner = desk.settings.workspace / "joiner.csv"
        joiner.write_text(
            "email,name,postcode,region,interests,consent_source,consent_date\n"
            "new.member@example.org,New Member,B1 1AA,birmingham,,signup,2025-11-30\n",
            encoding="utf-8",
        )
        with desk.db.session() as s:
            import_csv(s, joiner, desk.shape, options=Options(consent="test members agreed"))
        assert "Edited since approval" in ed.get(f"{PAGES}/send").text


def test_an_approval_is_of_what_the_approver_saw(demo_desk: Desk) -> None:
    desk = demo_desk
    people_of(desk)
    with desk.client() as ann:
        sign_in(desk, ann, ANN)
        page = ann.get(f"{PAGES}/approve")
        seen = form_of(page.text, f"{PAGES}/approve")
        path = issue_file(desk)
        path.write_text(
            path.read_text(encoding="utf-8").replace("Peace Week:", "Peace week:"), encoding="utf-8"
        )
        refused = ann.post(f"{PAGES}/approve", data=seen)
        assert refused.status_code == 409 and "changed after you opened it" in refused.text
        with desk.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Approval)) == 0

        approve(desk, ann)
        page = ann.get(f"{PAGES}/approve")
        withdrawn = ann.post(f"{PAGES}/withdraw", data=form_of(page.text, f"{PAGES}/withdraw"))
        assert withdrawn.status_code == 303
        assert "Not approved yet" in ann.get(f"{PAGES}/approve").text
    got = actions(desk)
    assert got.count("issue.approve") == 1 and "issue.approval.withdraw" in got


def test_a_test_send_goes_to_oneself_only(demo_desk: Desk) -> None:
    desk = demo_desk
    people_of(desk)
    with desk.client() as ed:
        sign_in(desk, ed, ED)
        page = ed.get(f"{PAGES}/send")
        assert "Send me a test" in page.text and ED in page.text
        done = ed.post(
            f"{PAGES}/test-send", data={**form_of(page.text, f"{PAGES}/test-send"), "to": "x@example.org"}
        )
        assert done.status_code == 303 and done.headers["location"] == f"{PAGES}/send?done=test-sent"
        assert "A test copy is on its way to you." in ed.get(done.headers["location"]).text
    mails = [m for m in desk.mails_to(ED, 2) if "[TEST]" in m["Subject"]]
    assert len(mails) == 1 and "Central England Network newsletter" in mails[0]["Subject"]
    assert desk.mails_to("x@example.org", 1, timeout=0.3) == []
    assert campaign_count(desk) == 0, "a test records nothing"
    assert "issue.test-send" in actions(desk)


@pytest.mark.slow
def test_schedule_then_a_worker_starts_it(demo_desk: Desk) -> None:
    desk = demo_desk
    people_of(desk)
    with desk.client() as ann, desk.client() as ed:
        sign_in(desk, ann, ANN)
        sign_in(desk, ed, ED)
        approve(desk, ann)
        page = ed.get(f"{PAGES}/send")
        past = ed.post(
            f"{PAGES}/send",
            data={**form_of(page.text, f"{PAGES}/send"), "when": "later", "at": "2020-01-01T08:00"},
        )
        assert past.status_code == 400 and "has passed" in past.text
        empty = ed.post(
            f"{PAGES}/send", data={**form_of(page.text, f"{PAGES}/send"), "when": "later", "at": ""}
        )
        assert empty.status_code == 400 and "Give the day and time" in empty.text
        when = (datetime.now(desk.settings.zone) + timedelta(days=1)).replace(second=0, microsecond=0)
        at = when.strftime("%Y-%m-%dT%H:%M")
        chosen = ed.post(
            f"{PAGES}/send", data={**form_of(page.text, f"{PAGES}/send"), "when": "later", "at": at}
        )
        assert chosen.status_code == 200 and "Schedule it for" in chosen.text
        done = ed.post(f"{PAGES}/send/confirm", data=form_of(chosen.text, f"{PAGES}/send/confirm"))
        assert done.status_code == 303 and done.headers["location"].endswith("done=scheduled")
        progress = ed.get(f"{PAGES}/progress")
        assert "scheduled" in progress.text and "it starts on" in progress.text
    with desk.db.session() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert campaign.status == "scheduled"
        assert campaign.scheduled_at == when.astimezone(UTC)
    assert start_due(desk.db, now=when.astimezone(UTC)) == [ISSUE], "its time comes"
    status = run_worker_until_done(desk, ISSUE)
    assert status.status == "sent" and status.counts.get("sent") == status.total > 0
    assert "issue.schedule" in actions(desk)


def test_pause_resume_and_cancel(demo_desk: Desk) -> None:
    desk = demo_desk
    people_of(desk)
    with desk.client() as ann, desk.client() as ed:
        sign_in(desk, ann, ANN)
        sign_in(desk, ed, ED)
        approve(desk, ann)
        page = ed.get(f"{PAGES}/send")
        chosen = ed.post(f"{PAGES}/send", data={**form_of(page.text, f"{PAGES}/send"), "when": "now"})
        ed.post(f"{PAGES}/send/confirm", data=form_of(chosen.text, f"{PAGES}/send/confirm"))
        progress = ed.get(f"{PAGES}/progress")
        assert ann.post(f"{PAGES}/pause", data=form_of(progress.text, f"{PAGES}/pause")).status_code == 403, (
            "an approver does not send"
        )
        paused = ed.post(f"{PAGES}/pause", data=form_of(progress.text, f"{PAGES}/pause"))
        assert paused.status_code == 303
        progress = ed.get(f"{PAGES}/progress")
        assert "paused" in progress.text and 'http-equiv="refresh"' not in progress.text
        resumed = ed.post(f"{PAGES}/resume", data=form_of(progress.text, f"{PAGES}/resume"))
        assert resumed.status_code == 303
        assert campaign_status(desk.db, desk.shape, ISSUE).status == "sending"
        progress = ed.get(f"{PAGES}/progress")
        asked = ed.post(f"{PAGES}/cancel", data=form_of(progress.text, f"{PAGES}/cancel"))
        assert asked.status_code == 200 and "Yes, cancel sending" in asked.text
        assert campaign_status(desk.db, desk.shape, ISSUE).status == "sending", "not before confirming"
        cancelled = ed.post(f"{PAGES}/cancel", data=form_of(asked.text, f"{PAGES}/cancel"))
        assert cancelled.status_code == 303
    with desk.db.session() as s:
        states = set(s.scalars(select(Delivery.status)))
    assert states == {"cancelled"}
    got = actions(desk)
    assert [a for a in got if a.startswith("campaign.")] == [
        "campaign.pause",
        "campaign.resume",
        "campaign.cancel",
    ]


def test_other_networks_and_contributors_cannot_see_or_act(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add("kent-ed@example.org", "editor", "kent")
    desk.add("kent-approver@example.org", "approver", "kent")
    desk.add("bea@example.org", "contributor", region="birmingham")
    with desk.db.session() as s:
        issue = approvals.resolve(s, desk.settings, desk.shape, ISSUE)
    for address in ("kent-ed@example.org", "kent-approver@example.org", "bea@example.org"):
        with desk.client() as client:
            sign_in(desk, client, address)
            csrf = csrf_of(client.get("/desk/").text)
            for path in ("approve", "send"):
                assert client.get(f"{PAGES}/{path}").status_code == 403, (address, path)
            for path, data in (
                ("approve", {"fingerprint": issue.fingerprint}),
                ("withdraw", {}),
                ("test-send", {}),
                ("send", {"when": "now"}),
                ("send/confirm", {"when": "now", "fingerprint": issue.fingerprint}),
            ):
                assert client.post(f"{PAGES}/{path}", data={"csrf": csrf, **data}).status_code == 403
            assert client.get("/desk/issues/no-such-issue/send").status_code == 404
            assert client.get(f"{PAGES}/progress").status_code == 404, "not sent"
    assert campaign_count(desk) == 0
    with desk.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Approval)) == 0
    assert desk.mails_to("kent-ed@example.org", 2, timeout=0.2)[1:] == [], "no test was sent"


def test_every_new_form_without_csrf_gets_403(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ROOT, "admin")
    with desk.db.session() as s:
        issue = approvals.resolve(s, desk.settings, desk.shape, ISSUE)
    posts = {
        "approve": {"fingerprint": issue.fingerprint},
        "withdraw": {},
        "ask-approval": {},
        "test-send": {},
        "send": {"when": "now"},
        "send/confirm": {"when": "now", "fingerprint": issue.fingerprint},
        "pause": {},
        "resume": {},
        "cancel": {"confirm": "yes"},
    }
    from mailer.web.desk import sendpage

    mine = {r.path for r in sendpage.routes if "POST" in (r.methods or ())}
    assert mine == {f"/desk/issues/{{slug}}/{p}" for p in posts}, "every POST of these pages is tried"
    with desk.client() as client:
        for signed in (False, True):
            if signed:
                sign_in(desk, client, ROOT)
            before = (actions(desk), len(desk.smtp.messages))
            for path, data in posts.items():
                for csrf in (None, "", "forged-value", "a" * 32):
                    body = dict(data) | ({"csrf": csrf} if csrf is not None else {})
                    response = client.post(f"{PAGES}/{path}", data=body)
                    assert response.status_code == 403, (signed, path, csrf, response.status_code)
            assert (actions(desk), len(desk.smtp.messages)) == before
    assert campaign_count(desk) == 0
