"""The desk's send, compose and password forms posted by someone who may not, on both databases.

Every POST of the approve and send pages (``sendpage``), of composing (``compose``) and of the
password form, each with the fields its real form sends, against an approved issue (so that a post
let through would approve, send, schedule, cancel or write the file):

- by nobody (no session cookie), with no CSRF value, a forged one, and the genuine value a
  signed-out browser's pages carry (for nobody): 403 "Please sign in" or "Please try again";
- by a signed-in admin, whose forms would be let through, with no CSRF value, a forged one, the
  value their browser had before signing in, one of their own earlier session (signed out since),
  and one of another signed-in person's browser: 403 "Please try again".

What must happen: 403 each time, and nothing changed: no issue file, approval, campaign, edit, audit
line or mail more than before. These forms are checked by ``desk.common``'s decorators, the one way
every desk form is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.desk import ISSUE, Desk, clock, csrf_of, demo_desk, form_of, sign_in, workspace

from mailer.desk import approvals
from mailer.models import Approval, AuditEntry, Campaign, IssueEdit
from mailer.web.desk import compose, sendpage

__all__ = ["clock", "demo_desk", "workspace"]  # fixtures

ROOT, ANN, OTHER = "root@example.org", "ann@example.org", "other@example.org"
PAGES = f"/desk/issues/{ISSUE}"


def state(desk: Desk) -> tuple[object, ...]:
    """Everything a post let through would change."""
    campaigns = Path(desk.settings.workspace, "campaigns")
    files = sorted((p.as_posix(), p.read_bytes() if p.is_file() else b"") for p in campaigns.rglob("*"))
    with desk.db.session() as s:
        rows = tuple(
            int(s.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Approval, Campaign, IssueEdit, AuditEntry)
        )
    return files, rows, len(desk.smtp.messages)


def forms(fingerprint: str, version: str) -> dict[str, dict[str, str]]:
    """Each form's fields as its page sends them (but the CSRF value), by path."""
    return {
        f"{PAGES}/approve": {"fingerprint": fingerprint},
        f"{PAGES}/withdraw": {},
        f"{PAGES}/ask-approval": {},
        f"{PAGES}/test-send": {},
        f"{PAGES}/send": {"when": "now", "at": ""},
        f"{PAGES}/send/confirm": {"when": "now", "at": "", "fingerprint": fingerprint},
        f"{PAGES}/pause": {},
        f"{PAGES}/resume": {},
        f"{PAGES}/cancel": {"confirm": "yes"},
        PAGES: {"version": version, "title": "Taken over", "action": "save"},
        "/desk/networks/central-england/issues/new": {
            "title": "Taken over",
            "slug": "2026-01-taken-over",
            "date": "2026-01-05",
        },
        "/desk/password": {
            "password": "correct horse battery staple",
            "again": "correct horse battery staple",
        },
    }


@pytest.mark.slow
def test_send_and_compose_forms_refuse_nobody_and_wrong_csrf_values(demo_desk: Desk) -> None:
    desk = demo_desk
    desk.add(ROOT, "admin")
    desk.add(ANN, "approver", "central-england")
    desk.add(OTHER, "admin")
    with desk.client() as ann:
        sign_in(desk, ann, ANN)
        page = ann.get(f"{PAGES}/approve")
        assert ann.post(f"{PAGES}/approve", data=form_of(page.text, f"{PAGES}/approve")).status_code == 303
    with desk.db.session() as s:
        issue = approvals.resolve(s, desk.settings, desk.shape, ISSUE)
        assert approvals.standing(s, ISSUE, issue.fingerprint).approved, "a send would go through"
    posts = forms(issue.fingerprint, issue.version)
    routes = {r.path for r in [*sendpage.routes, *compose.routes] if "POST" in (r.methods or ())}
    named = {"{slug}": ISSUE, "{name}": "central-england"}
    for route in routes:
        for key, value in named.items():
            route = route.replace(key, value)
        assert route in posts, f"{route} is tried here"

    with desk.client() as other:
        sign_in(desk, other, OTHER)
        others_value = csrf_of(other.get("/desk/").text)

    with desk.client() as client:
        anonymous = csrf_of(client.get("/desk/sign-in").text)
        before = state(desk)
        for path, fields in posts.items():
            for csrf in (None, "", "forged-value", "a" * 32, anonymous, others_value):
                data = fields | ({"csrf": csrf} if csrf is not None else {})
                response = client.post(path, data=data)
                assert response.status_code == 403, ("nobody", path, csrf, response.status_code)
                why = "Please sign in" if csrf == anonymous else "Please try again"
                assert why in response.text, ("nobody", path, csrf)
        assert state(desk) == before, "nothing changed for nobody"

        sign_in(desk, client, ROOT)
        earlier = csrf_of(client.get("/desk/").text)
        assert client.post("/desk/sign-out", data={"csrf": earlier}).status_code == 303
        sign_in(desk, client, ROOT)
        own = csrf_of(client.get("/desk/").text)
        assert own != earlier, "a new session, a new value"
        before = state(desk)
        for path, fields in posts.items():
            for csrf in (None, "", "forged-value", "a" * 32, anonymous, earlier, others_value):
                data = fields | ({"csrf": csrf} if csrf is not None else {})
                response = client.post(path, data=data)
                assert response.status_code == 403, ("admin", path, csrf, response.status_code)
                assert "Please try again" in response.text, ("admin", path, csrf)
        assert state(desk) == before, "nothing changed for the admin's wrong values"

        # The same posts with the admin's own value are let through (the fields above are real).
        assert client.post(f"{PAGES}/send", data=posts[f"{PAGES}/send"] | {"csrf": own}).status_code == 200
        saved = client.post(PAGES, data=posts[PAGES] | {"csrf": own})
        assert saved.status_code == 303, saved.text
