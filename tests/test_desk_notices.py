"""The desk tells each person what is theirs, by mail, and lists what waits for them; a new person
gets no role until one is chosen, and making an admin is confirmed first, naming its scope.

Over HTTP against the desk app on the demo workspace, mails at a real SMTP server, both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime

from support.desk import (
    ISSUE,
    Desk,
    clock,
    csrf_of,
    demo_desk,
    form_of,
    link_from,
    sign_in_by_link,
    workspace,
)

from mailer.desk import notifications, people
from mailer.desk.issuefile import record_edit, version_of
from mailer.desk.waiting import waiting_for
from mailer.errors import UnknownName

__all__ = ["clock", "demo_desk", "workspace"]  # fixtures

ROOT, ED, ANN, AMY, BEA = (
    "root@example.org",
    "ed@example.org",
    "ann@example.org",
    "amy@example.org",
    "bea@example.org",
)
PAGES = f"/desk/issues/{ISSUE}"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def subjects(desk: Desk, address: str, count: int = 0) -> list[str]:
    return [str(m["Subject"]) for m in desk.mails_to(address, count, timeout=5.0 if count else 0.0)]


def test_a_new_person_gets_no_role_until_one_is_chosen(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ROOT, "admin")
    with desk.client() as admin:
        sign_in_by_link(desk, admin, ROOT)
        page = admin.get("/desk/people")
        form = form_of(page.text, "/desk/people/add")
        assert '<option value="" selected>No role yet</option>' in page.text, "no role by default"
        added = admin.post("/desk/people/add", data={**form, "email": "new@example.org"})
        assert added.status_code == 303 and added.headers["location"] == "/desk/people?done=added-no-role"
    with desk.db.session() as s:
        assert people.find(s, "new@example.org").roles == ()
    assert subjects(desk, "new@example.org") == [], "no role, no invitation"


def test_making_an_admin_is_confirmed_and_names_its_scope(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ROOT, "admin")
    with desk.client() as admin:
        sign_in_by_link(desk, admin, ROOT)
        csrf = csrf_of(admin.get("/desk/people").text)
        asked = admin.post(
            "/desk/people/add", data={"csrf": csrf, "email": AMY, "role": "admin", "network": "kent"}
        )
        assert asked.status_code == 200 and "Make amy@example.org an admin?" in asked.text
        assert "Admin of Kent Network" in asked.text
        with desk.db.session() as s:
            assert people.by_email(s, AMY) is None, "nothing is changed before the confirmation"
        done = admin.post("/desk/people/add", data=form_of(asked.text, "/desk/people/add"))
        assert done.status_code == 303 and done.headers["location"] == "/desk/people?done=added"
    with desk.db.session() as s:
        assert [r.as_dict() for r in people.find(s, AMY).roles] == [
            {"role": "admin", "network": "kent", "region": ""}
        ]
    # The invitation names the role and signs her in.
    invitation = desk.mails_to(AMY, 1)[-1]
    assert str(invitation["Subject"]) == "You are on the Kent Network desk: Admin of Kent Network"
    with desk.client() as amy:
        path = link_from(invitation)
        page = amy.get(path)
        assert amy.post(path, data={"csrf": csrf_of(page.text)}).headers["location"] == "/desk/"
        assert "Kent Network" in amy.get("/desk/").text


def test_contributions_tell_the_reviewers_and_then_their_sender(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ED, "editor", "central-england", name="Ed Editor")
    quiet = desk.add("quiet@example.org", "editor", "central-england")
    desk.add("kent-ed@example.org", "editor", "kent")
    desk.add(BEA, "contributor", region="birmingham")
    with desk.db.session() as s:
        notifications.choose(s, quiet, ["contribution-received"], now=NOW)
    with desk.client() as bea:
        sign_in_by_link(desk, bea, BEA)
        url = "/desk/networks/central-england/contribute/item"
        form = form_of(bea.get(url).text, url)
        fields = {"title": "Letters to the MP", "body": "Write to your MP this week.", "region": "birmingham"}
        sent = bea.post(url, data={**form, **fields, "highlight": "write to your MP"})
        assert sent.status_code == 303, sent.text
    assert subjects(desk, ED, 1) == ["New news item in the Central England Network inbox: Letters to the MP"]
    assert subjects(desk, "quiet@example.org") == [], "turned off"
    assert subjects(desk, "kent-ed@example.org") == [], "another network's editor"
    assert subjects(desk, BEA) == [], "not its own sender"

    with desk.client() as ed:
        sign_in_by_link(desk, ed, ED)
        home = ed.get("/desk/")
        assert "1 new contribution to review" in home.text, "waiting for the editor"


def test_asking_for_approval_waits_for_the_approvers_and_approving_tells_the_senders(
    demo_desk: Desk,
) -> None:
    desk = demo_desk
    ed = desk.add(ED, "editor", "central-england", name="Ed Editor")
    desk.add(ANN, "approver", "central-england", name="Ann Approver")
    desk.add("kent-ann@example.org", "approver", "kent")
    issue = desk.settings.workspace / "campaigns" / ISSUE / "issue.yaml"
    with desk.db.session() as s:
        record_edit(s, ISSUE, ed, version_of(issue.read_bytes()))
    with desk.client() as editor, desk.client() as approver:
        sign_in_by_link(desk, editor, ED)
        sign_in_by_link(desk, approver, ANN)
        page = editor.get(f"{PAGES}/approve")
        assert "Ask the approvers to approve it" in page.text
        asked = editor.post(f"{PAGES}/ask-approval", data=form_of(page.text, f"{PAGES}/ask-approval"))
        assert asked.status_code == 303 and asked.headers["location"] == f"{PAGES}/approve?done=asked"
        [subject] = subjects(desk, ANN, 1)
        assert subject.startswith("Please approve ")
        assert subjects(desk, "kent-ann@example.org") == []
        assert subjects(desk, ED) == [], "the editor who asked, and edited it last, is not asked"

        home = approver.get("/desk/")
        assert "An issue waits for your approval" in home.text
        assert f'href="{PAGES}/approve"' in home.text
        assert "An issue waits for your approval" not in editor.get("/desk/").text

        approve_page = approver.get(f"{PAGES}/approve")
        done = approver.post(f"{PAGES}/approve", data=form_of(approve_page.text, f"{PAGES}/approve"))
        assert done.status_code == 303
        assert any(s.endswith(" is approved") for s in subjects(desk, ED, 1))
        assert "An issue waits for your approval" not in approver.get("/desk/").text
        assert "An approved issue is ready to send" in editor.get("/desk/").text


def test_each_person_chooses_their_notices(demo_desk: Desk) -> None:
    desk = demo_desk
    ed = desk.add(ED, "editor", "central-england")
    with desk.client() as client:
        sign_in_by_link(desk, client, ED)
        home = client.get("/desk/")
        form = form_of(home.text, "/desk/notifications")
        assert 'name="on" value="sent" checked' in home.text
        # Untick everything but "sent": a checkbox not posted is off.
        response = client.post("/desk/notifications", data={"csrf": form["csrf"], "on": ["sent"]})
        assert response.status_code == 303
        after = client.get("/desk/")
        assert 'name="on" value="sent" checked' in after.text
        assert 'name="on" value="approved" checked' not in after.text
    with desk.db.session() as s:
        assert notifications.turned_off(s, ed) == set(notifications.KINDS) - {"sent"}
        try:
            notifications.choose(s, ed, ["everything"], now=NOW)
        except UnknownName as exc:
            assert "unknown kind of notification" in exc.message
        else:
            raise AssertionError("an unknown kind is refused")
        assert waiting_for(s, people.find(s, ED), {"central-england": "central-england"}) == []
