"""The desk's issue form over HTTP: a demo workspace, an editor of Central England signed in
(``signed_editor``), the form's fields as a browser posts them (``form_fields``), and pictures
made with Pillow (``picture``). A test module defines its own fixtures with these."""

from __future__ import annotations

import io
import re
import warnings
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

from PIL import Image

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import people, sessions
from mailer.settings import Settings
from mailer.workspace import init_workspace

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8000"
CE = "2025-12-central-england"


def demo(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    init_workspace(root, demo=True)
    return root


def signed_editor(app: Any, db: Database, shape: Shape, settings: Settings) -> TestClient:
    checked = people.check_role(shape, settings, "editor", "central-england", "")
    with db.session() as s:
        uid = people.add(s, "ed@example.org", checked, by=None, now=datetime.now(UTC)).person.id
        value = sessions.create(s, uid, now=datetime.now(UTC))
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    client.cookies.set(sessions.PLAIN_COOKIE, value)
    return client


def form_fields(html: str) -> dict[str, str]:
    """The main form's text, hidden and checked fields (not the upload forms' fields)."""
    main = html.split('id="issue-form"', 1)[1].split("</form>", 1)[0]
    out: dict[str, str] = {}
    for tag in re.findall(r"<input [^>]*>", main):
        name = re.search(r'name="([^"]+)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if not name or not kind or " form=" in tag:
            continue
        if kind.group(1) == "checkbox":
            if " checked" in tag:
                out[name.group(1)] = "yes"
            continue
        value = re.search(r'value="([^"]*)"', tag)
        out[name.group(1)] = unescape(value.group(1)) if value else ""
    for name, text in re.findall(r'<textarea [^>]*name="([^"]+)"[^>]*>\n(.*?)</textarea>', main, re.S):
        out[name] = unescape(text).replace("\n", "\r\n")
    return out


def picture(size: tuple[int, int], kind: str = "JPEG", *, gps: bool = False) -> bytes:
    """A picture of ``size`` in ``kind``; with ``gps``, EXIF holding a camera and a location."""
    image = Image.new("RGB", size, (200, 30, 40))
    out = io.BytesIO()
    extra: dict[str, Any] = {}
    if gps:
        exif = Image.Exif()
        exif[0x010F] = "PhoneMaker"  # Make
        exif[0x0110] = "Phone 12"  # Model
        exif[0x8825] = {1: "N", 2: (52.0, 28.0, 0.0), 3: "W", 4: (1.0, 53.0, 0.0)}  # GPS
        extra["exif"] = exif
    image.save(out, kind, **extra)
    return out.getvalue()
