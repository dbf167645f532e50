"""The web app speaks as each network: archive, feeds, calendars, the home page, the
sign-up form and the band of every page.

On the demo workspace (Kent, Central England; ``support.networks.demo``) with the Kent November and
the Central England December issues sent through the library, over HTTP, on SQLite and
PostgreSQL; and the single-network workspace of ``mailer init``, which looks as it did.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TEST_SECRET
from starlette.applications import Starlette
from support.ics_check import check_ics
from support.networks import CE, KENT, Demo, app_for, demo, send_issue

from mailer.audience.networks import default_network
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.settings import Settings, load
from mailer.web import create_app
from mailer.web.csrf import Csrf
from mailer.web.pages import Pages

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["demo"]  # the demo workspace fixture, shared
ATOM = {"a": "http://www.w3.org/2005/Atom"}
BASE = "http://127.0.0.1:8000"


@pytest.fixture
def client(demo: Demo, smtp_server: Any) -> Iterator[TestClient]:
    send_issue(demo, CE)
    send_issue(demo, KENT)
    with TestClient(app_for(demo, smtp_server), base_url=BASE) as c:
        yield c


def band(html: str) -> str:
    m = re.search(r'<header class="site"><a href="/">([^<]*)</a></header>', html)
    assert m, "no band"
    return m.group(1)


def h2s(html: str) -> list[str]:
    return re.findall(r"<h2[^>]*>([^<]*)</h2>", html)


@pytest.mark.slow
def test_archive_lists_each_network_under_its_name_and_filters(client: TestClient, demo: Demo) -> None:
    everything = client.get("/archive/")
    assert everything.status_code == 200
    assert h2s(everything.text) == ["Kent Network", "Central England Network"]
    kent_at = everything.text.index(">Kent Network</h2>")
    ce_at = everything.text.index(">Central England Network</h2>")
    assert kent_at < everything.text.index(f'href="/archive/{KENT}/"') < ce_at
    assert ce_at < everything.text.index(f'href="/archive/{CE}/"')

    ce = client.get("/archive/?network=central-england")
    assert ce.status_code == 200
    assert band(ce.text) == "Central England Network"
    assert "<title>Past newsletters – Central England Network</title>" in ce.text
    assert f'href="/archive/{CE}/"' in ce.text and f'href="/archive/{KENT}/"' not in ce.text
    assert 'href="/archive/feed.atom?network=central-england"' in ce.text
    assert 'href="/subscribe?network=central-england"' in ce.text  # the footer speaks as it too
    kent = client.get("/archive/?network=kent")
    assert band(kent.text) == "Kent Network"
    assert f'href="/archive/{KENT}/"' in kent.text and f'href="/archive/{CE}/"' not in kent.text

    missing = client.get("/archive/?network=wessex")
    assert missing.status_code == 404 and "Page not found" in missing.text
    assert "wessex" not in missing.text


def test_each_network_has_its_own_feed(client: TestClient, demo: Demo) -> None:
    feed = ET.fromstring(client.get("/archive/feed.atom?network=central-england").content)
    assert feed.findtext("a:title", namespaces=ATOM) == "Central England Network: newsletter archive"
    assert feed.findtext("a:author/a:name", namespaces=ATOM) == "Central England Network"
    assert (
        feed.findtext("a:id", namespaces=ATOM) == f"{demo.settings.base_url}/archive/?network=central-england"
    )
    ids = [e.findtext("a:id", namespaces=ATOM) for e in feed.findall("a:entry", ATOM)]
    assert ids == [f"{demo.settings.base_url}/archive/{CE}/"]
    kent = ET.fromstring(client.get("/archive/feed.atom?network=kent").content)
    assert kent.findtext("a:title", namespaces=ATOM) == "Kent Network: newsletter archive"
    assert [e.findtext("a:id", namespaces=ATOM) for e in kent.findall("a:entry", ATOM)] == [
        f"{demo.settings.base_url}/archive/{KENT}/"
    ]
    every = ET.fromstring(client.get("/archive/feed.atom").content)
    assert len(every.findall("a:entry", ATOM)) == 2
    assert client.get("/archive/feed.atom?network=nope").status_code == 404


def test_an_issue_page_speaks_as_its_network(client: TestClient) -> None:
    ce = client.get(f"/archive/{CE}/")
    assert ce.status_code == 200
    assert "Central England Network" in ce.text and "Kent Network" not in ce.text
    kent = client.get(f"/archive/{KENT}/")
    assert "Kent Network" in kent.text and "Central England Network" not in kent.text


def test_calendar_feeds_speak_as_the_regions_network(client: TestClient) -> None:
    canterbury = check_ics(client.get("/calendar/canterbury.ics").content)
    assert str(canterbury["prodid"]) == "-//Kent Network//mailer//EN"
    assert str(canterbury["x-wr-calname"]) == "Kent Network: events in Canterbury"
    brum = check_ics(client.get("/calendar/birmingham.ics").content)
    assert str(brum["prodid"]) == "-//Central England Network//mailer//EN"
    assert str(brum["x-wr-calname"]) == "Central England Network: events in Birmingham"
    titles = [str(e["summary"]) for e in brum.walk("VEVENT")]
    assert "Birmingham Group monthly meeting" in titles and "Derby Group meeting" not in titles
    # One event's file speaks as its issue's network; a region above every network, and all.ics,
    # as the organisation (mailer.toml's).
    one = client.get(f"/calendar/event/{CE}-calendar-1.ics")
    assert str(check_ics(one.content)["prodid"]) == "-//Central England Network//mailer//EN"
    above = check_ics(client.get("/calendar/south-east.ics").content)
    assert str(above["x-wr-calname"]).endswith(": events in South East")
    page = client.get("/calendar/")
    assert re.findall(r"<h3>([^<]*)</h3>", page.text) == ["Kent Network", "Central England Network"]


def test_home_lists_the_networks_with_their_sign_up_links(client: TestClient) -> None:
    home = client.get("/")
    assert h2s(home.text) == ["Kent Network", "Central England Network"]
    assert 'href="/subscribe?network=kent"' in home.text
    assert 'href="/subscribe?network=central-england"' in home.text
    assert 'href="/archive/?network=central-england"' in home.text


def test_a_networks_sign_up_form_lists_its_regions(client: TestClient) -> None:
    ce = client.get("/subscribe?network=central-england")
    assert ce.status_code == 200 and band(ce.text) == "Central England Network"
    options = re.findall(r'<option value="([a-z-]+)"', ce.text)
    assert "birmingham" in options and "central-england" in options and "derby" in options
    assert "canterbury" not in options and "kent" not in options and "south-east" not in options
    assert 'action="/subscribe?network=central-england"' in ce.text
    every = client.get("/subscribe")
    groups = re.findall(r'<optgroup label="([^"]+)">', every.text)
    assert groups == ["Kent Network", "Central England Network"]
    options = re.findall(r'<option value="([a-z-]+)"', every.text)
    assert "canterbury" in options and "birmingham" in options and "south-east" not in options
    assert client.get("/subscribe?network=atlantis").status_code == 404
    assert client.post("/subscribe?network=atlantis", data={}).status_code == 404
    embed = client.get("/subscribe/embed?network=kent")
    assert "/subscribe?network=kent" in embed.text and "Sign up to Kent Network" in embed.text


def luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize(
    "colour",
    ["#ffde00", "#1d3557", "#777777", "#808080", "#00ff00", "#ff0000", "#0000ff", "#000000", "#ffffff"],
)
def test_the_band_takes_the_networks_colour_with_readable_text(colour: str, workspace: Path) -> None:
    settings = load(workspace, env={"MAILER_SECRET": TEST_SECRET})
    network = replace(default_network(settings), colour=colour)
    pages = Pages(settings, Csrf(settings.secrets, secure=False))
    html = pages.text("message.html", network=network, title="T", text="x")
    m = re.search(r"header\.site \{ background: (#[0-9a-f]{6}); color: (#[0-9a-f]{3}); ", html)
    assert m, html[:2000]
    text = "#" + "".join(c * 2 for c in m.group(2)[1:])
    assert m.group(1) == colour and contrast(text, colour) >= 4.5
    assert f"header.site a {{ color: {m.group(2)};" in html


# ---------------------------------------------------------------------------------------------
# A workspace with one network (mailer init, no lists/networks.toml): as before


@pytest.fixture
def single(settings: Settings, db: Database, shape: Shape, smtp_server: Any) -> Iterator[TestClient]:
    app: Starlette = create_app(replace(settings, relay=smtp_server.url), shape=shape, database=db)
    with TestClient(app, base_url=BASE) as c:
        yield c


def test_one_network_looks_as_before(single: TestClient, settings: Settings) -> None:
    home = single.get("/")
    assert band(home.text) == settings.organisation == "Kent Network"
    assert h2s(home.text) == [] and 'href="/subscribe"' in home.text
    assert "header.site { background: #ffde00; color: #000; " in home.text
    assert 'href="/archive/">Past newsletters' in home.text  # no ?network= in the footer
    form = single.get("/subscribe")
    assert "<optgroup" not in form.text and 'value="south-east"' in form.text
    assert single.get("/archive/?network=kent-network").status_code == 200  # its one network
    assert single.get("/archive/?network=kent").status_code == 404
    archive = single.get("/archive/")
    assert h2s(archive.text) == []


@pytest.mark.slow
def test_mailer_serve_names_every_network(demo: Demo, database_url: str) -> None:
    import os
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = dict(os.environ)
    env.update(MAILER_WORKSPACE=str(demo.root), MAILER_DATABASE_URL=database_url, MAILER_SECRET=TEST_SECRET)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # a web process of its own to start, on a busy machine
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0].decode()
    assert f"Serving Kent Network and Central England Network on http://127.0.0.1:{port}" in output, output


@pytest.mark.browser
def test_network_pages_in_a_browser(demo: Demo, smtp_server: Any, tmp_path: Path) -> None:
    """The pages that changed, in Chromium at both widths: headings in order, labels, contrast (the
    Central England band made dark blue here, so its text turns white), no sideways scrolling."""
    from conftest import launch_chromium
    from support.browser import WIDTHS, check_page, free_port, live_server

    from mailer.audience.shape import load_shape

    toml = demo.root / "lists" / "networks.toml"
    head, _sep, tail = toml.read_text(encoding="utf-8").rpartition('colour = "#ffde00"')  # Central England's
    toml.write_text(head + 'colour = "#1d3557"' + tail, encoding="utf-8")
    shape = load_shape(demo.root / "lists")
    assert shape.networks["central-england"].colour == "#1d3557"
    send_issue(demo, CE)
    port = free_port()
    settings = replace(demo.settings, relay=smtp_server.url, base_url=f"http://127.0.0.1:{port}")
    app = create_app(settings, shape=shape, database=demo.db)
    pages = [
        ("/", "Example Human Rights UK"),
        ("/archive/", "Past newsletters"),
        ("/archive/?network=central-england", "Past newsletters"),
        ("/subscribe", "Sign up for our emails"),
        ("/subscribe?network=central-england", "Sign up for our emails"),
        ("/calendar/", "Event calendars"),
    ]
    with live_server(app, port) as base, launch_chromium() as chromium:
        for width_name, (width, height) in WIDTHS.items():
            context = chromium.new_context(
                viewport={"width": width, "height": height}, java_script_enabled=False
            )
            page = context.new_page()
            page.width_name = width_name
            for path, heading in pages:
                page.goto(base + path)
                page.get_by_role("heading", level=1, name=heading, exact=True).wait_for()
                name = "networks-" + (path.strip("/").replace("/", "-").replace("?", "-") or "home")
                check_page(page, tmp_path, name)
            context.close()
