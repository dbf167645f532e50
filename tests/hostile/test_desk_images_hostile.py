"""Pictures uploaded on the desk's issue form, hostile: a polyglot (a JPEG with an HTML page and a
zip after it), a decompression bomb (a small PNG of 400 megapixels), a huge file (past 10 MB), a
file of the wrong type with the right name (HTML, a GIF and an SVG called ``photo.jpg``), and a
path-traversal file name. What must happen: a plain refusal naming what is wrong (400, or 403 for
a body too large to read), never a 5xx; nothing written but a re-encoded picture (its trailing
bytes gone) named by its content inside the campaign's folder; the issue file unchanged by a
refusal."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support.issue_form import CE, demo, form_fields, picture, signed_editor

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.settings import Settings
from mailer.web import create_app


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return demo(tmp_path)


@pytest.fixture
def editor(settings: Settings, db: Database, shape: Shape) -> Iterator[Any]:
    with signed_editor(create_app(settings, shape=shape, database=db), db, shape, settings) as client:
        yield client


def bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG", optimize=True)
    return out.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>'
REFUSED = [
    ("a bomb", bomb(), "photo.png", "too many pixels"),
    ("huge", picture((64, 64)) + b"\0" * (10 * 1024 * 1024), "photo.jpg", ""),
    ("html named .jpg", b"<!doctype html><script>alert(1)</script>", "photo.jpg", "not a JPEG, PNG or WebP"),
    ("svg named .png", SVG, "photo.png", "not a JPEG, PNG or WebP"),
    ("gif named .jpg", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "photo.jpg", "not a JPEG, PNG or WebP"),
    ("cut short", picture((300, 200))[:400], "photo.jpg", "cannot be read"),
]


def test_hostile_uploads_are_refused_or_made_harmless(editor: Any, workspace: Path) -> None:
    folder = workspace / "campaigns" / CE
    issue = (folder / "issue.yaml").read_bytes()
    before = {p.name for p in folder.iterdir()}
    fields = form_fields(editor.get(f"/desk/issues/{CE}").text)
    form = {"csrf": fields["csrf"], "version": fields["version"], "item": "0", "alt": "A picture"}
    for case, data, name, says in REFUSED:
        answer = editor.post(
            f"/desk/issues/{CE}/image", data=form, files={"image": (name, data, "image/jpeg")}
        )
        assert answer.status_code in (400, 403), case
        assert says in answer.text, case
        assert (folder / "issue.yaml").read_bytes() == issue, case
        assert {p.name for p in folder.iterdir()} == before, case
    for attack in ({**form, "item": "99"}, {**form, "item": "-1"}, {**form, "version": "0" * 64}):
        answer = editor.post(
            f"/desk/issues/{CE}/image",
            data=attack,
            files={"image": ("p.jpg", picture((10, 10)), "image/jpeg")},
        )
        assert answer.status_code == 400, attack
        assert (folder / "issue.yaml").read_bytes() == issue, attack

    polyglot = picture((50, 40)) + b"<html><script>alert(1)</script></html>PK\x03\x04zipzip"
    traversal = "../../../../tmp/evil.jpg"
    answer = editor.post(
        f"/desk/issues/{CE}/image", data=form, files={"image": (traversal, polyglot, "image/jpeg")}
    )
    assert answer.status_code == 303, answer.text
    new = {p.name for p in folder.iterdir()} - before
    assert len(new) == 1 and next(iter(new)).startswith("image-"), new
    stored = (folder / next(iter(new))).read_bytes()
    assert b"<script>" not in stored and b"PK\x03\x04" not in stored
    assert Image.open(io.BytesIO(stored)).size == (50, 40)
    assert not Path("/tmp/evil.jpg").exists() or Path("/tmp/evil.jpg").read_bytes() != polyglot
