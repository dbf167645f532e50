"""Events for the tests of events' mail: the demo's newsletters sent (enqueued and started, so that
their events are in the calendar), the demo members imported, and a digest's file in the workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

from mailer import sending
from mailer.audience.importer import import_csv
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.settings import Settings

REPO = Path(__file__).resolve().parents[2]
NEWSLETTERS = ("2025-11-kent-network", "2025-12-central-england")
DIGEST = "whats-on-kent"


def demo_calendar(db: Database, settings: Settings, shape: Shape, workspace: Path) -> None:
    """The demo members imported and the demo's two newsletters sent to the workers (their
    campaigns ``sending``: their events are in the calendar), with nothing delivered yet."""
    with db.session() as session:
        report = import_csv(session, REPO / "lists" / "members.csv", shape)
    assert report.rejected == 0
    for slug in NEWSLETTERS:
        shutil.copytree(REPO / "campaigns" / slug, workspace / "campaigns" / slug)
        sending.enqueue(db, sending.prepare(db, settings, shape, slug))
        sending.start_campaign(db, slug)


def add_digest(workspace: Path, text: str | None = None) -> Path:
    """The Kent digest (tests/fixtures/digest/issue.yaml), or ``text``, as ``campaigns/whats-on-kent``."""
    folder = workspace / "campaigns" / DIGEST
    folder.mkdir(parents=True, exist_ok=True)
    source = REPO / "tests" / "fixtures" / "digest" / "issue.yaml"
    path = folder / "issue.yaml"
    path.write_text(text if text is not None else source.read_text(encoding="utf-8"), encoding="utf-8")
    return path
