"""The issue form's editing helpers over HTTP: the new order of items from a drag, Remove asked
first without JavaScript, the live preview of an unsaved change (nothing written), and a photo
uploaded for an item (resized, its EXIF and location gone, its description required, served by the
archive at the address the mail uses)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support.issue_form import CE, demo, form_fields, picture, signed_editor

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import images
from mailer.issue import load_campaign
from mailer.models import Campaign
from mailer.settings import Settings
from mailer.web import assets, create_app


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return demo(tmp_path)


@pytest.fixture
def editor(settings: Settings, db: Database, shape: Shape) -> Iterator[Any]:
    with signed_editor(create_app(settings, shape=shape, database=db), db, shape, settings) as client:
        yield client


def issue_file(workspace: Path) -> Path:
    return workspace / "campaigns" / CE / "issue.yaml"


def titles(workspace: Path, shape: Shape) -> list[str]:
    return [i.title for i in load_campaign(workspace, CE, shape).issue.items]


def test_a_drag_saves_the_new_order_and_the_page_carries_its_script(
    editor: Any, workspace: Path, shape: Shape
) -> None:
    page = editor.get(f"/desk/issues/{CE}")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = re.search(r'<script src="(/static/desk/issue_edit\.js\?v=[0-9a-f]+)" defer>', page.text)
    assert script and script.group(1) == assets.url("desk/issue_edit.js")
    served = editor.get(script.group(1))
    assert served.status_code == 200 and "max-age=31536000" in served.headers["cache-control"]
    assert '<details class="item"' in page.text and "<summary><h3" in page.text
    before = titles(workspace, shape)
    fields = form_fields(page.text)
    order = list(range(len(before)))[::-1]
    moved = editor.post(
        f"/desk/issues/{CE}", data={**fields, "order": ",".join(map(str, order)), "action": "save"}
    )
    assert moved.status_code == 303
    assert titles(workspace, shape) == before[::-1]
    fields = form_fields(editor.get(f"/desk/issues/{CE}").text)
    for bad in ("0,0,1", "9,8,7", "x", "0," * 3000):
        editor.post(f"/desk/issues/{CE}", data={**fields, "order": bad, "action": "save"})
        assert titles(workspace, shape) == before[::-1], bad


def test_remove_without_javascript_asks_first_and_keeps_other_changes(
    editor: Any, workspace: Path, shape: Shape
) -> None:
    before = titles(workspace, shape)
    fields = form_fields(editor.get(f"/desk/issues/{CE}").text)
    fields["items-1-title"] = "A new title"
    asked = editor.post(f"/desk/issues/{CE}", data={**fields, "action": "remove-item-0"})
    assert asked.status_code == 303 and asked.headers["location"] == f"/desk/issues/{CE}/remove?item=0"
    assert titles(workspace, shape) == [before[0], "A new title", *before[2:]], "saved, nothing removed yet"
    confirm = editor.get(asked.headers["location"])
    assert confirm.status_code == 200 and "Remove this item?" in confirm.text and before[0] in confirm.text
    posted = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', confirm.text))
    done = editor.post(f"/desk/issues/{CE}", data={**posted, "action": "remove-item-0"})
    assert done.status_code == 303
    assert titles(workspace, shape) == ["A new title", *before[2:]]


def test_the_live_preview_shows_an_unsaved_change_and_writes_nothing(editor: Any, workspace: Path) -> None:
    fields = form_fields(editor.get(f"/desk/issues/{CE}").text)
    text = issue_file(workspace).read_bytes()
    fields["items-0-title"] = "An unsaved headline"
    shown = editor.post(f"/desk/issues/{CE}/preview/live", data={**fields, "action": "save"})
    assert shown.status_code == 200, shown.text
    assert "An unsaved headline" in shown.text
    assert "sandbox" in shown.headers["content-security-policy"]
    assert issue_file(workspace).read_bytes() == text
    assert not [p.name for p in issue_file(workspace).parent.iterdir() if p.name.startswith(".")]
    no_csrf = editor.post(f"/desk/issues/{CE}/preview/live", data={**fields, "csrf": "x"})
    assert no_csrf.status_code == 403


def upload(editor: Any, fields: dict[str, str], data: bytes, alt: str, name: str = "photo.jpg") -> Any:
    return editor.post(
        f"/desk/issues/{CE}/image",
        data={"csrf": fields["csrf"], "version": fields["version"], "item": "0", "alt": alt},
        files={"image": (name, data, "image/jpeg")},
    )


def test_an_uploaded_photo_is_resized_stripped_described_and_served_by_the_archive(
    editor: Any, workspace: Path, shape: Shape, db: Database
) -> None:
    fields = form_fields(editor.get(f"/desk/issues/{CE}").text)
    photo = picture((3000, 2000), gps=True)
    assert Image.open(io.BytesIO(photo)).getexif().get_ifd(0x8825), "the photo holds a location"
    refused = upload(editor, fields, photo, "  ")
    assert refused.status_code == 400 and "Describe the picture" in refused.text
    assert upload(editor, fields, photo, "Marchers on the ring road").status_code == 303
    image = load_campaign(workspace, CE, shape).issue.items[0].image
    assert image is not None and image.alt == "Marchers on the ring road"
    stored = issue_file(workspace).parent / image.src
    kept = Image.open(stored)
    assert kept.format == "JPEG" and kept.size == (images.MAX_WIDTH, 800)
    assert dict(kept.getexif()) == {} and "exif" not in kept.info
    with db.session() as s:
        s.add(
            Campaign(
                slug=CE,
                kind="newsletter",
                title="T",
                subject="T",
                audience="all",
                issue_date="2025-12-01",
                source="",
                status="sent",
                started_at=datetime(2025, 12, 1, tzinfo=UTC),
            )
        )
    served = editor.get(f"/files/{CE}/{image.src}")
    assert served.status_code == 200 and served.content == stored.read_bytes()
    assert served.headers["content-type"] == "image/jpeg"


def test_regions_typed_by_name_in_any_case_are_written_as_their_slugs(
    editor: Any, workspace: Path, shape: Shape
) -> None:
    page = editor.get(f"/desk/issues/{CE}")
    assert re.search(
        r"Birmingham <span class=\"muted\">\(region:birmingham\)</span>: \d+ members?", page.text
    )
    fields = form_fields(page.text)
    name = next(d.name for s, d in shape.interests.items())
    fields["items-0-regions"] = "Birmingham, DERBY"
    fields["items-0-interests"] = name.upper()
    assert editor.post(f"/desk/issues/{CE}", data={**fields, "action": "save"}).status_code == 303
    item = load_campaign(workspace, CE, shape).issue.items[0]
    assert list(item.regions or []) == ["birmingham", "derby"]
    assert list(item.interests or []) == [next(iter(shape.interests))]
