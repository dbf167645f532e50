"""The issue form in Chromium, with JavaScript (at 1280 px: the live preview is beside the form)
and without it (at 375 px): the same edits done by drag or by buttons, and axe-core on each state
at both widths. One page load per state. On SQLite only: what the browser does is the same on
either database, and the same saves are tested over HTTP on both (test_desk_editor.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import launch_chromium
from playwright.sync_api import Browser, Page
from support.axe import check_axe
from support.browser import WIDTHS, free_port, live_server
from support.issue_form import CE, demo

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import people, sessions
from mailer.issue import load_campaign
from mailer.settings import Settings
from mailer.web import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"])]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return demo(tmp_path)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as launched:
        yield launched


@pytest.fixture
def site(settings: Settings, db: Database, shape: Shape) -> Iterator[tuple[str, str]]:
    """The desk served on a free port, and the session cookie of an editor of Central England."""
    port = free_port()
    configured = replace(settings, base_url=f"http://127.0.0.1:{port}")
    checked = people.check_role(shape, configured, "editor", "central-england", "")
    with db.session() as s:
        uid = people.add(s, "ed@example.org", checked, by=None, now=datetime.now(UTC)).person.id
        value = sessions.create(s, uid, now=datetime.now(UTC))
    with live_server(create_app(configured, shape=shape, database=db), port):
        yield configured.base_url, value


def opened(chromium: Browser, site: tuple[str, str], width: str, *, scripts: bool) -> Page:
    w, h = WIDTHS[width]
    context = chromium.new_context(viewport={"width": w, "height": h}, java_script_enabled=scripts)
    context.add_cookies([{"name": sessions.PLAIN_COOKIE, "value": site[1], "url": site[0]}])
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{site[0]}/desk/issues/{CE}")
    return page


def titles(workspace: Path, shape: Shape) -> list[str]:
    return [i.title for i in load_campaign(workspace, CE, shape).issue.items]


def test_with_javascript(chromium: Browser, site: tuple[str, str], workspace: Path, shape: Shape) -> None:
    before = titles(workspace, shape)
    small = opened(chromium, site, "phone", scripts=True)
    small.locator(".toolbar").first.wait_for()
    check_axe(small, name="form with scripts, 375 px")
    assert small.evaluate("document.documentElement.scrollWidth <= innerWidth")
    small.context.close()

    page = opened(chromium, site, "desktop", scripts=True)
    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.type)
        dialog.accept()

    page.on("dialog", answer)
    check_axe(page, name="form with scripts, 1280 px")
    sections = page.locator("section.item")
    sections.first.locator("summary").click()
    title = page.locator("#items-0-title")
    title.fill("A change not yet saved")
    frame = page.frame_locator("#live-preview")
    frame.get_by_text("A change not yet saved").first.wait_for()  # the live preview, unsaved
    page.wait_for_timeout(600)  # the draft is kept 0.4 s after the last change
    page.reload()
    assert "beforeunload" in dialogs, "leaving with unsaved changes warns"
    page.get_by_text("Your unsaved changes were brought back").wait_for()
    assert page.locator("#items-0-title").input_value() == "A change not yet saved"
    check_axe(page, name="draft restored")

    # Remove, then Undo: the item comes back.
    sections.first.locator("summary").click()
    sections.first.get_by_role("button", name="Remove item 1").click()
    assert sections.first.is_hidden()
    page.get_by_role("button", name="Undo").wait_for()
    check_axe(page, name="removed, with undo")
    page.get_by_role("button", name="Undo").click()
    assert sections.first.is_visible()

    # Drag the last item to the top, then save: the new order (and the restored change) are kept.
    sections.first.locator("summary").click()  # folded again: the four titles are in view together
    sections.last.locator("summary").drag_to(sections.first.locator("summary"))
    assert page.locator("#order").input_value().startswith(str(len(before) - 1))
    page.get_by_role("button", name="Save").first.click()
    page.get_by_text("Saved.").wait_for()
    now = titles(workspace, shape)
    assert now[0] == before[-1] and "A change not yet saved" in now, now
    page.context.close()


def test_without_javascript(chromium: Browser, site: tuple[str, str], workspace: Path, shape: Shape) -> None:
    before = titles(workspace, shape)
    page = opened(chromium, site, "phone", scripts=False)
    check_axe(page, name="form without scripts, 375 px")
    first = page.locator("section.item").first
    first.locator("summary").click()  # <details> opens without JavaScript
    page.locator("#items-0-title").fill("Edited without scripts")
    first.get_by_role("button", name="Move down item 1").click()
    page.get_by_text("Saved.").wait_for()
    assert titles(workspace, shape)[:2] == [before[1], "Edited without scripts"]
    page.locator("section.item").first.locator("summary").click()
    page.locator("section.item").first.get_by_role("button", name="Remove item 1").click()
    page.get_by_role("heading", name="Remove this item?").wait_for()
    check_axe(page, name="remove asked, 375 px")
    assert titles(workspace, shape)[0] == before[1], "nothing removed before it is confirmed"
    page.get_by_role("button", name="Remove the item").click()
    page.get_by_text("Saved.").wait_for()
    assert titles(workspace, shape) == ["Edited without scripts", *before[2:]]
    page.context.close()

    wide = opened(chromium, site, "desktop", scripts=False)
    check_axe(wide, name="form without scripts, 1280 px")
    with wide.context.expect_page() as shown:
        wide.get_by_role("button", name="Preview these changes").click()
    preview = shown.value
    preview.wait_for_load_state()
    assert "Edited without scripts" in preview.content()
    wide.context.close()
