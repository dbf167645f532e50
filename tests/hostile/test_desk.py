"""The desk (``/desk/``) against hostile requests, on SQLite and PostgreSQL.

Forged, stolen-from-the-database, revoked and malformed session cookies; tampered, used, expired
and malformed sign-in tokens; hostile values in every field of every desk form (from
``http/form-values.txt``, with a valid CSRF value and a signed-in admin behind them, so that they
reach the deepest code), and in the row ids the people page posts; a forged Host; two browsers
racing to use one link. What must happen: a page below 500, never a session for someone who could
not prove to be its person, no token echoed back, nothing stored that holds a control character,
and no mail but the sign-in mails asked for, each to its own address.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select
from starlette.routing import Route
from support.desk import Desk, clock, csrf_of, desk, hostile_desk, networks_workspace, sign_in_by_link
from support.hostile import CONTROL, form_values

from mailer.desk import people, sessions
from mailer.models import AuditEntry, DeskSession, SignInLink, User, UserRole

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["clock", "desk", "hostile_desk", "networks_workspace"]  # fixtures


@pytest.fixture
def site(hostile_desk: Desk) -> Desk:
    """The desk with an admin of every network, an editor and a contributor."""
    for address, role, network, region in [
        ("root@example.org", "admin", "", ""),
        ("ed@example.org", "editor", "central-england", ""),
        ("cat@example.org", "contributor", "", "canterbury"),
    ]:
        hostile_desk.add(address, role, network, region)
    return hostile_desk


@pytest.fixture
def client(site: Desk) -> Iterator[TestClient]:
    with site.client() as c:
        yield c


def sessions_of(site: Desk) -> dict[str, int]:
    with site.db.session() as s:
        rows = s.execute(
            select(User.email, func.count(DeskSession.id)).join(DeskSession).group_by(User.email)
        )
        return {email: count for email, count in rows}


def test_forged_and_stolen_cookies_sign_nobody_in(site: Desk, client: TestClient) -> None:
    value = sign_in_by_link(site, client, "ed@example.org")
    with site.db.session() as s:
        stored = s.scalars(select(DeskSession.id)).one()
    revoked = sign_in_by_link(site, client, "cat@example.org")
    with site.db.session() as s:
        sessions.revoke_all(s, site.ids["cat@example.org"], now=datetime.now(UTC), by=None)
    cases = [
        ("nothing", ""),
        ("the parser: not the shape of a value", "x"),
        ("the database: the stored hash (a copy of the database) as the cookie", stored),
        ("the database: the stored hash cut to a cookie's length", stored[:43]),
        ("the hash: the SHA-256 of the stored hash", hashlib.sha256(stored.encode()).hexdigest()[:43]),
        ("the MAC-less value: one character changed", value[:-1] + ("A" if value[-1] != "A" else "B")),
        ("truncation", value[:-1]),
        ("extension", value + "A"),
        ("revocation: a revoked session's value", revoked),
        ("size: a huge value", "A" * 5000),
        ("encoding: non-ASCII", "é" * 43),
        ("the parser: quotes and separators", '";,=\\' * 9),
        ("SQL: a quote", "' OR '1'='1" + "A" * 32),
    ]
    for attack, forged in cases:
        cookie = {"Cookie": b"mailer_desk=" + forged.encode("utf-8")}  # as sent, not as a jar keeps it
        with site.client() as other:
            for path in ("/desk/", "/desk/people", "/desk/networks/kent"):
                response = other.get(path, headers=cookie)
                assert response.status_code == 303, (attack, path, response.status_code)
            refused = other.post(
                "/desk/people/add",
                data={"csrf": "x", "email": "z@example.org", "role": "admin"},
                headers=cookie,
            )
            assert refused.status_code == 403, attack
    with site.db.session() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 3, "nobody was added"


def test_hostile_sign_in_tokens(site: Desk, client: TestClient) -> None:
    with site.db.session() as s:
        now = datetime.now(UTC)
        valid = sessions.issue_link(s, site.ids["ed@example.org"], now=now)
        used = sessions.issue_link(s, site.ids["ed@example.org"], now=now)
        sessions.consume_link(s, used, now=now)
        expired = sessions.issue_link(s, site.ids["ed@example.org"], now=now - timedelta(minutes=16))
        stored = s.get(SignInLink, hashlib.sha256(valid.encode()).hexdigest())
        assert stored is not None
    csrf = csrf_of(client.get("/desk/sign-in").text)
    cases = [
        ("use: a link used already", used),
        ("expiry: a link older than 15 minutes", expired),
        ("the database: the stored hash as the token", stored.token_hash),
        ("the database: the stored hash cut to a token's length", stored.token_hash[:43]),
        ("the token: one character changed", valid[:-1] + ("A" if valid[-1] != "A" else "B")),
        ("the parser: truncated", valid[:-4]),
        ("the parser: extended", valid + "A"),
        ("the parser: upper case", valid.upper()),
        ("encoding: a NUL", valid[:20] + "\x00" + valid[21:]),
        ("encoding: CR LF", valid[:20] + "\r\n" + valid[22:]),
        ("encoding: non-ASCII", "é" * 43),
        ("traversal", "../../admin/"),
        ("size: a huge token", "A" * 3000),
        ("SQL: a quote", "' OR '1'='1"),
    ]
    for attack, token in cases:
        path = "/desk/sign-in/" + quote(token, safe="")
        for method in ("GET", "POST"):
            response = client.request(method, path, data={"csrf": csrf} if method == "POST" else None)
            assert response.status_code in (400, 404), (attack, method, response.status_code)
            if len(token) >= 8 and token not in ("../../admin/",):
                assert token not in response.text and quote(token, safe="") not in response.text, attack
            assert "mailer_desk=" not in response.headers.get("set-cookie", ""), attack
    assert sessions_of(site) == {}
    page = client.get(f"/desk/sign-in/{valid}")  # and the genuine one still works
    assert client.post(f"/desk/sign-in/{valid}", data={"csrf": csrf_of(page.text)}).status_code == 303


def desk_forms(site: Desk) -> dict[str, dict[str, str]]:
    return {
        "/desk/sign-in": {"email": "ed@example.org", "password": ""},
        "/desk/people/add": {
            "email": "new@example.org",
            "name": "New Example",
            "role": "contributor",
            "network": "",
            "region": "birmingham",
        },
        "/desk/people/remove-role": {"role_id": "999"},
        "/desk/people/revoke": {"user_id": str(site.ids["cat@example.org"])},
        "/desk/replies/unsubscribe": {"request_id": "999"},
        "/desk/replies/dismiss": {"request_id": "999"},
        "/desk/sign-out": {},
        "/desk/notifications": {"on": "sent"},
        "/desk/password": {
            "action": "set",
            "password": "correct horse battery",
            "again": "correct horse battery",
        },
    }


def test_every_desk_post_route_has_its_hostile_cases(site: Desk) -> None:
    """Each desk POST route is replayed with the hostile form values by one of the hostile test files:
    sign-in and people here, contributions, compose, sending and organisers' messages in their own
    files."""
    here = Path(__file__).parent
    texts = "".join(
        (here / name).read_text(encoding="utf-8")
        for name in (
            "test_desk.py",
            "test_desk_contributions_hostile.py",
            "test_desk_compose_hostile.py",
            "test_desk_send.py",
            "test_organiser_messages_hostile.py",
        )
    )
    posts = {
        r.path
        for r in site.app.routes
        if isinstance(r, Route) and r.path.startswith("/desk/") and "POST" in (r.methods or ())
    }

    def mentioned(path: str) -> bool:
        fixed = path.split("{", 1)[0].rstrip("/")
        tail = path.rsplit("}", 1)[-1].lstrip("/")
        return fixed in texts and (not tail or tail in texts)

    missing = sorted(p for p in posts if not mentioned(p))
    assert missing == [], missing


@pytest.mark.slow
def test_hostile_form_values_on_every_desk_form(site: Desk, client: TestClient) -> None:
    """Every case of ``http/form-values.txt`` in each field of each sign-in and people form, then in
    every field at once, with a valid CSRF value: never a 5xx, nothing stored with a control
    character, no mail to anyone but the one address asked for."""
    from mailer.web.desk import home, signin

    posts = [
        r.path for r in [*signin.routes, *home.routes] if isinstance(r, Route) and "POST" in (r.methods or ())
    ]
    forms = desk_forms(site)
    assert set(posts) - {"/desk/sign-in/{token}"} == set(forms)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    anon_csrf = csrf_of(client.get("/desk/sign-in").text)
    with site.client() as admin:
        sign_in_by_link(site, admin, "root@example.org")
        admin_csrf = csrf_of(admin.get("/desk/people").text)
        for path, base in forms.items():
            if path == "/desk/sign-out":
                continue  # it would end the admin's session: below
            who, csrf = (client, anon_csrf) if path == "/desk/sign-in" else (admin, admin_csrf)
            for attack, value in form_values():
                tries = [{**base, name: value} for name in base] + [dict.fromkeys(base, value)]
                for data in tries:
                    response = who.post(path, data={"csrf": csrf, **data})
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code >= 500:
                        failures.append(f"{response.status_code} {path} [{attack}] {list(data)}")
        out = admin.post("/desk/sign-out", data={"csrf": admin_csrf, "extra": "\x00"})
        assert out.status_code == 303
    assert not failures, "\n".join(failures[:30])
    assert statuses.get(400, 0) > 10 and statuses.get(303, 0) > 10, statuses
    with site.db.session() as s:
        for user in s.scalars(select(User)):
            assert not CONTROL.search(user.email + user.name), repr(user.email)
        for role in s.scalars(select(UserRole)):
            assert role.role in people.ROLES
            assert role.region in site.shape.regions or role.region == ""
        for line in s.scalars(select(AuditEntry)):
            assert not CONTROL.search(line.action + line.object + line.detail), repr(line.object)
    with site.db.session() as s:
        added = set(s.scalars(select(User.email)))
    for received in site.smtp.messages:
        head = received.data.split(b"\r\n\r\n", 1)[0]
        if b"Subject: You are on the" in head:  # the invitation of a person given a role
            assert len(received.rcpt_tos) == 1 and received.rcpt_tos[0] in added
        else:
            assert received.rcpt_tos == ["ed@example.org"], "sign-in mail goes to the address asked for"
        assert b"Bcc:" not in head


def test_hostile_row_ids(site: Desk, client: TestClient) -> None:
    sign_in_by_link(site, client, "root@example.org")
    csrf = csrf_of(client.get("/desk/people").text)
    with site.db.session() as s:
        roles_before = s.scalar(select(func.count()).select_from(UserRole))
    for value in [
        "-1",
        "0",
        "1e3",
        "0x1",
        "１",
        "99999999999999999999",
        "1 OR 1=1",
        "",
        "2 2",
        "2.0",
        "\u0000",
    ]:
        for path, name in (
            ("/desk/people/remove-role", "role_id"),
            ("/desk/people/revoke", "user_id"),
            ("/desk/replies/unsubscribe", "request_id"),
            ("/desk/replies/dismiss", "request_id"),
        ):
            response = client.post(path, data={"csrf": csrf, name: value})
            assert response.status_code == 400, (path, value, response.status_code)
    with site.db.session() as s:
        assert s.scalar(select(func.count()).select_from(UserRole)) == roles_before


def test_a_forged_host_gets_no_page_and_links_use_the_base_url(site: Desk, client: TestClient) -> None:
    with TestClient(site.app, base_url="http://evil.example", follow_redirects=False) as evil:
        assert evil.get("/desk/sign-in").status_code == 400
    csrf = csrf_of(client.get("/desk/sign-in").text)
    response = client.post(
        "/desk/sign-in",
        data={"csrf": csrf, "email": "ed@example.org"},
        headers={"X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example"},
    )
    assert response.status_code == 200
    (received,) = site.smtp.messages
    assert b"evil.example" not in received.data
    assert b"http://127.0.0.1:8000/desk/sign-in/" in received.data


@pytest.mark.parametrize("attempts", [4])
def test_two_browsers_racing_one_link_get_one_session(site: Desk, attempts: int) -> None:
    with site.db.session() as s:
        token = sessions.issue_link(s, site.ids["ed@example.org"], now=datetime.now(UTC))
    clients = [site.client() for _ in range(attempts)]
    forms = []
    for c in clients:
        c.__enter__()
        forms.append(csrf_of(c.get(f"/desk/sign-in/{token}").text))
    results: list[int] = []
    start = threading.Barrier(attempts)

    def go(c: TestClient, csrf: str) -> None:
        start.wait()
        results.append(c.post(f"/desk/sign-in/{token}", data={"csrf": csrf}).status_code)

    threads = [threading.Thread(target=go, args=(c, f)) for c, f in zip(clients, forms, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in clients:
        c.__exit__(None, None, None)
    assert sorted(results) == [303] + [400] * (attempts - 1)
    assert sessions_of(site) == {"ed@example.org": 1}
