"""The members' web app over HTTP, on the real app and both databases.

Unsubscribe (GET/HEAD change nothing; one-click POST in both encodings; the page's button with
CSRF), preferences (CSRF, consent log), sign-up with double opt-in through a real aiosmtpd server,
bad tokens, honeypot and rate limits, the archive and its Atom feed, concurrency with a busy
database, and the app served by a real uvicorn server (and by ``mailer serve``).
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from markupsafe import escape
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from support.hashes import address_hash

from mailer import tokens
from mailer.audience.addresses import normalise
from mailer.audience.consent import SignupData, mailbox_key
from mailer.audience.networks import consent_text, default_network, wording_version
from mailer.audience.shape import Shape
from mailer.audience.suppression import is_suppressed, suppress
from mailer.compose import compose
from mailer.db import Database, write, writer_database
from mailer.issue import load_issue
from mailer.models import (
    Campaign,
    ConsentEvent,
    Interest,
    LoginAttempt,
    Member,
    Region,
    Suppression,
    Variant,
)
from mailer.render import Renderer, browser_url
from mailer.settings import Settings
from mailer.web import confirmation, create_app
from mailer.web.context import Limits
from mailer.web.logs import RedactingFilter
from mailer.web.ratelimit import network_of

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "campaigns" / "2025-11-kent-network" / "issue.yaml"
SLUG = "2025-11-kent-network"


# ---------------------------------------------------------------------------------------------
# The mail the app sends: the shared aiosmtpd server (conftest's ``smtp_server``), parsed


@dataclass
class Mailbox:
    """What the real SMTP server received, parsed with the ``email`` package."""

    server: Any  # tests/support/smtp_server.py's SmtpTestServer

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        out = []
        for received in self.server.messages:
            msg = email.message_from_bytes(received.data, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append((list(received.rcpt_tos), msg))
        return out

    def wait(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.server.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def body(self, index: int = -1) -> str:
        part = self.messages[index][1].get_body(("plain",))
        assert part is not None
        return str(part.get_content())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Clock:
    """The app's clock: the real time shifted by ``offset``."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def web_settings(settings: Settings, smtp_server: Any) -> Settings:
    return replace(settings, relay=smtp_server.url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(web_settings: Settings, db: Database, shape: Shape, clock: Clock) -> Starlette:
    return create_app(web_settings, shape=shape, database=db, clock=clock)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c


@pytest.fixture
def box(smtp_server: Any) -> Mailbox:
    return Mailbox(smtp_server)


# ---------------------------------------------------------------------------------------------
# Helpers


def add_member(
    db: Database,
    address: str,
    *,
    region: str | None = "kent",
    interests: tuple[str, ...] = ("refugees",),
    name: str = "Ann Example",
) -> int:
    with db.session() as s:
        region_id = s.scalar(select(Region.id).where(Region.slug == region)) if region else None
        chosen = list(s.scalars(select(Interest).where(Interest.slug.in_(interests))))
        normal = normalise(address)
        member = Member(
            email=normal, address_hash=address_hash(normal), name=name, region_id=region_id, interests=chosen
        )
        s.add(member)
        s.flush()
        return member.id


def add_campaign(db: Database, slug: str = SLUG, *, status: str = "sent", source: str | None = None) -> int:
    text_ = SEED.read_text(encoding="utf-8") if source is None else source
    with db.session() as s:
        row = Campaign(
            slug=slug,
            kind="newsletter",
            title="Amnesty International Kent Network Newsletter: November 2025",
            subject="Kent Network newsletter: November 2025",
            audience="region:kent",
            issue_date="2025-11-17",
            source=text_,
            status=status,
            started_at=datetime(2025, 11, 17, 8, 0, tzinfo=UTC) if status != "draft" else None,
            finished_at=datetime(2025, 11, 17, 8, 30, tzinfo=UTC) if status == "sent" else None,
        )
        s.add(row)
        s.flush()
        return row.id


def snapshot(db: Database) -> tuple[Any, ...]:
    """Everything a request might change: the consent log, suppressions, members and interests."""
    with db.session() as s:
        return (
            s.scalar(select(func.count()).select_from(ConsentEvent)),
            sorted(s.execute(select(Suppression.address_hash, Suppression.source)).all()),
            sorted(s.execute(select(Member.id, Member.name, Member.region_id, Member.email)).all()),
            sorted((m.id, tuple(i.slug for i in m.interests)) for m in s.scalars(select(Member))),
        )


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def multipart(fields: list[tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body as a mail provider sends it (no files)."""
    boundary = "----mailerTestBoundary7MA4YWxkTrZu0gW"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields
    )
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def consent_events(db: Database, member_id: int | None = None) -> list[ConsentEvent]:
    with db.session() as s:
        query = select(ConsentEvent).order_by(ConsentEvent.id)
        if member_id is not None:
            query = query.where(ConsentEvent.member_id == member_id)
        return list(s.scalars(query))


def suppression(db: Database, address: str) -> Suppression | None:
    with db.session() as s:
        return s.get(Suppression, address_hash(normalise(address)))


def unsub_token(settings: Settings, member_id: int, campaign: int | None = None) -> str:
    return tokens.sign("unsubscribe", member_id, keys=settings.secrets, campaign=campaign)


def prefs_token(settings: Settings, member_id: int, campaign: int | None = None) -> str:
    return tokens.sign("preferences", member_id, keys=settings.secrets, campaign=campaign)


# ---------------------------------------------------------------------------------------------
# Unsubscribe


def test_unsubscribe_get_and_head_change_nothing(
    client: TestClient, db: Database, settings: Settings
) -> None:
    member = add_member(db, "ann@example.org")
    campaign = add_campaign(db)
    token = unsub_token(settings, member, campaign)
    before = snapshot(db)
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    assert 'method="post"' in page.text and "Unsubscribe from all emails" in page.text
    assert 'lang="en-GB"' in page.text and 'name="viewport"' in page.text
    assert "/p/" not in page.text, "opening an unsubscribe link mints no preferences link"
    assert f'action="/u/{token}/preferences"' in page.text  # a form mails one instead
    head = client.head(f"/u/{token}")
    assert head.status_code == 200 and head.content == b""
    for _ in range(3):  # a scanner following the link again and again
        client.get(f"/u/{token}")
    assert snapshot(db) == before
    assert suppression(db, "ann@example.org") is None


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart", "no content type"])
def test_one_click_post_unsubscribes_without_cookies(
    app: Starlette, db: Database, settings: Settings, encoding: str
) -> None:
    member = add_member(db, "bob@example.org")
    campaign = add_campaign(db)
    token = unsub_token(settings, member, campaign)
    with TestClient(app, base_url="http://127.0.0.1:8000") as fresh:  # no cookies at all
        if encoding == "urlencoded":
            response = fresh.post(
                f"/u/{token}", data={"List-Unsubscribe": "One-Click"}, follow_redirects=False
            )
        elif encoding == "multipart":
            body, headers = multipart([("List-Unsubscribe", "One-Click")])
            response = fresh.post(f"/u/{token}", content=body, headers=headers, follow_redirects=False)
        else:
            response = fresh.post(
                f"/u/{token}", content=b"List-Unsubscribe=One-Click", follow_redirects=False
            )
        assert not fresh.cookies
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    assert "set-cookie" not in response.headers
    row = suppression(db, "bob@example.org")
    assert row is not None and row.source == "one-click" and row.reason == "unsubscribe"
    assert row.campaign == SLUG
    events = consent_events(db, member)
    assert [(e.action, e.source, e.campaign) for e in events] == [("unsubscribe", "one-click", SLUG)]


def test_one_click_twice_is_harmless(client: TestClient, db: Database, settings: Settings) -> None:
    member = add_member(db, "carol@example.org")
    token = unsub_token(settings, member)
    for _ in range(2):
        response = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 1
    assert [e.action for e in consent_events(db, member)] == ["unsubscribe", "unsubscribe"]


def test_page_button_unsubscribes_with_csrf_and_offers_to_sign_up_again(
    client: TestClient, db: Database, settings: Settings
) -> None:
    member = add_member(db, "dan@example.org")
    campaign = add_campaign(db)
    token = unsub_token(settings, member, campaign)
    page = client.get(f"/u/{token}")
    response = client.post(f"/u/{token}", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    assert "/p/" not in response.text, "no preferences link is minted in the page"
    assert 'href="/subscribe"' in response.text and "Sign up again" in response.text
    row = suppression(db, "dan@example.org")
    assert row is not None and row.source == "link" and row.campaign == SLUG


def test_page_button_needs_csrf(client: TestClient, app: Starlette, db: Database, settings: Settings) -> None:
    member = add_member(db, "erin@example.org")
    other = add_member(db, "frank@example.org")
    token = unsub_token(settings, member)
    before = snapshot(db)
    # No CSRF value at all (a cross-site form post).
    assert client.post(f"/u/{token}", data={"confirm": "yes"}).status_code == 403
    # A value with no cookie behind it.
    page = client.get(f"/u/{token}")
    with TestClient(app, base_url="http://127.0.0.1:8000") as stranger:
        assert stranger.post(f"/u/{token}", data={"csrf": csrf_of(page.text)}).status_code == 403
    # A value made for another member's page.
    other_page = client.get(f"/u/{unsub_token(settings, other)}")
    assert client.post(f"/u/{token}", data={"csrf": csrf_of(other_page.text)}).status_code == 403
    # A forged value.
    assert client.post(f"/u/{token}", data={"csrf": "0" * 32}).status_code == 403
    assert snapshot(db) == before


def test_unsubscribe_of_an_erased_member_still_answers_200(client: TestClient, settings: Settings) -> None:
    token = unsub_token(settings, 987654)
    response = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200


# ---------------------------------------------------------------------------------------------
# Bad tokens


def _tampered(token: str) -> str:
    middle = len(token) // 2
    swap = "a" if token[middle] != "a" else "b"
    return token[:middle] + swap + token[middle + 1 :]


def test_bad_tokens_get_a_plain_400_that_reveals_nothing(
    client: TestClient, db: Database, settings: Settings
) -> None:
    member = add_member(db, "grace@example.org", name="Grace Hopper")
    good = unsub_token(settings, member)
    other_key = tokens.sign("unsubscribe", member, keys=["some-other-key"])
    prefs = prefs_token(settings, member)
    bad = {
        "forged": "a" * 29,
        "truncated": good[:-4],
        "tampered": _tampered(good),
        "other key": other_key,
        "wrong purpose": prefs,
        "not base32": "hello-world!",
    }
    before = snapshot(db)
    pages = set()
    for label, token in bad.items():
        for method in ("GET", "POST"):
            response = client.request(method, f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
            assert response.status_code == 400, (label, method)
            assert tokens.PUBLIC_MESSAGE in response.text
            assert "grace" not in response.text.lower() and "Hopper" not in response.text
            pages.add(response.text)
    for token in (_tampered(prefs), prefs[:-3], good, tokens.sign("preferences", member, keys=["x"])):
        for method in ("GET", "POST"):
            response = client.request(method, f"/p/{token}", data={"name": "Changed"})
            assert response.status_code == 400
            pages.add(response.text)
    assert len(pages) == 1, "every bad token gets the same page"
    assert snapshot(db) == before


def test_bad_confirmation_tokens_get_400(client: TestClient, settings: Settings, clock: Clock) -> None:
    data = SignupData("heidi@example.org", "Heidi", "kent", "", (), "wording", datetime.now(UTC))
    good = confirmation.seal(data, keys=settings.secrets)
    assert client.get(f"/confirm/{good}").status_code == 200
    for token in (good[:-5], _tampered(good), "x" * 40, confirmation.seal(data, keys=["another-key"])):
        response = client.get(f"/confirm/{token}")
        assert response.status_code == 400
        assert tokens.PUBLIC_MESSAGE in response.text and "heidi" not in response.text
    clock.offset = timedelta(days=8)  # the link is a week old
    assert client.get(f"/confirm/{good}").status_code == 400


def test_tokens_never_carry_the_address_in_clear(settings: Settings) -> None:
    address = "ivan.address@example.org"
    data = SignupData(address, "Ivan", "kent", "ME14 1HH", ("refugees",), "wording", datetime.now(UTC))
    token = confirmation.seal(data, keys=settings.secrets)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"ivan" not in raw.lower() and "ivan" not in token.lower()
    assert confirmation.unseal(token, keys=settings.secrets).email == address
    # Rotation: a new key first, the old one still opens old links.
    rotated = ["a-newer-key", *settings.secrets]
    assert confirmation.unseal(token, keys=rotated).email == address


# ---------------------------------------------------------------------------------------------
# Preferences


def test_preferences_page_shows_choices_and_changes_nothing(
    client: TestClient, db: Database, settings: Settings
) -> None:
    member = add_member(db, "judy@example.org", region="canterbury", interests=("refugees", "schools"))
    before = snapshot(db)
    page = client.get(f"/p/{prefs_token(settings, member)}")
    assert page.status_code == 200
    assert 'value="Ann Example"' in page.text
    assert re.search(r'<option value="canterbury" selected>', page.text)
    assert re.search(r'value="refugees" checked', page.text) and re.search(
        r'value="schools" checked', page.text
    )
    assert not re.search(r'value="palestine" checked', page.text)
    assert '<label for="interest-refugees">' in page.text and '<label for="region">' in page.text
    client.head(f"/p/{prefs_token(settings, member)}")
    assert snapshot(db) == before


def test_preferences_save_changes_and_logs_them(client: TestClient, db: Database, settings: Settings) -> None:
    member = add_member(db, "ken@example.org", region="kent", interests=("refugees", "schools"))
    campaign = add_campaign(db)
    token = prefs_token(settings, member, campaign)
    page = client.get(f"/p/{token}")
    form = {"csrf": csrf_of(page.text), "name": "Ken  Example\n", "region": "canterbury"}
    response = client.post(f"/p/{token}", data={**form, "interests": ["schools", "palestine"]})
    assert response.status_code == 200
    assert "Your preferences are saved" in response.text
    with db.session() as s:
        row = s.get(Member, member)
        assert row is not None
        assert row.name == "Ken Example"
        assert row.region is not None and row.region.slug == "canterbury"
        assert [i.slug for i in row.interests] == ["palestine", "schools"]
    events = consent_events(db, member)
    assert [(e.action, e.source, e.campaign) for e in events] == [("preferences", "link", SLUG)]
    detail = events[0].detail
    assert "left interest refugees" in detail and "joined interest palestine" in detail
    assert "region kent -> canterbury" in detail and "name changed" in detail
    # Saving the same again changes nothing and logs nothing.
    again = client.post(f"/p/{token}", data={**form, "interests": ["schools", "palestine"]})
    assert "Nothing changed" in again.text
    assert len(consent_events(db, member)) == 1
    assert suppression(db, "ken@example.org") is None


def test_preferences_leave_every_interest(client: TestClient, db: Database, settings: Settings) -> None:
    member = add_member(db, "leo@example.org", interests=("refugees",))
    token = prefs_token(settings, member)
    page = client.get(f"/p/{token}")
    response = client.post(f"/p/{token}", data={"csrf": csrf_of(page.text), "name": "Leo", "region": "kent"})
    assert response.status_code == 200
    with db.session() as s:
        row = s.get(Member, member)
        assert row is not None and row.interests == []
    assert suppression(db, "leo@example.org") is None  # leaving a topic is not leaving the list


def test_preferences_need_csrf(client: TestClient, app: Starlette, db: Database, settings: Settings) -> None:
    member = add_member(db, "mia@example.org")
    other = add_member(db, "ned@example.org")
    token = prefs_token(settings, member)
    before = snapshot(db)
    form = {"name": "Changed", "region": "thanet", "interests": "schools"}
    assert client.post(f"/p/{token}", data=form).status_code == 403
    assert client.post(f"/p/{token}/leave", data={}).status_code == 403
    other_page = client.get(f"/p/{prefs_token(settings, other)}")
    assert client.post(f"/p/{token}", data={**form, "csrf": csrf_of(other_page.text)}).status_code == 403
    page = client.get(f"/p/{token}")
    with TestClient(app, base_url="http://127.0.0.1:8000") as stranger:
        response = stranger.post(f"/p/{token}/leave", data={"csrf": csrf_of(page.text)})
        assert response.status_code == 403
    assert snapshot(db) == before


def test_preferences_reject_unknown_region(client: TestClient, db: Database, settings: Settings) -> None:
    member = add_member(db, "olga@example.org")
    token = prefs_token(settings, member)
    page = client.get(f"/p/{token}")
    before = snapshot(db)
    response = client.post(f"/p/{token}", data={"csrf": csrf_of(page.text), "region": "atlantis"})
    assert response.status_code == 400
    assert "Choose your region from the list" in response.text
    assert snapshot(db) == before


def test_preferences_leave_everything(client: TestClient, db: Database, settings: Settings) -> None:
    member = add_member(db, "pat@example.org")
    campaign = add_campaign(db)
    token = prefs_token(settings, member, campaign)
    page = client.get(f"/p/{token}")
    response = client.post(f"/p/{token}/leave", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    row = suppression(db, "pat@example.org")
    assert row is not None and row.source == "link" and row.campaign == SLUG
    after = client.get(f"/p/{token}")
    assert "You have unsubscribed" in after.text and "Save my preferences" not in after.text
    # A saved form from before cannot change a suppressed member, nor resubscribe them.
    before = snapshot(db)
    client.post(f"/p/{token}", data={"csrf": csrf_of(page.text), "name": "X", "region": "thanet"})
    assert snapshot(db) == before


# ---------------------------------------------------------------------------------------------
# Sign-up


def signup(client: TestClient, **fields: Any) -> httpx.Response:
    page = client.get("/subscribe")
    form: dict[str, Any] = {
        "csrf": csrf_of(page.text),
        "name": "Quinn Example",
        "email": "quinn@example.org",
        "region": "",
        "postcode": "ME14 1HH",
        "interests": ["refugees", "schools"],
        "consent": "yes",
        "website": "",
    }
    form.update(fields)
    response: httpx.Response = client.post("/subscribe", data=form)
    return response


def link_in(body: str, path: str) -> str:
    m = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"[A-Za-z0-9_=-]+)", body)
    assert m, f"no {path} link in:\n{body}"
    return m.group(1)


def test_signup_confirm_creates_member_and_consent(
    client: TestClient, db: Database, settings: Settings, box: Mailbox
) -> None:
    page = client.get("/subscribe")
    wording = consent_text(default_network(settings), settings)  # names the network
    assert "Kent Network" in wording and str(escape(wording)) in page.text
    assert '<label for="email">' in page.text and 'for="consent"' in page.text
    response = signup(client, email="Quinn@Example.org")
    assert response.status_code == 200 and "Check your inbox" in response.text
    box.wait(1)
    assert len(box.messages) == 1
    rcpts, msg = box.messages[0]
    assert rcpts == ["quinn@example.org"]
    assert "confirm" in str(msg["Subject"]).lower()
    assert msg["Auto-Submitted"] == "auto-generated"
    path = link_in(box.body(), "/confirm/")
    assert "quinn" not in path.lower()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Member)) == 0  # nothing stored yet

    before = snapshot(db)
    confirm_page = client.get(path)
    assert confirm_page.status_code == 200 and "quinn@example.org" in confirm_page.text
    client.head(path)
    assert snapshot(db) == before
    assert client.post(path, data={}).status_code == 403  # no CSRF value
    assert snapshot(db) == before

    done = client.post(path, data={"csrf": csrf_of(confirm_page.text)})
    assert done.status_code == 200 and "You are signed up" in done.text
    with db.session() as s:
        member = s.scalar(select(Member).where(Member.email == "quinn@example.org"))
        assert member is not None
        assert member.name == "Quinn Example"
        assert member.region is not None and member.region.slug == "maidstone-medway-swale"  # from ME14
        assert member.postcode == "ME14 1HH"
        assert [i.slug for i in member.interests] == ["refugees", "schools"]
        member_id = member.id
    events = consent_events(db, member_id)
    assert [(e.action, e.source) for e in events] == [("subscribe", "signup")]
    assert events[0].wording == wording
    assert f"form page; wording {wording_version(wording)}" in events[0].detail
    assert events[0].created_at is not None
    # Confirming again is harmless.
    assert client.post(path, data={"csrf": csrf_of(confirm_page.text)}).status_code == 200
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Member)) == 1


def test_existing_member_gets_a_mail_not_an_error(
    client: TestClient, db: Database, settings: Settings, box: Mailbox
) -> None:
    add_member(db, "rita@example.org")
    new = signup(client, email="somebody.new@example.org")
    existing = signup(client, email="RITA@example.org")
    assert existing.status_code == new.status_code == 200
    assert existing.text == new.text, "the page never tells who is a member"
    box.wait(2)
    assert len(box.messages) == 2
    rcpts, msg = box.messages[1]
    assert rcpts == ["rita@example.org"]
    assert "already subscribed" in str(msg["Subject"])
    body = box.body(1)
    assert "/confirm/" not in body
    prefs = link_in(body, "/p/")
    assert client.get(prefs).status_code == 200


def test_suppressed_address_resubscribes_only_by_confirming(
    client: TestClient, db: Database, settings: Settings, box: Mailbox
) -> None:
    member = add_member(db, "sam@example.org")
    with db.session() as s:
        suppress(s, "sam@example.org", reason="unsubscribe", source="one-click", campaign=SLUG)
    response = signup(client, email="sam@example.org", postcode="", region="thanet")
    assert response.status_code == 200
    box.wait(1)
    assert "confirm" in str(box.messages[0][1]["Subject"]).lower()
    path = link_in(box.body(), "/confirm/")
    assert is_suppressed_now(db, "sam@example.org"), "signing up alone lifts nothing"
    page = client.get(path)
    assert is_suppressed_now(db, "sam@example.org")
    done = client.post(path, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200
    assert not is_suppressed_now(db, "sam@example.org")
    actions = [(e.action, e.source) for e in consent_events(db, member)]
    assert actions == [("unsubscribe", "one-click"), ("resubscribe", "signup"), ("subscribe", "signup")]
    lifted = consent_events(db, member)[1]
    assert "suppression lifted" in lifted.detail and "one-click" in lifted.detail
    with db.session() as s:
        row = s.get(Member, member)
        assert row is not None and row.region is not None and row.region.slug == "thanet"


def is_suppressed_now(db: Database, address: str) -> bool:
    with db.session() as s:
        return is_suppressed(s, address)


def test_old_confirmation_link_cannot_undo_a_later_unsubscribe(
    client: TestClient, db: Database, settings: Settings, box: Mailbox, clock: Clock
) -> None:
    clock.offset = timedelta(minutes=-10)  # the sign-up happened ten minutes ago
    signup(client, email="tess@example.org")
    box.wait(1)
    path = link_in(box.body(), "/confirm/")
    page = client.get(path)
    assert client.post(path, data={"csrf": csrf_of(page.text)}).status_code == 200
    with db.session() as s:
        suppress(s, "tess@example.org", reason="unsubscribe", source="link")
    again = client.post(path, data={"csrf": csrf_of(page.text)})
    assert again.status_code == 409
    assert is_suppressed_now(db, "tess@example.org")


def test_honeypot_gets_the_usual_page_and_no_mail(client: TestClient, db: Database, box: Mailbox) -> None:
    human = signup(client, email="human@example.org")
    bot = signup(client, email="bot@example.org", website="http://spam.example")
    assert bot.status_code == 200 and bot.text == human.text
    box.wait(1)
    time.sleep(0.2)
    assert [r for r, _ in box.messages] == [["human@example.org"]]


def test_signup_rate_limit_per_client(
    web_settings: Settings, db: Database, shape: Shape, box: Mailbox
) -> None:
    app = create_app(web_settings, shape=shape, database=db, limits=Limits(signups_per_client=2))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert signup(client, email="u1@example.org").status_code == 200
        assert signup(client, email="u2@example.org").status_code == 200
        limited = signup(client, email="u3@example.org")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0
    box.wait(2)
    time.sleep(0.2)
    assert sorted(r[0] for r, _ in box.messages) == ["u1@example.org", "u2@example.org"]


def test_signup_mails_per_address_are_limited(
    web_settings: Settings, db: Database, shape: Shape, box: Mailbox
) -> None:
    app = create_app(web_settings, shape=shape, database=db, limits=Limits(mails_per_address=1))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        first = signup(client, email="vic@example.org")
        second = signup(client, email="VIC@example.org")
        assert first.status_code == second.status_code == 200 and first.text == second.text
    box.wait(1)
    time.sleep(0.2)
    assert len(box.messages) == 1


def test_signup_checks_the_form(client: TestClient, box: Mailbox) -> None:
    no_consent = signup(client, consent="")
    assert no_consent.status_code == 400 and "Tick the box" in no_consent.text
    bad_email = signup(client, email="not an address")
    assert bad_email.status_code == 400 and "Enter your email address" in bad_email.text
    nowhere = signup(client, postcode="ZZ1 1ZZ")
    assert nowhere.status_code == 400 and "choose your region" in nowhere.text
    assert 'value="Quinn Example"' in nowhere.text  # what was typed comes back
    time.sleep(0.2)
    assert box.messages == []


def test_signup_without_csrf_sends_nothing(client: TestClient, app: Starlette, box: Mailbox) -> None:
    """A post from another site (an embedded form) gets the form back, filled in, to finish here."""
    form = {"email": "wendy@example.org", "postcode": "CT1 1AA", "consent": "yes", "name": "Wendy"}
    with TestClient(app, base_url="http://127.0.0.1:8000") as stranger:
        response = stranger.post("/subscribe", data=form)
        assert response.status_code == 403
        assert 'value="wendy@example.org"' in response.text and "press Subscribe" in response.text
        # ...and pressing Subscribe on it works.
        finish = stranger.post("/subscribe", data={**form, "csrf": csrf_of(response.text)})
        assert finish.status_code == 200
    box.wait(1)
    assert [r for r, _ in box.messages] == [["wendy@example.org"]]


def test_embed_page_offers_a_form_snippet(client: TestClient) -> None:
    page = client.get("/subscribe/embed")
    assert page.status_code == 200
    assert "&lt;form method=&#34;post&#34; action=&#34;http://127.0.0.1:8000/subscribe&#34;&gt;" in page.text


# ---------------------------------------------------------------------------------------------
# Archive


def rendered_variant(
    settings: Settings, shape: Shape, region: str, interests: frozenset[str]
) -> tuple[str, str]:
    loaded = load_issue(SEED, shape)
    variant = compose(loaded.issue, shape, region, interests)
    return variant.key, Renderer(settings).render(variant, loaded).html


def test_archive_lists_sent_issues_with_atom(client: TestClient, db: Database, settings: Settings) -> None:
    add_campaign(db)
    add_campaign(db, "2025-12-draft", status="draft")
    add_campaign(db, "2025-12-sending", status="sending")
    page = client.get("/archive/")
    assert page.status_code == 200
    assert f'href="/archive/{SLUG}/"' in page.text
    assert "2025-12-draft" not in page.text and "2025-12-sending" not in page.text
    assert 'type="application/atom+xml"' in page.text
    feed = client.get("/archive/feed.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(feed.content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = root.findall("a:entry", ns)
    assert [e.findtext("a:id", namespaces=ns) for e in entries] == [f"{settings.base_url}/archive/{SLUG}/"]
    assert entries[0].findtext("a:updated", namespaces=ns) == "2025-11-17T08:30:00+00:00"
    assert root.findtext("a:title", namespaces=ns)


def test_archive_full_edition_has_every_item_and_no_personal_slots(
    client: TestClient, db: Database, shape: Shape
) -> None:
    add_campaign(db)
    add_member(db, "xena@example.org", name="Xena Private")
    response = client.get(f"/archive/{SLUG}/")
    assert response.status_code == 200
    html = response.text
    issue = load_issue(SEED, shape).issue
    for item in issue.items:  # type: ignore[union-attr]
        assert item.id in html  # every section's anchor
    assert "[[mailer:" not in html and "Xena" not in html
    assert "Dear reader" in html
    assert (
        "script" not in response.headers["content-security-policy"]
        or "'none'" in response.headers["content-security-policy"]
    )
    assert client.get("/archive/2025-12-nothing/").status_code == 404
    add_campaign(db, "2025-12-draft", status="draft")
    assert client.get("/archive/2025-12-draft/").status_code == 404


def test_view_in_browser_shows_the_readers_variant(
    client: TestClient, db: Database, settings: Settings, shape: Shape
) -> None:
    campaign = add_campaign(db, status="sending")  # members click it while the send goes on
    key, html = rendered_variant(settings, shape, "canterbury", frozenset({"refugees"}))
    with db.session() as s:
        s.add(Variant(campaign_id=campaign, key=key, label="x", subject="s", text="t", html=html))
    url = browser_url(settings, SLUG, key)
    assert url in html  # the link the email carries...
    response = client.get(url.removeprefix(settings.base_url))  # ...opens this variant
    assert response.status_code == 200
    assert "[[mailer:" not in response.text
    assert "Soroptimist" in response.text  # Canterbury's item
    assert "Faversham market" not in response.text  # Maidstone's calendar entry is not theirs
    assert f"{settings.base_url}/links" in response.text
    assert client.get(f"/archive/{SLUG}/nosuchkey").status_code == 404


# ---------------------------------------------------------------------------------------------
# Concurrency: a busy database and simultaneous unsubscribes


def test_write_retries_a_locked_database(db: Database) -> None:
    calls = []

    def work(session: Any) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("INSERT ...", {}, Exception("database is locked"))
        return "done"

    assert write(db, work) == "done" and len(calls) == 3
    with pytest.raises(OperationalError):
        write(db, lambda s: (_ for _ in ()).throw(OperationalError("x", {}, Exception("disk I/O error"))))


def test_one_click_waits_for_a_busy_writer(client: TestClient, db: Database, settings: Settings) -> None:
    """A send holding the write lock (SQLite) or the suppressions table (PostgreSQL) for a while:
    the one-click POST waits and succeeds, it does not fail with "database is locked"."""
    member = add_member(db, "yann@example.org")
    token = unsub_token(settings, member)
    holder = writer_database(settings.sqlalchemy_url)
    started = threading.Event()

    def hold() -> None:
        with holder.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                trans = conn.begin()  # BEGIN IMMEDIATE (writer_database): the write lock
                conn.execute(text("UPDATE members SET name = name"))
            else:
                trans = conn.begin()
                conn.execute(text("LOCK TABLE suppressions IN EXCLUSIVE MODE"))
            started.set()
            time.sleep(1.0)
            trans.commit()

    thread = threading.Thread(target=hold)
    thread.start()
    started.wait(5)
    response = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    thread.join()
    holder.dispose()
    assert response.status_code == 200
    assert suppression(db, "yann@example.org") is not None


@contextmanager
def live_server(app: Starlette) -> Iterator[str]:
    """The app served by a real uvicorn server on a free port, in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_real_server_one_click_and_concurrent_unsubscribes(
    app: Starlette, db: Database, settings: Settings
) -> None:
    members = [add_member(db, f"crowd{n}@example.org") for n in range(8)]
    campaign = add_campaign(db)
    with live_server(app) as base, httpx.Client(base_url=base, follow_redirects=False) as http:
        token = unsub_token(settings, members[0], campaign)
        before = snapshot(db)
        assert http.get(f"/u/{token}").status_code == 200
        assert http.head(f"/u/{token}").status_code == 200
        assert snapshot(db) == before
        body, headers = multipart([("List-Unsubscribe", "One-Click")])
        one = http.post(f"/u/{token}", content=body, headers=headers)
        assert one.status_code == 200 and "set-cookie" not in one.headers
        assert suppression(db, "crowd0@example.org") is not None

        # Every member's provider posts twice at once, all together.
        results: list[int] = []

        def post(member: int) -> None:
            with httpx.Client(base_url=base) as own:
                r = own.post(
                    f"/u/{unsub_token(settings, member, campaign)}", data={"List-Unsubscribe": "One-Click"}
                )
                results.append(r.status_code)

        threads = [threading.Thread(target=post, args=(m,)) for m in members[1:] for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200] * 14
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 8
        assert s.scalar(select(func.count()).select_from(ConsentEvent)) == 15


@pytest.mark.slow
def test_mailer_serve_runs_the_app_and_logs_no_whole_token(
    env: dict[str, str], db: Database, settings: Settings
) -> None:
    """`mailer serve` as its own process: it serves the pages, and its access log cuts every token
    in a path (/u/, /p/, /confirm/) to a short prefix."""
    member = add_member(db, "logged@example.org")
    unsubscribe = unsub_token(settings, member)
    preferences = prefs_token(settings, member)
    data = SignupData("logged@example.org", "", "kent", "", (), "wording", datetime.now(UTC))
    confirm = confirmation.seal(data, keys=settings.secrets)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # a web process of its own to start, on a busy machine
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/subscribe")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response is not None and response.status_code == 200
        assert "Sign up" in response.text
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get(f"/u/{unsubscribe}").status_code == 200
            assert http.post(f"/u/{unsubscribe}/preferences", data={}).status_code == 403
            assert http.get(f"/p/{preferences}").status_code == 200
            assert http.get(f"/confirm/{confirm}").status_code == 200
            assert http.get(f"/p/{preferences}?token={preferences}").status_code == 200
            evil = http.get("/admin", headers={"Host": "evil.example"})
            assert evil.status_code == 400 and "evil.example" not in evil.headers.get("location", "")
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0].decode()
    assert f"GET /u/{unsubscribe[:6]}... HTTP/1.1" in output, output
    assert f"POST /u/{unsubscribe[:6]}.../preferences HTTP/1.1" in output
    assert f"GET /confirm/{confirm[:6]}... HTTP/1.1" in output
    for token in (unsubscribe, preferences, confirm):
        assert token not in output and token[:12] not in output
    assert settings.secrets[0] not in output


# ---------------------------------------------------------------------------------------------
# Trust: hosts, expiring preferences links, mailed links, sign-up limits, admin log-in


def test_only_the_base_url_host_is_served(
    app: Starlette, web_settings: Settings, db: Database, shape: Shape
) -> None:
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False) as good:
        moved = good.get("/admin")
        assert moved.status_code in (307, 308)
        assert moved.headers["location"] == "http://127.0.0.1:8000/admin/"
        assert good.get("/", headers={"Host": "localhost:8000"}).status_code == 200
    with TestClient(app, base_url="http://evil.example", follow_redirects=False) as evil:
        for path in ("/admin", "/", "/subscribe", "/u/abc"):
            response = evil.get(path)
            assert response.status_code == 400, path
            assert "location" not in response.headers
    public = replace(web_settings, base_url="https://news.example.org", web_hosts="news2.example.org")
    other = create_app(public, shape=shape, database=db)
    with TestClient(other, base_url="https://news.example.org") as c:
        assert c.get("/").status_code == 200
        assert c.get("/", headers={"Host": "news2.example.org"}).status_code == 200
        assert c.get("/", headers={"Host": "127.0.0.1"}).status_code == 400  # base_url is not local


def test_unsubscribe_page_mails_a_preferences_link(
    client: TestClient, app: Starlette, db: Database, settings: Settings, box: Mailbox
) -> None:
    member = add_member(db, "uma@example.org", name="Uma Example")
    campaign = add_campaign(db)
    token = unsub_token(settings, member, campaign)
    page = client.get(f"/u/{token}")
    before = snapshot(db)
    with TestClient(app, base_url="http://127.0.0.1:8000") as stranger:  # no cookie: refused
        assert stranger.post(f"/u/{token}/preferences", data={"csrf": csrf_of(page.text)}).status_code == 403
    sent = client.post(f"/u/{token}/preferences", data={"csrf": csrf_of(page.text)})
    assert sent.status_code == 200 and "Check your inbox" in sent.text
    assert "/p/" not in sent.text
    assert snapshot(db) == before, "mailing a link changes no member"
    box.wait(1)
    ((rcpts, msg),) = box.messages
    assert rcpts == ["uma@example.org"] and msg["To"] == "uma@example.org"
    assert "Uma" not in str(msg)
    link = link_in(box.body(), "/p/")
    assert tokens.verify(link.removeprefix("/p/"), "preferences", keys=settings.secrets).campaign == campaign
    assert client.get(link).status_code == 200
    # At most three such mails an hour per member; the page says the same.
    for _ in range(4):
        again = client.post(f"/u/{token}/preferences", data={"csrf": csrf_of(page.text)})
        assert again.status_code == 200 and again.text == sent.text
    time.sleep(0.2)
    assert len(box.messages) == 3
    # An unsubscribed member gets no mail, and the same page.
    other = add_member(db, "vera@example.org")
    with db.session() as s:
        suppress(s, "vera@example.org", reason="unsubscribe", source="link")
    vera = unsub_token(settings, other)
    vera_page = client.get(f"/u/{vera}")
    quiet = client.post(f"/u/{vera}/preferences", data={"csrf": csrf_of(vera_page.text)})
    assert quiet.status_code == 200 and quiet.text == sent.text
    time.sleep(0.2)
    assert len(box.messages) == 3


def test_preferences_links_expire_and_offer_a_fresh_one(
    client: TestClient, db: Database, settings: Settings, box: Mailbox
) -> None:
    member = add_member(db, "wes@example.org", name="Wes Example")
    now = datetime.now(UTC)
    fresh = tokens.sign("preferences", member, keys=settings.secrets, now=now - timedelta(days=89))
    assert client.get(f"/p/{fresh}").status_code == 200
    old = tokens.sign("preferences", member, keys=settings.secrets, now=now - timedelta(days=91))
    before = snapshot(db)
    page = client.get(f"/p/{old}")
    assert page.status_code == 410
    assert "This link has expired" in page.text and "Wes" not in page.text
    assert f'action="/p/{old}/renew"' in page.text
    # The expired link can neither save nor leave.
    saved = client.post(f"/p/{old}", data={"csrf": csrf_of(page.text), "name": "Changed", "region": "kent"})
    assert saved.status_code == 410
    assert client.post(f"/p/{old}/leave", data={"csrf": csrf_of(page.text)}).status_code == 410
    assert client.post(f"/p/{old}/renew", data={}).status_code == 403  # no CSRF value
    assert snapshot(db) == before
    renewed = client.post(f"/p/{old}/renew", data={"csrf": csrf_of(page.text)})
    assert renewed.status_code == 200 and "Check your inbox" in renewed.text
    box.wait(1)
    assert [r for r, _ in box.messages] == [["wes@example.org"]]
    link = link_in(box.body(), "/p/")
    assert client.get(link).status_code == 200
    # A forged or tampered link is not "expired": it gets the plain bad-link page.
    assert client.get(f"/p/{_tampered(old)}").status_code == 400
    assert client.post(f"/p/{_tampered(old)}/renew", data={"csrf": csrf_of(page.text)}).status_code == 400


def test_preferences_link_days_setting(web_settings: Settings, db: Database, shape: Shape) -> None:
    member = add_member(db, "xia@example.org")
    short = create_app(replace(web_settings, preferences_link_days=1), shape=shape, database=db)
    two_days = tokens.sign(
        "preferences", member, keys=web_settings.secrets, now=datetime.now(UTC) - timedelta(days=2)
    )
    with TestClient(short, base_url="http://127.0.0.1:8000") as c:
        page = c.get(f"/p/{two_days}")
        assert page.status_code == 410 and "work for 1 days" in page.text


def test_signup_refuses_names_with_addresses_or_too_long(client: TestClient, box: Mailbox) -> None:
    for name in ("Click https://evil.example/login now", "visit evil.example/login", "bit.ly", "x@y.org"):
        response = signup(client, name=name, email="yves@example.org")
        assert response.status_code == 400, name
        assert "cannot contain a web or email address" in response.text
    long = signup(client, name="A" * 81)
    assert long.status_code == 400 and "at most 80 characters" in long.text
    assert signup(client, name="J.R.R. Tolkien", email="jrr@example.org").status_code == 200
    box.wait(1)
    time.sleep(0.2)
    assert [r for r, _ in box.messages] == [["jrr@example.org"]]


def test_sign_up_mails_echo_at_most_a_plain_first_name(
    client: TestClient, db: Database, box: Mailbox
) -> None:
    # A confirmation greets by the first word of the name typed, and only when it is plainly a
    # name (it cannot carry a link or a message); the rest of the name is never echoed, and a
    # current member's "already subscribed" mail echoes nothing a stranger typed.
    add_member(db, "zoe@example.org")
    assert signup(client, name="Quinn Attacker", email="quinn@example.org").status_code == 200
    assert signup(client, name="Quinn Attacker", email="zoe@example.org").status_code == 200
    assert signup(client, name="Ca$h4u Attacker", email="rae@example.org").status_code == 200
    box.wait(3)
    assert len(box.messages) == 3
    confirm, already, odd = box.server.messages
    assert b"\r\nDear Quinn,\r\n" in confirm.data and b"Attacker" not in confirm.data
    assert b"Quinn" not in already.data and b"Attacker" not in already.data
    assert b"\r\nHello,\r\n" in odd.data and b"Ca$h" not in odd.data and b"Attacker" not in odd.data
    assert box.messages[0][1]["To"] == "quinn@example.org"


def test_signup_with_a_non_ascii_address_and_a_name_is_an_error_not_a_crash(
    client: TestClient, box: Mailbox
) -> None:
    response = signup(client, email="jürgen@example.org", name="Jürgen Müller")
    assert response.status_code == 400
    assert "another address" in response.text
    idn = signup(client, email="ann@exämple.org", name="Ann Müller")  # a non-ASCII domain is fine
    assert idn.status_code == 200
    box.wait(1)
    assert [r for r, _ in box.messages] == [["ann@xn--exmple-cua.org"]]
    bad_postcode = signup(client, postcode="ME14\x001HH")
    assert bad_postcode.status_code == 400 and "Enter a postcode like" in bad_postcode.text


def test_mailbox_key_strips_tags_and_gmail_dots() -> None:
    assert mailbox_key("victim+1@example.net") == "victim@example.net"
    assert mailbox_key("victim+a+b@example.net") == "victim@example.net"
    assert mailbox_key("v.i.c.t.i.m@gmail.com") == "victim@gmail.com"
    assert mailbox_key("v.ictim+x@googlemail.com") == "victim@gmail.com"
    assert mailbox_key("v.ictim@example.net") == "v.ictim@example.net"  # dots count elsewhere
    assert network_of("203.0.113.77") == network_of("203.0.113.5") == "203.0.113.0/24"
    assert network_of("2001:db8:1:2:aaaa::1") == network_of("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert network_of("::ffff:198.51.100.7") == "198.51.100.0/24"
    assert network_of("testclient") == "testclient"


def test_mail_bomb_of_one_mailbox_delivers_at_most_three(app: Starlette, db: Database, box: Mailbox) -> None:
    """50 sign-ups for variants of one Gmail mailbox, each from another network: at most 3 mails."""
    variants = [
        f"victim+{n}@gmail.com"
        if n % 3 == 0
        else ("v.i.c.t.i.m" if n % 3 == 1 else "vic.tim") + f"+{n}@googlemail.com"
        for n in range(50)
    ]
    variants[0], variants[1] = "VICTIM@gmail.com", "v.i.c.t.i.m@gmail.com"
    answers = set()
    for n, address in enumerate(variants):
        with TestClient(app, base_url="http://127.0.0.1:8000", client=(f"198.{n}.{n}.7", 4000 + n)) as c:
            response = signup(c, email=address, name="")
            assert response.status_code == 200, (address, response.text)
            answers.add(response.text)
    assert len(answers) == 1, "every sign-up gets the same page"
    box.wait(3)
    time.sleep(0.3)
    assert 1 <= len(box.messages) <= 3


def test_signup_limits_hold_across_processes_and_restarts(
    web_settings: Settings, db: Database, shape: Shape, box: Mailbox
) -> None:
    """Two apps on one database (two `mailer serve` processes, or one restarted) share the counts."""
    limited = replace(web_settings, signup_posts_per_network=2, signup_mails_per_mailbox=1)
    first = create_app(limited, shape=shape, database=db)
    second = create_app(limited, shape=shape, database=db)
    with TestClient(first, base_url="http://127.0.0.1:8000", client=("203.0.113.5", 1)) as a:
        assert signup(a, email="ola+1@example.org").status_code == 200
    with TestClient(second, base_url="http://127.0.0.1:8000", client=("203.0.113.77", 2)) as b:
        assert signup(b, email="ola+2@example.org").status_code == 200  # the same /24, another app
        refused = signup(b, email="pia@example.org")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    restarted = create_app(limited, shape=shape, database=db)
    with TestClient(restarted, base_url="http://127.0.0.1:8000", client=("203.0.113.9", 3)) as c:
        assert signup(c, email="pia@example.org").status_code == 429
    with TestClient(restarted, base_url="http://127.0.0.1:8000", client=("2001:db8::1", 4)) as d:
        assert signup(d, email="pia@example.org").status_code == 200
    box.wait(2)
    time.sleep(0.2)
    assert sorted(r[0] for r, _ in box.messages) == ["ola+1@example.org", "pia@example.org"]


ADMIN_PASSWORD = "correct-admin-password-9"


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


@dataclass
class FrozenClock:
    """A clock that moves only when told (``offset``), so lock-outs do not depend on speed."""

    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return self.at + self.offset


def test_admin_login_attempts_are_slowed_per_address(
    web_settings: Settings, db: Database, shape: Shape
) -> None:
    clock = FrozenClock()
    settings = replace(web_settings, admin_password=ADMIN_PASSWORD)
    app = create_app(settings, shape=shape, database=db, clock=clock)
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("192.0.2.1", 1)) as c:
        assert c.get("/admin/").status_code == 401  # no password yet: not a failure
        statuses = [c.get("/admin/", headers=basic(f"guess-{n}")).status_code for n in range(100)]
        assert statuses[:5] == [401] * 5
        assert set(statuses[5:]) == {429}, "after five wrong passwords, every try is refused"
        locked = c.get("/admin/", headers=basic(ADMIN_PASSWORD))
        assert locked.status_code == 429, "even the right password waits"
        assert int(locked.headers["Retry-After"]) >= 1
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("192.0.2.2", 1)) as other:
        assert other.get("/admin/", headers=basic(ADMIN_PASSWORD)).status_code == 200  # per address
    restarted = create_app(settings, shape=shape, database=db, clock=clock)
    with TestClient(restarted, base_url="http://127.0.0.1:8000", client=("192.0.2.1", 1)) as c:
        assert c.get("/admin/", headers=basic(ADMIN_PASSWORD)).status_code == 429  # held in the database
        clock.offset = timedelta(seconds=2)  # the first lock-out (1 s) has passed
        assert c.get("/admin/", headers=basic("wrong again")).status_code == 401
        wait = c.get("/admin/", headers=basic(ADMIN_PASSWORD))
        assert wait.status_code == 429 and int(wait.headers["Retry-After"]) >= 2  # it doubles
        clock.offset = timedelta(hours=1)
        assert c.get("/admin/", headers=basic(ADMIN_PASSWORD)).status_code == 200
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(LoginAttempt)) == 0, "a success clears the count"


def test_logged_errors_are_redacted(settings: Settings) -> None:
    secret = settings.secrets[0]
    token = unsub_token(settings, 42)
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/p/{token}/leave?token={token}", "1.1", 200),
        None,
    )
    try:
        raise RuntimeError(f"cannot connect to postgresql://mailer:hunter2@db/mailer with key {secret}")
    except RuntimeError:
        failed = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    redacting = RedactingFilter([secret])
    formatter = logging.Formatter("%(message)s")
    for item in (record, failed):
        assert redacting.filter(item)
    line, trace = formatter.format(record), formatter.format(failed)
    assert token not in line and f"/p/{token[:6]}.../leave" in line
    assert "hunter2" not in trace and "mailer:***@db" in trace
    assert secret not in trace and "[redacted]" in trace
