"""``bench/desk.py --quick`` runs and reports every desk page (its output, not its timings), and
the memory of issue files it measures never answers with a stale issue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from starlette.routing import Route
from support.desk import workspace

from mailer.audience.shape import Shape
from mailer.errors import ContentError
from mailer.issue import Newsletter, load_campaign
from mailer.web.desk.routes import routes

__all__ = ["workspace"]

pytestmark = pytest.mark.slow


def test_the_bench_times_every_desk_page_beside_the_sign_in_page(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "desk.py"),
            "--quick",
            "--json",
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    anchor = rows[0]
    assert anchor["path"] == "/desk/sign-in" and anchor["target_ms"] is None and anchor["ratio"] == 1.0
    for row in rows:
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["max_ms"], row
        assert row["met"] == (row["target_ms"] is None or row["p95_ms"] <= row["target_ms"])
    labels = [r["label"] for r in rows]
    assert len(labels) == len(set(labels))
    # Every page of the desk (its GET routes) is measured: a new page cannot be forgotten.
    pages = {
        r.path.replace("{", "").replace("}", "")
        for r in routes
        if isinstance(r, Route) and "GET" in (r.methods or ())
    }
    assert pages - {"/desk/sign-in"} <= set(labels)
    form = next(r for r in rows if r["label"] == "/desk/issues/slug (20 items)")
    assert form["target_ms"] == 150 and form["path"] == "/desk/issues/2026-01-twenty-items"
    assert {r["target_ms"] for r in rows[1:]} == {100, 150}


def test_an_issue_read_before_is_read_again_when_its_file_or_folder_changes(
    workspace: Path, shape: Shape
) -> None:
    slug = "2025-12-central-england"
    path = workspace / "campaigns" / slug / "issue.yaml"
    first = load_campaign(workspace, slug, shape)
    again = load_campaign(workspace, slug, shape)
    assert again.issue == first.issue and again.warnings == first.warnings
    again.warnings.append(first.warnings[0] if first.warnings else None)  # type: ignore[arg-type]
    assert load_campaign(workspace, slug, shape).warnings == first.warnings  # each caller its own copy

    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace('title: "Central England', 'title: "Edited Central England', 1), encoding="utf-8"
    )
    assert load_campaign(workspace, slug, shape).issue.title.startswith("Edited Central England")

    # An image of an item: valid while its file is beside the issue, an error once it is gone.
    (path.parent / "banner.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    image = "  - id: peace-week\n    image: {src: banner.png, alt: A banner of Peace Week}\n"
    path.write_text(text.replace("  - id: peace-week\n", image, 1), encoding="utf-8")
    issue = load_campaign(workspace, slug, shape).issue
    assert isinstance(issue, Newsletter) and issue.items[0].image is not None
    (path.parent / "banner.png").unlink()
    with pytest.raises(ContentError, match=r"banner\.png"):
        load_campaign(workspace, slug, shape)
    path.write_text(text, encoding="utf-8")
    assert load_campaign(workspace, slug, shape).issue.title == first.issue.title
