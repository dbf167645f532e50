"""The desk's approve, send, progress and report pages against hostile requests, on both databases.

Hostile issue names in every path (traversal, NUL, newlines, very long, upper case, non-ASCII);
every hostile form value of ``http/form-values.txt`` in every field of every form of these pages
(``fingerprint``, ``when``, ``at``, ``confirm``), posted with a valid CSRF value by a signed-in
admin so that they reach the deepest code, against an approved issue. What must happen: a page
below 500, nothing approved but by its own form, nothing sent or scheduled, no mail, and nothing
stored that holds a control character.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from support.desk import ISSUE, Desk, clock, csrf_of, demo_desk, form_of, sign_in, workspace
from support.hostile import form_values

from mailer.models import Approval, AuditEntry, Campaign

__all__ = ["clock", "demo_desk", "workspace"]  # fixtures

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
PAGES = f"/desk/issues/{ISSUE}"
SLUGS = [
    "..",
    "../../etc/passwd",
    "%2e%2e%2f%2e%2e",
    "2025-12-central-england%00",
    "2025-12-central-england%0a",
    "2025-12-CENTRAL-ENGLAND",
    "a" * 5000,
    "-",
    "caf%C3%A9",
    "%FF%FE",
    "2025-12-central-england.yaml",
]


def counts(desk: Desk) -> tuple[int, int, int]:
    with desk.db.session() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Campaign)) or 0),
            int(s.scalar(select(func.count()).select_from(Approval)) or 0),
            len(desk.smtp.messages),
        )


def test_hostile_issue_names(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add("root@example.org", "admin")
    with desk.client() as client:
        sign_in(desk, client, "root@example.org")
        csrf = csrf_of(client.get("/desk/").text)
        before = counts(desk)
        for slug in SLUGS:
            for page in ("approve", "send", "progress", "report"):
                response = client.get(f"/desk/issues/{slug}/{page}")
                assert response.status_code < 500, (slug, page)
                assert response.status_code != 200, (slug, page)
            for action in (
                "approve",
                "withdraw",
                "ask-approval",
                "test-send",
                "send",
                "send/confirm",
                "pause",
                "resume",
                "cancel",
            ):
                response = client.post(
                    f"/desk/issues/{slug}/{action}", data={"csrf": csrf, "when": "now", "confirm": "yes"}
                )
                assert response.status_code < 500 and response.status_code != 303, (slug, action)
        assert counts(desk) == before


@pytest.mark.slow
def test_hostile_form_values(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add("root@example.org", "admin")
    desk.add("ann@example.org", "approver", "central-england")
    with desk.client() as ann:
        sign_in(desk, ann, "ann@example.org")
        page = ann.get(f"{PAGES}/approve")
        assert ann.post(f"{PAGES}/approve", data=form_of(page.text, f"{PAGES}/approve")).status_code == 303
    with desk.client() as client:
        sign_in(desk, client, "root@example.org")
        send_page = client.get(f"{PAGES}/send")
        csrf = csrf_of(send_page.text)
        real = form_of(send_page.text, f"{PAGES}/send")
        assert real["csrf"] == csrf
        before = counts(desk)
        for attacks, value in form_values():
            for action, data in (
                ("approve", {"fingerprint": value}),
                ("send", {"when": value, "at": value}),
                ("send", {"when": "later", "at": value}),
                ("send/confirm", {"when": "later", "at": value, "fingerprint": value}),
                ("send/confirm", {"when": value, "at": value, "fingerprint": value}),
                ("cancel", {"confirm": value}),
                ("pause", {"x": value}),
            ):
                response = client.post(f"{PAGES}/{action}", data={"csrf": csrf, **data})
                assert response.status_code < 500, (attacks, action, response.status_code)
                assert response.status_code != 303, (attacks, action)
        assert counts(desk) == before, "nothing approved, sent or scheduled, no mail"
    with desk.db.session() as s:
        for action, obj, detail in s.execute(select(AuditEntry.action, AuditEntry.object, AuditEntry.detail)):
            assert not CONTROL.search(action + obj + detail)


def test_hostile_copy_choices_and_changes_on_the_approve_page(demo_desk: Desk) -> None:
    """Every hostile value as the approve page's ``copy`` and ``width`` (a page with the largest
    variant, or a plain refusal; never a 500); markup in an edited title is shown as text in the
    list of changes."""
    desk = demo_desk
    desk.add("root@example.org", "admin")
    editor = desk.add("ed@example.org", "editor", "central-england")
    with desk.client() as client:
        sign_in(desk, client, "root@example.org")
        before = counts(desk)
        for what, value in form_values():
            if len(value) > 8000:
                continue  # longer than a URL can be: the client refuses it before the server sees it
            for name in ("copy", "width"):
                response = client.get(f"{PAGES}/approve", params={name: value})
                assert response.status_code in (200, 400), (name, what)  # 400: refused before the page
                assert response.status_code == 400 or 'id="copy-choice"' in response.text
        assert counts(desk) == before
        page = client.get(f"{PAGES}/approve")
        assert client.post(f"{PAGES}/approve", data=form_of(page.text, f"{PAGES}/approve")).status_code == 303
        path = desk.settings.workspace / "campaigns" / ISSUE / "issue.yaml"
        path.write_text(
            path.read_text(encoding="utf-8").replace(
                'title: "Peace Week: 8 to 14 December"', 'title: "Peace <script>alert(1)</script> Week"'
            ),
            encoding="utf-8",
        )
        from mailer.desk.issuefile import record_edit, version_of

        with desk.db.session() as s:
            record_edit(s, ISSUE, editor, version_of(path.read_bytes()))
        changed = client.get(f"{PAGES}/approve")
        assert changed.status_code == 200 and "<script>alert(1)" not in changed.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in changed.text
