"""Pages in a real browser: the app served by uvicorn on a free port, headless Chromium at phone and
desktop widths, and the checks every page owes its readers (``check_page``).

``chromium``, ``tab`` and ``pictures`` are fixtures: a test module imports those it uses.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from conftest import launch_chromium
from playwright.sync_api import Browser, Page
from starlette.applications import Starlette

WIDTHS = {"phone": (375, 740), "desktop": (1280, 900)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(app: Starlette, port: int) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def check_page(page: Page, screenshots: Path, name: str) -> None:
    """What every page owes its readers, checked in the browser; then a photo of it."""
    facts = page.evaluate(
        r"""() => {
          const headings = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1]);
          const fields = [...document.querySelectorAll('input,select,textarea')]
            .filter(el => el.type !== 'hidden' && !el.closest('[aria-hidden="true"]'));
          const unlabelled = fields.filter(el => !(el.id && document.querySelector(`label[for="${el.id}"]`)))
            .map(el => el.name);
          const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
          const lum = ([r, g, b]) => {
            const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
          };
          const background = el => {
            for (; el; el = el.parentElement) {
              const c = rgb(getComputedStyle(el).backgroundColor);
              if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
            }
            return [255, 255, 255];
          };
          const lowContrast = [];
          for (const el of document.querySelectorAll('body *')) {
            const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
            if (!own || el.closest('[aria-hidden="true"]')) continue;
            const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
            const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            const said = el.textContent.trim().slice(0, 30);
            if (ratio < 4.5) lowContrast.push(`${el.tagName} ${ratio.toFixed(2)} ${said}`);
          }
          return {
            lowContrast,
            lang: document.documentElement.lang,
            headings,
            unlabelled,
            overflow: document.documentElement.scrollWidth - window.innerWidth,
            viewport: !!document.querySelector('meta[name=viewport]'),
          };
        }"""
    )
    assert facts["lowContrast"] == [], "text contrast at least 4.5:1"
    assert facts["lang"] == "en-GB"
    assert facts["viewport"]
    assert facts["headings"].count(1) == 1 and facts["headings"][0] == 1
    assert all(b - a <= 1 for a, b in zip(facts["headings"], facts["headings"][1:], strict=False))
    assert facts["unlabelled"] == []
    assert facts["overflow"] <= 0, "no sideways scrolling"
    page.screenshot(path=str(screenshots / f"{name}-{page.width_name}.png"), full_page=True)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as launched:
        yield launched


@pytest.fixture(params=list(WIDTHS))
def tab(request: pytest.FixtureRequest, chromium: Browser) -> Iterator[Page]:
    width, height = WIDTHS[request.param]
    context = chromium.new_context(viewport={"width": width, "height": height}, java_script_enabled=False)
    opened = context.new_page()
    opened.width_name = request.param  # type: ignore[attr-defined]
    yield opened
    context.close()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: MAILER_SCREENSHOTS, else a temporary folder."""
    wanted = os.environ.get("MAILER_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("desk-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
