"""The desk's issue form on a commented issue file: the demo workspace with an editor's note in the
Central England issue (the ``workspace`` fixture), an editor of Central England signed in (the
``editor`` fixture), the form's current fields (``fields_of``), and the file read back with its
comment kept (``read_back``). A test module imports the fixtures it uses, with ``desk`` and
``clock`` from support.desk."""

from __future__ import annotations

import copy
import functools
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailer.issue.yaml_loader import read_yaml
from support.desk import Desk, demo_workspace, sign_in_by_link

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

CE = "2025-12-central-england"
NOTE = "# Editor's note: keep this comment."


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The demo workspace, with an editor's comment in the Central England issue."""
    root = demo_workspace(tmp_path)
    path = root / "campaigns" / CE / "issue.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("items:\n", f"{NOTE}\nitems:\n", 1), encoding="utf-8"
    )
    return root


@pytest.fixture
def editor(desk: Desk) -> Iterator[TestClient]:
    """A client signed in as an editor of Central England."""
    desk.add("ed@example.org", "editor", "central-england")
    with desk.client() as client:
        sign_in_by_link(desk, client, "ed@example.org")
        yield client


def fields_of(client: TestClient) -> dict[str, str]:
    page = client.get(f"/desk/issues/{CE}")
    assert page.status_code == 200
    out: dict[str, str] = {}
    for tag in re.findall(r"<input [^>]*>", page.text):
        name = re.search(r'name="([^"]+)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if not name or not kind or (name.group(1) == "csrf" and "csrf" in out):
            continue
        if kind.group(1) == "checkbox" and " checked" in tag:
            out[name.group(1)] = "yes"
        if kind.group(1) not in ("text", "hidden"):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        out[name.group(1)] = _unescape(value.group(1)) if value else ""
    for name, text in re.findall(r'<textarea [^>]*name="([^"]+)"[^>]*>\n(.*?)</textarea>', page.text, re.S):
        out[name] = _unescape(text)
    return out


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


def read_back(workspace: Path) -> dict[str, Any]:
    """The Central England issue as the issue loader reads it, its editor's comment kept."""
    path = workspace / "campaigns" / CE / "issue.yaml"
    text = path.read_text(encoding="utf-8")
    assert NOTE in text, "the editor's comment is kept"
    problems, data = _read(text, str(path))
    assert problems == () and isinstance(data, dict)
    return copy.deepcopy(data)


@functools.lru_cache(maxsize=64)
def _read(text: str, path: str) -> tuple[tuple[Any, ...], Any]:
    """The loader's reading of one file's text (the same text reads the same: a hostile corpus
    saves some texts more than once, and the loader is slow)."""
    problems: list[Any] = []
    data, _ = read_yaml(text, Path(path), problems)
    return tuple(problems), data
