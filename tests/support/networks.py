"""The demo workspace of two networks (Kent, Central England; ``init_workspace(demo=True)``) on the
test's database: the ``demo`` fixture (a test module imports it to use it), an issue sent through
the library to a Maildir outbox (``send_issue``), and the public web app on the demo's data, at a
fixed time (``app_for``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_SECRET
from starlette.applications import Starlette

from mailer import sending
from mailer.audience.importer import Options, import_csv
from mailer.audience.shape import Shape, load_shape, sync
from mailer.db import Database, open_database
from mailer.settings import Settings, load
from mailer.web import create_app
from mailer.workspace import init_workspace

CE = "2025-12-central-england"
KENT = "2025-11-kent-network"
TODAY = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)
FEW = """email,name,region
brum.one@example.org,Brum One,birmingham
derby.one@example.org,Derby One,derby
kent.one@example.org,Kent One,canterbury
"""


@dataclass
class Demo:
    root: Path
    settings: Settings
    shape: Shape
    db: Database


@pytest.fixture
def demo(tmp_path: Path, database_url: str) -> Iterator[Demo]:
    """The demo workspace (``init_workspace(demo=True)``) on this test's database, lists synced."""
    root = tmp_path / "demo"
    init_workspace(root, demo=True)
    settings = load(root, env={"MAILER_DATABASE_URL": database_url, "MAILER_SECRET": TEST_SECRET})
    shape = load_shape(root / "lists")
    db = open_database(settings)
    with db.session() as session:
        sync(session, shape)
    yield Demo(root, settings, shape, db)
    db.dispose()


def send_issue(demo: Demo, slug: str) -> None:
    """Send ``slug`` through the library to a Maildir outbox (a few members are imported first)."""
    few = demo.root / "few.csv"
    if not few.exists():
        few.write_text(FEW, encoding="utf-8")
        with demo.db.session() as session:
            import_csv(session, few, demo.shape, options=Options(consent="test members agreed"))
    outbox = replace(demo.settings, relay=f"maildir:{demo.root / 'outbox'}")
    result = sending.send(sending.plan_send(demo.db, outbox, demo.shape, slug, in_process=True))
    assert isinstance(result, sending.Sent), result


@dataclass
class Clock:
    now: datetime = TODAY

    def __call__(self) -> datetime:
        return self.now


def app_for(demo: Demo, smtp_server: Any) -> Starlette:
    settings = replace(demo.settings, relay=smtp_server.url)
    return create_app(settings, shape=demo.shape, database=demo.db, clock=Clock())
