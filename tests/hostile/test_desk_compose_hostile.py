"""The desk's compose and preview pages against hostile input, on SQLite and PostgreSQL.

Every case of ``http/form-values.txt`` in each kind of field of the issue's form (a line, a text of
several lines, a list of names, an event's start, a link, the version, the button pressed), with a
valid CSRF value and a signed-in editor, so that it reaches the file; text that breaks YAML when
written naively (``: ``, ``#``, ``---``, ``yes``, ``*alias``, ``!!python/object``, quotes, ``|``)
in titles; bodies past their field's limit and past the largest post; a slug with ``../`` in the
path and in the new-issue form; hostile preview choices. What must happen: never a 5xx; a refusal
(400, 403, 404, 409, 413) or a save; a saved file that the issue loader reads back with exactly the
value posted (cleaned of control characters), with the editor's comments kept; nothing written
outside the campaign's folder.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from support.desk import clock, desk
from support.hostile import CONTROL, form_values
from support.issue_editor import CE, editor, fields_of, read_back, workspace

from mailer.desk.issueform import clean

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["clock", "desk", "editor", "workspace"]  # fixtures

YAML_BREAKERS = [
    "Peace: week",
    "Peace #1",
    "---",
    "--- a new document?",
    "...",
    "yes",
    "null",
    "~",
    "- not a list",
    "*alias",
    "&anchor value",
    "!!python/object:os.system",
    "{a: b}",
    "[one, two]",
    "'single' and \"double\" quotes",
    "| a block?",
    "> folded?",
    "@handle",
    "`tick`",
    "%YAML 1.1",
    "12:30",
    "0x1F",
    "1e3",
    "2025-12-01",
    "a\\nb (a backslash)",
    "trailing colon:",
    "? question",
    "Bidi \u202e override",
    "Emoji \U0001f600 and ünïcödé",
]


FIELDS = {
    "title": lambda d: d["title"],
    "intro": lambda d: d.get("intro", ""),
    "items-0-title": lambda d: d["items"][0]["title"],
    "items-1-body": lambda d: d["items"][1].get("body", ""),
    "items-2-regions": lambda d: d["items"][2].get("regions"),
    "items-1-events-0-start": lambda d: d["items"][1]["events"][0]["start"],
    "calendar-0-booking-url": lambda d: (d["calendar"][0].get("booking") or {}).get("url"),
    "sign_off": lambda d: d.get("sign_off", ""),
}


def expected(name: str, value: str) -> Any:
    several = name in ("intro", "items-1-body", "sign_off")
    wanted = clean(value, several_lines=several)
    if name == "items-2-regions":
        return [p for p in re.split(r"[,\s]+", wanted) if p] or None
    if several:
        return wanted.rstrip() + "\n" if "\n" in wanted.strip("\n") else wanted.strip()
    return wanted


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FIELDS))
def test_hostile_values_in_each_field(editor: TestClient, workspace: Path, name: str) -> None:
    path = workspace / "campaigns" / CE / "issue.yaml"
    fields = fields_of(editor)
    for attacks, value in [*form_values(), *(("YAML", v) for v in YAML_BREAKERS)]:
        fields = {**fields, name: value, "version": hashlib.sha256(path.read_bytes()).hexdigest()}
        response = editor.post(f"/desk/issues/{CE}", data={**fields, "action": "save"})
        assert response.status_code in (303, 400), (attacks, name, response.status_code)
        data = read_back(workspace)
        got = FIELDS[name](data)
        if response.status_code == 400:
            assert "Too long: at most" in response.text, (attacks, name)
            continue
        want = expected(name, value)
        if want in ("", None) and name not in ("title", "items-0-title", "items-1-events-0-start"):
            assert got in ("", None, []), (attacks, name, got)
        else:
            assert got == want, (attacks, name, got, want)
        text = path.read_text(encoding="utf-8")
        assert not CONTROL.search(text.replace("\t", "")), (attacks, name)
    assert editor.get(f"/desk/issues/{CE}").status_code == 200


@pytest.mark.slow
def test_hostile_versions_and_buttons(editor: TestClient, workspace: Path) -> None:
    path = workspace / "campaigns" / CE / "issue.yaml"
    before = path.read_bytes()
    # Nothing here may change the file (checked after every post), so the form read once is the
    # form of every post: the page is read again only at the end.
    fields = fields_of(editor)
    for attacks, value in form_values():
        refused = editor.post(f"/desk/issues/{CE}", data={**fields, "version": value, "action": "save"})
        assert refused.status_code in (403, 409), attacks
        assert path.read_bytes() == before, ("a refused version changed the file", attacks)
        pressed = editor.post(f"/desk/issues/{CE}", data={**fields, "action": value})
        assert pressed.status_code == 303, attacks
        assert path.read_bytes() == before, ("a hostile button changed the file", attacks)
    for action in (
        "remove-item-99999",
        "up-item-0",
        "down-item-3",
        "remove-event-0-9",
        "add-event-9999",
        "remove-calendar-42",
        "up-item--1",
    ):
        assert editor.post(f"/desk/issues/{CE}", data={**fields, "action": action}).status_code == 303, action
        assert path.read_bytes() == before, ("a button out of range changed the file", action)
    assert fields_of(editor) == fields, "the form reads as it did"
    data = read_back(workspace)
    assert len(data["items"]) == 4 and len(data["calendar"]) == 3
    assert path.read_bytes() == before, "nothing changed"


def test_fields_the_file_does_not_have_are_ignored(editor: TestClient, workspace: Path) -> None:
    before = (workspace / "campaigns" / CE / "issue.yaml").read_bytes()
    fields = fields_of(editor)
    extra = {
        "items-99-title": "ghost",
        "calendar-7-start": "2025-12-01",
        "network": "kent",
        "kind": "alert",
        "items-0-image": "x",
    }
    assert editor.post(f"/desk/issues/{CE}", data={**fields, **extra, "action": "save"}).status_code == 303
    assert (workspace / "campaigns" / CE / "issue.yaml").read_bytes() == before


def test_huge_bodies(editor: TestClient, workspace: Path) -> None:
    path = workspace / "campaigns" / CE / "issue.yaml"
    before = path.read_bytes()
    fields = fields_of(editor)
    refused = editor.post(
        f"/desk/issues/{CE}", data={**fields, "items-0-body": "word " * 20_000, "action": "save"}
    )
    assert refused.status_code == 400 and "Too long: at most 50,000 characters" in refused.text
    assert 'id="items-0-body-msg1"' in refused.text
    too_big = editor.post(f"/desk/issues/{CE}", data={**fields, "intro": "x" * (5 * 1024 * 1024)})
    assert too_big.status_code == 413
    many = editor.post(
        f"/desk/issues/{CE}",
        content=urlencode([*fields.items(), *(("f", "v") for _ in range(6000))]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert many.status_code in (403, 409)
    fields["items-0-body"] = "A long but allowed body.\n" * 1500  # 37,500 characters
    assert editor.post(f"/desk/issues/{CE}", data={**fields, "action": "save"}).status_code == 303
    assert read_back(workspace)["items"][0]["body"] == fields["items-0-body"]
    assert path.read_bytes() != before


@pytest.mark.slow
def test_slugs_that_climb_out(editor: TestClient, workspace: Path) -> None:
    for path in (
        "/desk/issues/..%2F..%2Fmailer.toml",
        "/desk/issues/..",
        "/desk/issues/%2e%2e",
        "/desk/issues/..%2Fcampaigns%2F2025-12-central-england",
        "/desk/issues/2025-12-central-england%00",
        "/desk/issues/" + "a" * 5000,
        "/desk/issues/..%2F..%2Fmailer.toml/preview",
        "/desk/issues/..%5C..%5Cmailer.toml/preview/frame",
    ):
        response = editor.get(path)  # (the client itself resolves a bare "..")
        assert response.status_code in (307, 400, 404), path
        assert "database_url" not in response.text and "base_url" not in response.text
    csrf = fields_of(editor)["csrf"]
    for slug in ("../escape", "..", "a/../../escape", "/tmp/escape", "x" * 300, "UPPER", "a_b", "a b"):
        response = editor.post(
            "/desk/networks/central-england/issues/new",
            data={"csrf": csrf, "title": "Escape", "slug": slug, "date": "2026-01-05"},
        )
        assert response.status_code == 400, slug
    assert not (workspace / "escape").exists() and not Path("/tmp/escape").exists()
    assert sorted(p.name for p in (workspace / "campaigns").iterdir() if not p.name.startswith(".")) == [
        "2025-11-echr-alert",
        "2025-11-kent-network",
        CE,
    ]
    for attacks, value in form_values():
        response = editor.post(
            "/desk/networks/central-england/issues/new",
            data={"csrf": csrf, "title": value, "slug": "2026-02-central-england", "date": value},
        )
        assert response.status_code in (303, 400), attacks
    created = workspace / "campaigns" / "2026-02-central-england" / "issue.yaml"
    if created.exists():
        assert not CONTROL.search(created.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_hostile_preview_choices(editor: TestClient) -> None:
    for attacks, value in form_values():
        value = value[:4000]  # (no client sends a longer URL)
        for key in ("region", "interest", "member", "width"):
            for url in (f"/desk/issues/{CE}/preview", f"/desk/issues/{CE}/preview/frame"):
                response = editor.get(url, params={key: value})
                assert response.status_code in (200, 400), (attacks, key, url)
                if "frame" in url and response.status_code == 200:
                    assert "sandbox" in response.headers.get("content-security-policy", ""), (
                        attacks,
                        key,
                        response.status_code,
                        response.text[:300],
                    )
    frame = editor.get(f"/desk/issues/{CE}/preview/frame", params={"region": "canterbury"})
    assert frame.status_code == 400, "another network's region"


def test_hostile_values_in_the_live_preview_write_nothing(editor: TestClient, workspace: Path) -> None:
    """The live preview (``/desk/issues/{slug}/preview/live``) of a form holding each hostile value
    in a title and a text: a page or a plain refusal, never a 5xx, and the issue's folder unchanged."""
    folder = workspace / "campaigns" / CE
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    fields = fields_of(editor)
    for attacks, value in form_values():
        data = {**fields, "items-0-title": value, "items-0-body": value, "order": value}
        shown = editor.post(f"/desk/issues/{CE}/preview/live", data=data)
        assert shown.status_code in (200, 400), attacks
        assert "sandbox" in shown.headers["content-security-policy"], attacks
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
