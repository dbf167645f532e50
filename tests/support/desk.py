"""Shared fixtures and helpers of the desk's tests, on SQLite and PostgreSQL: the workspaces, the
desk app (``Desk``) mailing the test SMTP server, and signing a person in (by the link mailed, or by
a link made in the database) with the CSRF values of the desk's forms.

A test module imports what it uses, e.g. ``from support.desk import demo_desk, workspace``; which
``workspace`` it imports decides the workspace of every fixture built on ``settings``:

- ``workspace``: the demo workspace (``mailer init --demo``): both networks, their lists and issues;
- ``networks_workspace`` (a fixture named ``workspace``): a plain ``mailer init`` workspace with the
  demo's two networks (Kent, Central England) and no issues.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from mailer.audience.importer import Options, import_csv
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import people, sessions
from mailer.models import AuditEntry, Campaign
from mailer.sending import Worker, campaign_status
from mailer.settings import Settings
from mailer.web import create_app
from mailer.web.desk.common import DeskLimits
from mailer.workspace import init_workspace, write_dkim_keys
from support.browser import free_port, live_server
from support.plainwords import PlainWordsClient

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = [
    "BASE",
    "CHECK_MAIL",
    "ISSUE",
    "Clock",
    "Desk",
    "ask_for_link",
    "browser_demo_desk",
    "browser_desk",
    "clock",
    "csrf_of",
    "demo_desk",
    "demo_workspace",
    "desk",
    "form_of",
    "hostile_desk",
    "link_from",
    "networks_workspace",
    "run_worker_until_done",
    "sign_in",
    "sign_in_by_link",
    "workspace",
]

REPO = Path(__file__).resolve().parents[2]
BASE = "http://127.0.0.1:8000"
CHECK_MAIL = "If you have an account on the desk, a link to sign in is on its way"
ISSUE = "2025-12-central-england"


@dataclass
class Clock:
    """The desk's clock: now, moved on by ``offset`` (a test sets it to age links and sessions)."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Desk:
    """The desk app on a test's workspace and database, mailing the test SMTP server."""

    app: Starlette
    settings: Settings
    db: Database
    shape: Shape
    smtp: Any  # tests/support/smtp_server.py's SmtpTestServer
    clock: Clock
    ids: dict[str, int] = field(default_factory=dict)
    """The user id of each person ``add`` added, by address."""
    raise_server_exceptions: bool = True
    """False for hostile tests (``hostile_desk``): a client sees a 500 as a page, not the exception."""

    def client(self) -> TestClient:
        """A browser of the desk, redirects not followed (enter it: ``with desk.client() as c``);
        every desk page it gets is checked for plain words (``plainwords``)."""
        return PlainWordsClient(
            self.app,
            base_url=BASE,
            raise_server_exceptions=self.raise_server_exceptions,
            follow_redirects=False,
        )

    def add(self, address: str, role: str, network: str = "", region: str = "", name: str = "") -> int:
        checked = people.check_role(self.shape, self.settings, role, network, region)
        with self.db.session() as s:
            user_id = people.add(s, address, checked, name=name, by=None, now=datetime.now(UTC)).person.id
        self.ids[address] = user_id
        return user_id

    def mails_to(self, address: str, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.smtp.messages if address in m.rcpt_tos]
            if len(found) >= count:
                break
            time.sleep(0.02)
        out = []
        for received in self.smtp.messages:
            if address in received.rcpt_tos:
                msg = email.message_from_bytes(received.data, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                out.append(msg)
        return out

    def audit(self) -> list[tuple[str, str]]:
        with self.db.session() as s:
            return [(a.action, a.object) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def demo_workspace(tmp_path: Path) -> Path:
    """A fresh demo workspace (``mailer init --demo``) in ``tmp_path``: both networks, their lists
    and issues; for a module's own ``workspace`` fixture that changes it."""
    root = tmp_path / "ws"
    init_workspace(root, demo=True)
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A fresh demo workspace (``mailer init --demo``): both networks, their lists and issues."""
    return demo_workspace(tmp_path)


@pytest.fixture(name="workspace")
def networks_workspace(tmp_path: Path) -> Path:
    """A fresh workspace (``mailer init``) with the demo's two networks (Kent, Central England)."""
    root = tmp_path / "ws"
    init_workspace(root)
    (root / "lists" / "networks.toml").write_text(
        (REPO / "lists" / "networks.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    return root


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def desk(settings: Settings, db: Database, shape: Shape, smtp_server: Any, clock: Clock) -> Desk:
    """The desk app on the test's workspace, mailing the test SMTP server; for ``TestClient``
    (``desk.client()``)."""
    configured = replace(settings, relay=smtp_server.url)
    app = create_app(configured, shape=shape, database=db, clock=clock)
    return Desk(app, configured, db, shape, smtp_server, clock)


@pytest.fixture
def hostile_desk(desk: Desk) -> Desk:
    """``desk`` for hostile requests: the sign-in limits out of the way (the tests send thousands of
    requests from one address), and a 500 seen as a page (``raise_server_exceptions``)."""
    desk.app.state.desk_limits = DeskLimits(requests_per_client=1_000_000, links_per_address=1_000_000)
    desk.raise_server_exceptions = False
    return desk


@pytest.fixture
def browser_desk(settings: Settings, db: Database, shape: Shape, smtp_server: Any) -> Iterator[Desk]:
    """The same desk served by uvicorn on a free port, for the browser."""
    port = free_port()
    configured = replace(settings, relay=smtp_server.url, base_url=f"http://127.0.0.1:{port}")
    app = create_app(configured, shape=shape, database=db)
    with live_server(app, port):
        yield Desk(app, configured, db, shape, smtp_server, Clock())


def csrf_of(html: str) -> str:
    """The CSRF value of the (first) form on a desk page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has a form with a CSRF value"
    return found.group(1)


def ask_for_link(client: TestClient, address: str) -> Any:
    page = client.get("/desk/sign-in")
    assert page.status_code == 200
    return client.post("/desk/sign-in", data={"csrf": csrf_of(page.text), "email": address})


def link_from(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    found = re.search(r"http://127\.0\.0\.1:8000(/desk/sign-in/[A-Za-z0-9_-]{43})\s", str(body.get_content()))
    assert found, "the mail holds a sign-in link"
    return found.group(1)


def sign_in(desk: Desk, client: TestClient, address: str) -> None:
    """Sign ``client`` in as ``address`` as a person does: ask for a link, open the mail the test
    SMTP server got, follow the link and press the button."""
    before = len(desk.mails_to(address, 0, 0))
    response = ask_for_link(client, address)
    assert response.status_code == 200 and CHECK_MAIL in response.text
    mails = desk.mails_to(address, before + 1)
    assert len(mails) == before + 1
    path = link_from(mails[-1])
    page = client.get(path)
    assert page.status_code == 200 and "Sign in" in page.text
    done = client.post(path, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/desk/"


def sign_in_by_link(desk: Desk, client: TestClient, address: str) -> str:
    """Sign ``client`` in as ``address`` (added by ``desk.add``) by a link made in the database (no
    mail), pressing the link page's button; the session cookie's value."""
    with desk.db.session() as s:
        token = sessions.issue_link(s, desk.ids[address], now=datetime.now(UTC))
    page = client.get(f"/desk/sign-in/{token}")
    done = client.post(f"/desk/sign-in/{token}", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303
    return str(client.cookies.get("mailer_desk"))


def _demo(settings: Settings, db: Database, shape: Shape) -> None:
    """The demo members imported and DKIM keys made, as ``mailer demo`` does."""
    write_dkim_keys(settings.workspace, settings)
    with db.session() as session:
        import_csv(
            session,
            settings.path("lists", "members.csv"),
            shape,
            options=Options(first_name_from_name=True),
        )


@pytest.fixture
def demo_desk(settings: Settings, db: Database, shape: Shape, smtp_server: Any, clock: Clock) -> Desk:
    """The desk app on the demo workspace (members imported), mailing the test SMTP server; for
    ``TestClient`` (``desk.client()``)."""
    configured = replace(settings, relay=smtp_server.url)
    _demo(configured, db, shape)
    app = create_app(configured, shape=shape, database=db, clock=clock)
    return Desk(app, configured, db, shape, smtp_server, clock)


@pytest.fixture
def browser_demo_desk(settings: Settings, db: Database, shape: Shape, smtp_server: Any) -> Iterator[Desk]:
    """The same desk served by uvicorn on a free port, for the browser."""
    port = free_port()
    configured = replace(settings, relay=smtp_server.url, base_url=f"http://127.0.0.1:{port}")
    _demo(configured, db, shape)
    app = create_app(configured, shape=shape, database=db)
    with live_server(app, port):
        yield Desk(app, configured, db, shape, smtp_server, Clock())


def form_of(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form that posts to ``action`` on a page."""
    found = re.search(r'<form[^>]*action="' + re.escape(action) + r'"[^>]*>(.*?)</form>', html, re.S)
    assert found, f"the page has a form posting to {action}"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', found.group(1)))


def run_worker_until_done(desk: Desk, slug: str, *, timeout: float = 120.0) -> Any:
    """Run the library's worker (``mailer worker``'s) in a thread until campaign ``slug`` is sent
    (or ``timeout`` seconds pass); its status."""
    worker = Worker(desk.db, desk.settings, name="desk-test-worker", poll=0.2)
    loop = asyncio.new_event_loop()
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["summary"] = loop.run_until_complete(worker.run())
        except BaseException as exc:  # reported to the test below
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done.is_set():
            with desk.db.session() as s:
                state = s.scalar(select(Campaign.status).where(Campaign.slug == slug))
            if state in ("sent", "cancelled"):
                break
            done.wait(0.2)
    finally:
        loop.call_soon_threadsafe(worker.stop, "the test is done")
        thread.join(30)
        loop.close()
    if "error" in outcome:
        raise outcome["error"]
    return campaign_status(desk.db, desk.shape, slug)
