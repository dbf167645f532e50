"""An item's links and image on the desk's issue form against hostile input, on SQLite and PostgreSQL.

Each case goes in the link (text, address) or image (address or file, alt text, width) fields of the
Central England issue's first item, with a valid CSRF value and a signed-in editor, so that it
reaches the file: addresses that run script or carry data (``javascript:``, ``data:``,
``vbscript:``, ``file:``, protocol-relative), image files outside the campaign's folder
(``../../etc/passwd``, an absolute path, a symbolic link out, a sub-folder, a hidden file, the issue
file itself), alt text that is empty or only spaces, widths that are not a positive number, 1 MB
values, CR LF and control characters; then every case of ``http/form-values.txt`` in each of the
five fields. What must happen: never a 5xx; a refusal (400) that writes nothing and shows the
problem at the field that is wrong; or a save that the issue loader reads back with exactly the
value posted (cleaned of control characters), the editor's comments kept, and a preview that shows
markup in a link as text.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from support.desk import clock, desk
from support.hostile import CONTROL, form_values
from support.issue_editor import CE, NOTE, editor, fields_of, read_back, workspace

from mailer.desk.issueform import clean

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["clock", "desk", "editor", "workspace"]  # fixtures

LINK = {"items-0-links-0-text": "Book your ticket", "items-0-links-0-url": "https://www.example.org/tickets"}
IMAGE = {
    "items-0-image-src": "https://www.example.org/poster.png",
    "items-0-image-alt": "The Peace Week poster",
    "items-0-image-width": "",
}

NOT_SERVED = "Not an image file the archive can serve"  # the schema's words
LINK_OUT = "a link to outside the campaign"

# (what it attacks, the fields posted, the field that must show the problem, what it must say)
REFUSED: list[tuple[str, dict[str, str], str, str]] = [
    ("script in a link", {"items-0-links-0-url": "javascript:alert(1)"}, "url", "Not a link"),
    ("script, mixed case", {"items-0-links-0-url": "JaVaScRiPt:alert(document.cookie)"}, "url", "Not a link"),
    ("script, split by a tab", {"items-0-links-0-url": "java\tscript:alert(1)"}, "url", "Not a link"),
    ("script after spaces", {"items-0-links-0-url": "  javascript:alert(1)"}, "url", "Not a link"),
    (
        "a data: page",
        {"items-0-links-0-url": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="},
        "url",
        "Not a link",
    ),
    ("vbscript", {"items-0-links-0-url": "vbscript:msgbox(1)"}, "url", "Not a link"),
    ("a file: address", {"items-0-links-0-url": "file:///etc/passwd"}, "url", "Not a link"),
    ("a protocol-relative address", {"items-0-links-0-url": "//evil.example/x"}, "url", "Not a link"),
    (
        "a header injected into a mailto: link",
        {"items-0-links-0-url": "mailto:a@example.org\r\nBcc: everyone@example.org"},
        "url",
        "Not a link",
    ),
    ("a link with no text", {"items-0-links-0-text": ""}, "text", "Give the link&#39;s text"),
    ("a link whose text is spaces", {"items-0-links-0-text": " \t\r\n "}, "text", "Give the link&#39;s text"),
    ("a link with no address", {"items-0-links-0-url": "   "}, "url", "Give the link&#39;s address"),
    ("a 1 MB link text", {"items-0-links-0-text": "x" * 1_000_000}, "text", "Too long: at most 300"),
    ("a 1 MB address", {"items-0-links-0-url": "https://e.org/" + "x" * 1_000_000}, "url", "Too long"),
    ("an image file up the tree", {"items-0-image-src": "../../etc/passwd"}, "src", "Not an image address"),
    ("an image file by absolute path", {"items-0-image-src": "/etc/passwd"}, "src", "Not an image address"),
    ("an image by file: address", {"items-0-image-src": "file:///etc/passwd"}, "src", "Not an image address"),
    ("script as an image", {"items-0-image-src": "javascript:alert(1)"}, "src", "Not an image address"),
    ("an image as data:", {"items-0-image-src": "data:image/png;base64,iVBORw0KGgo="}, "src", "Not an image"),
    (
        "down then up the tree",
        {"items-0-image-src": "sub/../../../etc/passwd"},
        "src",
        "Not an image address",
    ),
    ("a symbolic link out of the folder", {"items-0-image-src": "out.png"}, "src", LINK_OUT),
    ("an image in a sub-folder", {"items-0-image-src": "sub/pic.png"}, "src", NOT_SERVED),
    ("a hidden file", {"items-0-image-src": ".hidden.png"}, "src", NOT_SERVED),
    ("the issue file as an image", {"items-0-image-src": "issue.yaml"}, "src", NOT_SERVED),
    ("an escaped climb", {"items-0-image-src": "%2e%2e%2f%2e%2e%2fpasswd.png"}, "src", "not found"),
    ("a name too long to look up", {"items-0-image-src": "a" * 1990 + ".png"}, "src", "not found"),
    ("a 1 MB image address", {"items-0-image-src": "https://e.org/" + "x" * 1_000_000}, "src", "Too long"),
    ("no alt text", {"items-0-image-alt": ""}, "alt", "The image has no alt text"),
    ("alt text of spaces", {"items-0-image-alt": " \t \u00a0 "}, "alt", "The image has no alt text"),
    ("alt text of line breaks", {"items-0-image-alt": "\r\n\r\n\u2028"}, "alt", "The image has no alt text"),
    ("a 1 MB alt text", {"items-0-image-alt": "a" * 1_000_000}, "alt", "Too long: at most 1,000"),
    ("an image with no address", {"items-0-image-src": ""}, "src", NOT_SERVED),
    ("a width of 0", {"items-0-image-width": "0"}, "width", "Not an image width: 0"),
    ("a negative width", {"items-0-image-width": "-5"}, "width", "whole number of pixels"),
    ("a width in another notation", {"items-0-image-width": "1e3"}, "width", "whole number of pixels"),
    ("a fraction", {"items-0-image-width": "4.5"}, "width", "whole number of pixels"),
    ("a width with a unit", {"items-0-image-width": "480px"}, "width", "whole number of pixels"),
    ("other digits", {"items-0-image-width": "\u0664\u0668\u0660"}, "width", "whole number of pixels"),
    ("a huge width", {"items-0-image-width": "999999999"}, "width", "Not an image width"),
    ("a width past the limit", {"items-0-image-width": "2001"}, "width", "Not an image width"),
    ("a 1 MB width", {"items-0-image-width": "9" * 1_000_000}, "width", "Too long: at most 10"),
]

# (what it attacks, the fields posted, the link or image the file must read back with)
SAVED: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "markup in a link's text and address (shown as text)",
        {
            "items-0-links-0-text": "<img src=x onerror=alert(1)>",
            "items-0-links-0-url": 'https://www.example.org/"><script>alert(1)</script>',
        },
        {
            "text": "<img src=x onerror=alert(1)>",
            "url": 'https://www.example.org/"><script>alert(1)</script>',
        },
    ),
    (
        "CR LF and control characters in a link",
        {"items-0-links-0-text": "Book\r\nBcc: x\x00\x1b[31m now\x7f"},
        {"text": "Book Bcc: x[31m now", "url": LINK["items-0-links-0-url"]},
    ),
    (
        "YAML in a link's text",
        {"items-0-links-0-text": "*alias: yes # no"},
        {"text": "*alias: yes # no", "url": LINK["items-0-links-0-url"]},
    ),
    (
        "a NUL in an image file's name (cleaned away)",
        {**IMAGE, "items-0-image-src": "poster\x00.png", "items-0-image-alt": "A\r\nposter\x1b"},
        {"src": "poster.png", "alt": "A poster"},
    ),
    (
        "markup in alt text, a width with spaces",
        {**IMAGE, "items-0-image-alt": '"><script>alert(1)</script>', "items-0-image-width": " 480 "},
        {"src": IMAGE["items-0-image-src"], "alt": '"><script>alert(1)</script>', "width": 480},
    ),
]


@pytest.fixture
def folder(workspace: Path, tmp_path: Path) -> Path:
    """The campaign's folder, with a poster, a hidden image, an image in a sub-folder and a
    symbolic link to a file outside."""
    here = workspace / "campaigns" / CE
    (here / "poster.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (here / ".hidden.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (here / "sub").mkdir()
    (here / "sub" / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    secret = tmp_path / "secret.png"
    secret.write_text("database_url = postgresql://secret", encoding="utf-8")
    (here / "out.png").symlink_to(secret)
    return here


def save(client: TestClient, path: Path, fields: dict[str, str]) -> Any:
    version = hashlib.sha256(path.read_bytes()).hexdigest()
    return client.post(f"/desk/issues/{CE}", data={**fields, "version": version, "action": "save"})


def at_field(html: str, name: str) -> bool:
    """Whether the page shows a problem at field ``name`` (marked invalid, with its message)."""
    found = re.search(rf'<(input|textarea) [^>]*id="{name}"[^>]*>', html)
    return bool(found and 'aria-invalid="true"' in found.group(0) and f'id="{name}-msg1"' in html)


@pytest.mark.slow
@pytest.mark.parametrize("attacks,posted,field,says", REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_links_and_images_are_refused_at_their_field(
    editor: TestClient, folder: Path, attacks: str, posted: dict[str, str], field: str, says: str
) -> None:
    path = folder / "issue.yaml"
    before = path.read_bytes()
    part = LINK if "links" in next(iter(posted)) else IMAGE
    refused = save(editor, path, {**fields_of(editor), **part, **posted})
    assert refused.status_code == 400, attacks
    assert path.read_bytes() == before, "nothing written"
    name = next(k for k in part if k.endswith("-" + field))
    assert at_field(refused.text, name), (attacks, name)
    assert says in refused.text, (attacks, says)
    assert "database_url" not in refused.text and "root:" not in refused.text


@pytest.mark.parametrize("attacks,posted,wanted", SAVED, ids=[c[0] for c in SAVED])
def test_hostile_links_and_images_that_are_saved_read_back_and_preview_as_text(
    editor: TestClient, folder: Path, attacks: str, posted: dict[str, str], wanted: dict[str, Any]
) -> None:
    path = folder / "issue.yaml"
    part = LINK if "links" in next(iter(posted)) else IMAGE
    saved = save(editor, path, {**fields_of(editor), **part, **posted})
    assert saved.status_code == 303, (attacks, saved.text[:2000])
    item = read_back(folder.parent.parent)["items"][0]
    assert (item["links"][0] if part is LINK else item["image"]) == wanted, attacks
    assert not CONTROL.search(path.read_text(encoding="utf-8").replace("\t", ""))
    frame = editor.get(f"/desk/issues/{CE}/preview/frame", params={"region": "birmingham"})
    assert frame.status_code == 200
    assert "<script>" not in frame.text and "<img src=x" not in frame.text, attacks


FIELDS = ["items-0-links-0-text", "items-0-links-0-url", "items-0-image-src", "items-0-image-alt"]


@pytest.mark.slow
@pytest.mark.parametrize("name", [*FIELDS, "items-0-image-width"])
def test_form_values_in_each_link_and_image_field(editor: TestClient, folder: Path, name: str) -> None:
    path = folder / "issue.yaml"
    part = LINK if "links" in name else IMAGE
    for attacks, value in form_values():
        before = path.read_bytes()
        response = save(editor, path, {**fields_of(editor), **part, name: value})
        assert response.status_code in (303, 400), (attacks, name, response.status_code)
        if response.status_code == 400:
            assert path.read_bytes() == before, (attacks, name)
            assert at_field(response.text, name), (attacks, name)
            continue
        item = read_back(folder.parent.parent)["items"][0]
        got = item["links"][0] if part is LINK else item["image"]
        key = name.rsplit("-", 1)[1]
        if key == "width":
            assert got.get("width") == (int(clean(value)) if clean(value) else None), (attacks, got)
        else:
            assert got[key] == clean(value), (attacks, name, got)
        if key == "url":
            assert re.match(r"(https?://|mailto:)", got["url"]), (attacks, got)
        if key == "src":
            assert got["src"].startswith("https://") or (folder / got["src"]).resolve().parent == folder
        assert not CONTROL.search(path.read_text(encoding="utf-8").replace("\t", "")), (attacks, name)
        assert NOTE in path.read_text(encoding="utf-8")
    assert editor.get(f"/desk/issues/{CE}").status_code == 200
