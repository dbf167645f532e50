"""Shared fixtures of the desk's tests on a fresh demo workspace (both networks, the demo members,
the Central England December issue), on SQLite and PostgreSQL.

A test module imports what it uses, e.g. ``from desk_fixtures import demo_desk, workspace``; the
helpers that sign a person in (by the link mailed to the test SMTP server) come from
``test_desk_web`` and are re-exported here.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_desk_web import BASE, Clock, Desk, ask_for_link, clock, csrf_of, link_from, sign_in
from test_web_browser import free_port, live_server

from mailer.audience.importer import import_csv
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.models import Campaign
from mailer.sending import Worker, campaign_status
from mailer.settings import Settings
from mailer.web import create_app
from mailer.workspace import init_workspace, write_dkim_keys

__all__ = [
    "BASE",
    "ISSUE",
    "Clock",
    "Desk",
    "ask_for_link",
    "browser_demo_desk",
    "clock",
    "csrf_of",
    "demo_desk",
    "form_of",
    "link_from",
    "run_worker_until_done",
    "sign_in",
    "workspace",
]

ISSUE = "2025-12-central-england"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A fresh demo workspace (``mailer init --demo``): both networks, their lists and issues."""
    root = tmp_path / "ws"
    init_workspace(root, demo=True)
    return root


def _demo(settings: Settings, db: Database, shape: Shape) -> None:
    """The demo members imported and DKIM keys made, as ``mailer demo`` does."""
    write_dkim_keys(settings.workspace, settings)
    with db.session() as session:
        import_csv(session, settings.path("lists", "members.csv"), shape)


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
