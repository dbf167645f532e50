"""The desk's sign-in, sessions, roles and CSRF over HTTP, on the real app and both databases.

Sign-in by the link read from the mail a real aiosmtpd server received; the link works once and for
15 minutes; the page never says whether an address has an account; sessions slide, end at sign-out
and at once when revoked; every desk POST without its CSRF value gets 403; a contributor of one
network can neither open the admins' pages nor act for another network; admins add and remove
roles and sign people out, each in the audit log.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.routing import Route
from support.axe import check_axe
from support.browser import check_page as check_web_page
from support.browser import chromium, pictures, tab
from support.desk import (
    CHECK_MAIL,
    Clock,
    Desk,
    ask_for_link,
    browser_desk,
    clock,
    csrf_of,
    desk,
    link_from,
    networks_workspace,
    sign_in,
)

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import people, sessions
from mailer.models import AuditEntry, DeskSession, SignInLink, User
from mailer.settings import Settings
from mailer.web import create_app
from mailer.web.desk.common import DeskLimits

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["browser_desk", "chromium", "clock", "desk", "networks_workspace", "pictures", "tab"]  # fixtures


@pytest.fixture
def client(desk: Desk) -> Iterator[TestClient]:
    with desk.client() as c:
        yield c


# ---------------------------------------------------------------------------------------------
# Signing in


def test_sign_in_by_the_mailed_link(desk: Desk, client: TestClient) -> None:
    desk.add("ed@example.org", "editor", "central-england", name="Ed Example")
    first = client.get("/desk/")
    assert first.status_code == 303 and first.headers["location"] == "/desk/sign-in"

    response = ask_for_link(client, "  Ed@Example.org ")
    assert response.status_code == 200 and CHECK_MAIL in response.text
    (mail,) = desk.mails_to("ed@example.org")
    assert mail["Subject"].startswith("Your link to sign in")
    assert mail["Auto-Submitted"] == "auto-generated"
    path = link_from(mail)
    with desk.db.session() as s:
        (row,) = s.scalars(select(SignInLink))
        assert path.rsplit("/", 1)[1] not in row.token_hash, "only the token's hash is stored"
        assert row.expires_at - row.created_at == timedelta(minutes=15)

    page = client.get(path)  # opening the link changes nothing (mail scanners fetch links)
    assert page.status_code == 200 and "ed@example.org" in page.text
    with desk.db.session() as s:
        assert s.scalars(select(SignInLink.used_at)).one() is None
        assert s.scalar(select(func.count()).select_from(DeskSession)) == 0

    done = client.post(path, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/desk/"
    cookie = done.headers["set-cookie"]
    assert cookie.startswith("mailer_desk=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    with desk.db.session() as s:
        (stored,) = s.scalars(select(DeskSession))
        assert stored.id != value and len(stored.id) == 64, "the session is stored as a hash"
        assert stored.user_agent

    home = client.get("/desk/")
    assert home.status_code == 200
    assert "Your desk" in home.text and "Central England Network" in home.text
    assert "Editor" in home.text and "Signed in as Ed Example" in home.text
    assert [a for a, _ in desk.audit()][-2:] == ["sign-in.link", "sign-in"]


def test_the_page_never_says_whether_an_address_has_an_account(desk: Desk, client: TestClient) -> None:
    desk.add("ed@example.org", "editor", "central-england")
    known = ask_for_link(client, "ed@example.org")
    unknown = ask_for_link(client, "stranger@example.org")
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    assert len(desk.mails_to("ed@example.org")) == 1
    assert desk.mails_to("stranger@example.org", 1, timeout=0.3) == []
    with desk.db.session() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1, "nobody was added"
    assert "stranger@example.org" not in str(desk.audit())
    bad = ask_for_link(client, "not an address")
    assert bad.status_code == 400 and "Enter your email address" in bad.text


def test_a_link_works_once(desk: Desk, client: TestClient) -> None:
    desk.add("ed@example.org", "editor", "central-england")
    ask_for_link(client, "ed@example.org")
    path = link_from(desk.mails_to("ed@example.org")[0])
    csrf = csrf_of(client.get(path).text)
    assert client.post(path, data={"csrf": csrf}).status_code == 303
    with desk.client() as other:  # another browser with the same link
        again = other.get(path)
        assert again.status_code == 400 and "does not work" in again.text
        assert path.rsplit("/", 1)[1] not in again.text, "the token is not echoed"
        other.get("/desk/sign-in")
        csrf2 = csrf_of(other.get("/desk/sign-in").text)
        second = other.post(path, data={"csrf": csrf2})
        assert second.status_code == 400
        assert "mailer_desk" not in second.headers.get("set-cookie", "")
        assert other.get("/desk/").status_code == 303
    with desk.db.session() as s:
        assert s.scalar(select(func.count()).select_from(DeskSession)) == 1


def test_an_expired_link_is_refused(desk: Desk, client: TestClient) -> None:
    desk.add("ed@example.org", "editor", "central-england")
    ask_for_link(client, "ed@example.org")
    path = link_from(desk.mails_to("ed@example.org")[0])
    csrf = csrf_of(client.get(path).text)
    desk.clock.offset = timedelta(minutes=15, seconds=1)
    assert client.get(path).status_code == 400
    refused = client.post(path, data={"csrf": csrf})
    assert refused.status_code == 400 and "15 minutes" in refused.text
    assert client.get("/desk/").status_code == 303


def test_a_removed_person_gets_no_link_and_cannot_use_one(desk: Desk, client: TestClient) -> None:
    desk.add("ed@example.org", "editor", "central-england")
    ask_for_link(client, "ed@example.org")
    path = link_from(desk.mails_to("ed@example.org")[0])
    csrf = csrf_of(client.get(path).text)
    with desk.db.session() as s:
        people.remove(s, "ed@example.org", by=None, now=datetime.now(UTC))
    assert client.post(path, data={"csrf": csrf}).status_code == 400
    assert ask_for_link(client, "ed@example.org").status_code == 200
    assert len(desk.mails_to("ed@example.org", 2, timeout=0.3)) == 1


def test_sign_in_requests_are_limited(desk: Desk, client: TestClient) -> None:
    desk.app.state.desk_limits = DeskLimits(requests_per_client=3, links_per_address=1)
    desk.add("ed@example.org", "editor", "central-england")
    assert ask_for_link(client, "ed@example.org").status_code == 200
    assert ask_for_link(client, "ed@example.org").status_code == 200  # the same page, no second mail
    assert len(desk.mails_to("ed@example.org", 2, timeout=0.3)) == 1
    assert ask_for_link(client, "other@example.org").status_code == 200
    refused = ask_for_link(client, "ed@example.org")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


# ---------------------------------------------------------------------------------------------
# Sessions


def test_a_revoked_session_is_refused_on_the_next_request(desk: Desk, client: TestClient) -> None:
    user = desk.add("ed@example.org", "editor", "central-england")
    desk.add("root@example.org", "admin")
    sign_in(desk, client, "ed@example.org")
    assert client.get("/desk/").status_code == 200
    csrf = csrf_of(client.get("/desk/").text)
    with desk.db.session() as s:
        assert sessions.revoke_all(s, user, now=datetime.now(UTC), by=None) == 1
    assert client.get("/desk/").status_code == 303
    refused = client.post("/desk/sign-out", data={"csrf": csrf})
    assert refused.status_code == 403, "the old session's form values are no good either"


def test_sessions_slide_and_end(desk: Desk, client: TestClient) -> None:
    desk.add("ed@example.org", "editor", "central-england")
    sign_in(desk, client, "ed@example.org")
    for _ in range(3):  # used every 11 hours, the session lives on past its 12 idle hours
        desk.clock.offset += timedelta(hours=11)
        assert client.get("/desk/").status_code == 200
    desk.clock.offset += timedelta(hours=12, seconds=1)
    assert client.get("/desk/").status_code == 303, "idle for longer than 12 hours"

    sign_in(desk, client, "ed@example.org")
    signed_in_at = desk.clock.offset
    while client.get("/desk/").status_code == 200:  # used every 11 hours, it still ends
        desk.clock.offset += timedelta(hours=11)
    assert timedelta(days=13) < desk.clock.offset - signed_in_at <= sessions.MAX_AGE + timedelta(hours=11)
    with desk.db.session() as s:
        latest = s.scalars(select(DeskSession).order_by(DeskSession.created_at.desc())).first()
        assert latest is not None
        assert latest.expires_at == latest.created_at + sessions.MAX_AGE


def test_sign_out(desk: Desk, client: TestClient) -> None:
    desk.add("ed@example.org", "editor", "central-england")
    sign_in(desk, client, "ed@example.org")
    csrf = csrf_of(client.get("/desk/").text)
    out = client.post("/desk/sign-out", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"].startswith("/desk/sign-in")
    assert 'mailer_desk=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    with desk.db.session() as s:
        assert s.scalars(select(DeskSession.revoked_at)).one() is not None
    assert client.get("/desk/").status_code == 303
    assert "sign-out" in [a for a, _ in desk.audit()]


def test_the_cookie_is_host_only_and_secure_over_https(
    settings: Settings, db: Database, shape: Shape, smtp_server: Any
) -> None:
    configured = replace(settings, relay=smtp_server.url, base_url="https://desk.example.org")
    app = create_app(configured, shape=shape, database=db)
    desk = Desk(app, configured, db, shape, smtp_server, Clock())
    desk.add("ed@example.org", "editor", "central-england")
    with TestClient(app, base_url="https://desk.example.org", follow_redirects=False) as client:
        page = client.get("/desk/sign-in")
        client.post("/desk/sign-in", data={"csrf": csrf_of(page.text), "email": "ed@example.org"})
        body = desk.mails_to("ed@example.org")[0].get_body(("plain",))
        assert body is not None
        found = re.search(r"https://desk\.example\.org(/desk/sign-in/\S+)", str(body.get_content()))
        assert found
        csrf = csrf_of(client.get(found.group(1)).text)
        done = client.post(found.group(1), data={"csrf": csrf})
        cookie = done.headers["set-cookie"]
        assert cookie.startswith("__Host-mailer_desk=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "Domain" not in cookie
        assert client.get("/desk/").status_code == 200


# ---------------------------------------------------------------------------------------------
# CSRF and roles


def desk_posts(app: Starlette) -> list[str]:
    found = [
        r.path
        for r in app.routes
        if isinstance(r, Route) and r.path.startswith("/desk/") and "POST" in (r.methods or ())
    ]
    assert len(found) >= 5
    return found


PATH_VALUES = {
    "{slug}": "2025-12-central-england",
    "{name}": "central-england",
    "{id}": "1",
    "{kind}": "event",
    "{uid}": "2025-11-kent-network-calendar-1",
}


def test_every_desk_post_without_csrf_gets_403(desk: Desk, client: TestClient) -> None:
    admin = desk.add("root@example.org", "admin")
    ed = desk.add("ed@example.org", "editor", "central-england")
    ask_for_link(client, "root@example.org")
    link = link_from(desk.mails_to("root@example.org")[0])
    forms = {
        "/desk/sign-in": {"email": "root@example.org"},
        "/desk/sign-in/{token}": {},
        "/desk/sign-out": {},
        "/desk/people/add": {"email": "new@example.org", "role": "editor", "network": "kent"},
        "/desk/people/remove-role": {"role_id": "1"},
        "/desk/people/revoke": {"user_id": str(ed)},
        "/desk/replies/unsubscribe": {"request_id": "1"},
        "/desk/replies/dismiss": {"request_id": "1"},
        "/desk/password": {"password": "correct horse battery", "again": "correct horse battery"},
        "/desk/notifications": {"on": "sent"},
        # The approve and send pages (test_desk_approve.py tries them on an approved issue too).
        "/desk/issues/{slug}/approve": {"fingerprint": "0" * 64},
        "/desk/issues/{slug}/withdraw": {},
        "/desk/issues/{slug}/ask-approval": {},
        "/desk/issues/{slug}/test-send": {},
        "/desk/issues/{slug}/send": {"when": "now"},
        "/desk/issues/{slug}/send/confirm": {"when": "now", "fingerprint": "0" * 64},
        "/desk/issues/{slug}/pause": {},
        "/desk/issues/{slug}/resume": {},
        "/desk/issues/{slug}/cancel": {"confirm": "yes"},
        # Contributions and compose (their own tests try them with real rows and issues).
        "/desk/networks/{name}/contribute/{kind}": {"title": "x"},
        "/desk/networks/{name}/inbox/{id}/edit": {"title": "x"},
        "/desk/networks/{name}/inbox/{id}/accept": {"target": "x"},
        "/desk/networks/{name}/inbox/{id}/decline": {"note": "x"},
        "/desk/networks/{name}/issues/new": {"title": "x", "slug": "x", "date": "2026-01-05"},
        "/desk/issues/{slug}": {"title": "x"},
        "/desk/issues/{slug}/preview": {"member": "ann@example.org"},  # a member looked up by address
        "/desk/issues/{slug}/preview/live": {"title": "x"},  # the unsaved form, previewed
        "/desk/issues/{slug}/image": {"alt": "x", "item": "0"},  # a photo for an item
        # An organiser's message (test_organiser_messages.py tries it on a real event).
        "/desk/events/{uid}/message": {"step": "send", "subject": "x", "body": "x"},
    }
    paths = desk_posts(desk.app)
    assert set(paths) <= set(forms), "every POST route has a form here"
    before = (desk.audit(), len(desk.smtp.messages))

    def attempt(signed: str) -> None:
        for route in paths:
            path = route.replace("{token}", link.rsplit("/", 1)[1])
            for name, value in PATH_VALUES.items():
                path = path.replace(name, value)
            for csrf in (None, "", "forged-value", "a" * 32):
                data = dict(forms[route]) | ({"csrf": csrf} if csrf is not None else {})
                response = client.post(path, data=data)
                assert response.status_code == 403, (signed, route, csrf, response.status_code)

    attempt("nobody")
    sign_in(desk, client, "root@example.org")
    after_sign_in = desk.audit()
    attempt("admin")
    assert desk.audit() == after_sign_in, "nothing was done"
    assert before[1] + 1 == len(desk.smtp.messages), "only the one link mailed for sign_in"
    with desk.db.session() as s:
        assert people.person(s, ed) is not None
        assert s.scalar(select(func.count()).select_from(User)) == 2
    assert admin


def test_every_desk_page_and_form_is_guarded_by_the_decorators() -> None:
    """Every desk route but signing in and out (for nobody too) is a ``desk_page``, ``admin_page``,
    ``desk_form`` or ``admin_form`` of ``desk.common``: checked the one way, none by hand."""
    from mailer.web.desk import home, routes

    # Every endpoint a guard makes runs its one inner function: a desk page's and a form's.
    guards = {"GET": home.home.__code__, "POST": home.add_person.__code__}
    unguarded = {"/desk/sign-in", "/desk/sign-in/{token}", "/desk/sign-out"}
    checked = 0
    for route in routes.routes:
        assert isinstance(route, Route)
        if route.path in unguarded:
            continue
        for method in route.methods or ():
            if method in guards:
                assert route.endpoint.__code__ is guards[method], (method, route.path)
                checked += 1
    assert checked >= 20


def test_a_contributor_of_canterbury_cannot_act_for_central_england(desk: Desk, client: TestClient) -> None:
    desk.add("cat@example.org", "contributor", region="canterbury")
    ed = desk.add("ed@example.org", "editor", "central-england")
    sign_in(desk, client, "cat@example.org")
    home = client.get("/desk/")
    assert home.status_code == 200 and "Kent Network" in home.text
    assert "Central England" not in home.text and "/desk/people" not in home.text
    csrf = csrf_of(home.text)
    assert client.get("/desk/networks/kent").status_code == 200
    assert client.get("/desk/networks/central-england").status_code == 403
    assert client.get("/desk/networks/atlantis").status_code == 404
    assert client.get("/desk/people").status_code == 403
    before = desk.audit()
    for path, data in [
        ("/desk/people/add", {"email": "x@example.org", "role": "editor", "network": "central-england"}),
        ("/desk/people/add", {"email": "x@example.org", "role": "contributor", "region": "birmingham"}),
        ("/desk/people/revoke", {"user_id": str(ed)}),
        ("/desk/people/remove-role", {"role_id": "2"}),
    ]:
        response = client.post(path, data={"csrf": csrf, **data})
        assert response.status_code == 403, path
    assert desk.audit() == before


def test_admins_add_and_remove_roles_and_sign_people_out(desk: Desk, client: TestClient) -> None:
    desk.add("root@example.org", "admin", name="Root")
    ed = desk.add("ed@example.org", "editor", "central-england")
    with desk.client() as eds:
        sign_in(desk, eds, "ed@example.org")
        sign_in(desk, client, "root@example.org")
        page = client.get("/desk/people")
        assert page.status_code == 200 and "ed@example.org" in page.text
        csrf = csrf_of(page.text)

        added = client.post(
            "/desk/people/add",
            data={
                "csrf": csrf,
                "email": "Bea@Example.org",
                "name": "Bea",
                "role": "contributor",
                "region": "birmingham",
            },
        )
        assert added.status_code == 303 and added.headers["location"] == "/desk/people?done=added"
        assert "The role is added." in client.get(added.headers["location"]).text
        with desk.db.session() as s:
            bea = people.by_email(s, "bea@example.org")
            assert bea is not None and bea.name == "Bea"
            assert [(r.role, r.network, r.region) for r in bea.roles] == [
                ("contributor", "central-england", "birmingham")
            ]

        wrong = client.post(
            "/desk/people/add",
            data={"csrf": csrf, "email": "x@example.org", "role": "editor", "network": "centrl-england"},
        )
        assert wrong.status_code == 400 and "did you mean &#39;central-england&#39;?" in wrong.text

        assert eds.get("/desk/").status_code == 200
        out = client.post("/desk/people/revoke", data={"csrf": csrf, "user_id": str(ed)})
        assert out.status_code == 303
        assert eds.get("/desk/").status_code == 303, "Ed's session ended at once"

        role_id = bea.roles[0].id
        gone = client.post("/desk/people/remove-role", data={"csrf": csrf, "role_id": str(role_id)})
        assert gone.status_code == 303
        with desk.db.session() as s:
            found = people.by_email(s, "bea@example.org")
            assert found is not None and found.roles == ()
        # The last admin of every network cannot remove their own role on the desk.
        with desk.db.session() as s:
            root = people.by_email(s, "root@example.org")
            assert root is not None
        last = client.post("/desk/people/remove-role", data={"csrf": csrf, "role_id": str(root.roles[0].id)})
        assert last.status_code == 400
    actions = desk.audit()
    assert ("person.add", "bea@example.org") in actions
    assert ("role.add", "bea@example.org") in actions
    assert ("sessions.revoke", "ed@example.org") in actions
    assert ("role.remove", "bea@example.org") in actions
    with desk.db.session() as s:
        by = s.scalars(select(AuditEntry.user_id).where(AuditEntry.action == "sessions.revoke")).all()
        assert by == [root.id], "the audit log names who did it"


def test_an_admin_of_one_network_acts_in_it_only(desk: Desk, client: TestClient) -> None:
    desk.add("kate@example.org", "admin", "kent")
    desk.add("ed@example.org", "editor", "central-england")
    sign_in(desk, client, "kate@example.org")
    page = client.get("/desk/people")
    assert page.status_code == 200
    assert "ed@example.org" not in page.text, "people of other networks are not shown"
    csrf = csrf_of(page.text)
    ok = client.post(
        "/desk/people/add", data={"csrf": csrf, "email": "k@example.org", "role": "editor", "network": "kent"}
    )
    assert ok.status_code == 303
    refused = client.post(
        "/desk/people/add",
        data={"csrf": csrf, "email": "k@example.org", "role": "editor", "network": "central-england"},
    )
    assert refused.status_code == 403
    everywhere = client.post(
        "/desk/people/add", data={"csrf": csrf, "email": "k@example.org", "role": "admin"}
    )
    assert everywhere.status_code == 403


# ---------------------------------------------------------------------------------------------
# Passwords (optional)


def with_password(client: TestClient, address: str, password: str) -> Any:
    csrf = csrf_of(client.get("/desk/sign-in").text)
    return client.post("/desk/sign-in", data={"csrf": csrf, "email": address, "password": password})


def test_an_optional_password(desk: Desk, client: TestClient) -> None:
    desk.app.state.desk_limits = DeskLimits(passwords_per_address=3)
    desk.add("ed@example.org", "editor", "central-england")
    desk.add("ann@example.org", "approver", "central-england")
    sign_in(desk, client, "ed@example.org")
    home = client.get("/desk/")
    assert "Set my password" in home.text
    csrf = csrf_of(home.text)
    short = client.post("/desk/password", data={"csrf": csrf, "password": "short", "again": "short"})
    assert short.status_code == 400 and "at least 12 characters" in short.text
    differ = client.post(
        "/desk/password", data={"csrf": csrf, "password": "correct horse battery", "again": "correct horse"}
    )
    assert differ.status_code == 400 and "not the same" in differ.text
    assert client.post("/desk/password", data={"password": "x" * 20, "again": "x" * 20}).status_code == 403
    done = client.post(
        "/desk/password",
        data={"csrf": csrf, "password": " correct horse battery ", "again": " correct horse battery "},
    )
    assert done.status_code == 303 and done.headers["location"] == "/desk/?done=password-set"
    assert "Your password is set" in client.get(done.headers["location"]).text
    with desk.db.session() as s:
        stored = s.scalars(select(User.password_hash).where(User.email == "ed@example.org")).one()
        assert stored is not None and stored.startswith("$argon2id$") and "horse" not in stored

    with desk.client() as other:
        wrong = with_password(other, "ed@example.org", "correct horse battery")  # its spaces count
        no_password = with_password(other, "ann@example.org", "correct horse battery ")
        nobody = with_password(other, "nobody@example.org", "correct horse battery ")
        assert wrong.status_code == no_password.status_code == nobody.status_code == 400
        assert wrong.text.replace("ed@", "X@") == no_password.text.replace("ann@", "X@")
        assert no_password.text.replace("ann@", "X@") == nobody.text.replace("nobody@", "X@")
        assert "do not match" in wrong.text
        assert other.get("/desk/").status_code == 303
        right = with_password(other, "Ed@Example.org", " correct horse battery ")
        assert right.status_code == 303 and right.headers["location"] == "/desk/"
        assert other.get("/desk/").status_code == 200
        assert desk.mails_to("ann@example.org", 1, timeout=0.2) == [], "no link was mailed"
    with desk.client() as third:  # a third try for ed@ this hour, then no more, right or wrong
        assert with_password(third, "ed@example.org", "x" * 12).status_code == 400
        refused = with_password(third, "ed@example.org", " correct horse battery ")
        assert refused.status_code == 429 and "leave the password empty" in refused.text
    actions = [a for a, _ in desk.audit()]
    assert "password.set" in actions and "sign-in.refused" in actions
    refused_for = [o for a, o in desk.audit() if a == "sign-in.refused"]
    assert refused_for == ["ed@example.org", "ann@example.org", "ed@example.org"], "people only"

    removed = client.post("/desk/password", data={"csrf": csrf, "action": "remove"})
    assert removed.status_code == 303
    with desk.db.session() as s:
        assert s.scalars(select(User.password_hash).where(User.email == "ed@example.org")).one() is None
    assert "password.remove" in [a for a, _ in desk.audit()]


# ---------------------------------------------------------------------------------------------
# In a real browser (Chromium, no JavaScript), at phone and desktop widths


def check_page(page: Page, screenshots: Path, name: str) -> None:
    """The site's checks of every page (support.browser), axe-core's (tests/support/axe.py), a photo."""
    check_web_page(page, screenshots, name)
    check_axe(page, name=name)


@pytest.mark.browser
def test_sign_in_in_a_browser(tab: Page, browser_desk: Desk, pictures: Path) -> None:
    page, screenshots = tab, pictures
    desk = browser_desk
    base = desk.settings.base_url
    desk.add("root@example.org", "admin", name="Rae Root")
    page.goto(base + "/desk/")
    page.get_by_role("heading", name="Sign in to the desk").wait_for()
    check_page(page, screenshots, "desk-sign-in")
    page.get_by_label("Your email address").fill("root@example.org")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    check_page(page, screenshots, "desk-check-mail")

    (mail,) = desk.mails_to("root@example.org")
    body = mail.get_body(("plain",))
    assert body is not None
    found = re.search(r"(http://127\.0\.0\.1:\d+/desk/sign-in/\S+)", str(body.get_content()))
    assert found, "the mail holds the sign-in link"
    page.goto(found.group(1))
    page.get_by_role("heading", name="Sign in", exact=True).wait_for()
    check_page(page, screenshots, "desk-link")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your desk").wait_for()
    check_page(page, screenshots, "desk-home")

    page.get_by_role("link", name="Central England Network").click()
    page.get_by_role("heading", name="Central England Network", exact=True).wait_for()
    check_page(page, screenshots, "desk-network")
    page.goto(base + "/desk/networks/nowhere")
    page.get_by_role("heading", name="Page not found").wait_for()
    check_page(page, screenshots, "desk-not-found")
    page.goto(base + "/desk/")
    page.get_by_role("link", name="People").click()
    page.get_by_role("heading", name="People", exact=True).wait_for()
    page.get_by_label("Email address").fill("bea@example.org")
    page.get_by_label("Role").select_option(label="Contributor")
    page.get_by_label("Region or local group").select_option("birmingham")
    page.get_by_role("button", name="Add", exact=True).click()
    page.get_by_text("The role is added.").wait_for()
    check_page(page, screenshots, "desk-people")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out.").wait_for()
    page.goto(base + "/desk/")
    page.get_by_role("heading", name="Sign in to the desk").wait_for()
    with desk.db.session() as s:
        bea = people.by_email(s, "bea@example.org")
        assert bea is not None and bea.roles[0].region == "birmingham"
