"""Plain words on the desk's pages: what a volunteer reads holds no command-line option, no line of a
YAML file, no hash and no folder name where a title exists.

``problems(html)`` lists what a page shows that it should not; ``PlainWordsClient`` checks every desk
page a test's client gets (``Desk.client()`` makes one), so every page state the desk's tests reach
is checked, whatever the test itself asserts. The visible text is the page without its tags,
attributes, styles and scripts, and without what is the issue's own content rather than the desk's
words (a plain-text copy in ``<pre>``, a form's ``<textarea>``), and without URLs.
"""

from __future__ import annotations

import html as htmllib
import re
import warnings
from typing import Any

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

HIDDEN = re.compile(r"<(head|style|script|pre|textarea|template)\b.*?</\1>", re.S | re.I)
TAGS = re.compile(r"<[^>]+>")
URLS = re.compile(r"(?:https?://|mailto:|/desk/)\S+")
FLAG = re.compile(r"(?<![\w-])--[a-z]")
YAML_LINE = re.compile(r"\[line \d+\]|\bline \d+, column \d+")
HEX = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,}\b")
HEADING = re.compile(r"<h([1-6])\b[^>]*>(.*?)</h\1>", re.S | re.I)
SLUG = re.compile(r"\b(?=[a-z0-9-]*\d)[a-z0-9]+(?:-[a-z0-9]+){2,}\b")


def visible(html: str) -> str:
    """The words a page shows (tags, styles, scripts, copies and URLs left out)."""
    text = TAGS.sub(" ", HIDDEN.sub(" ", html))
    return URLS.sub(" ", re.sub(r"\s+", " ", htmllib.unescape(text)))


def problems(html: str) -> list[str]:
    """What a desk page shows that a volunteer should not read."""
    text = visible(html)
    found = [
        f"a command-line option: {m.group(0)!r} in …{text[max(0, m.start() - 60) : m.end() + 30]}…"
        for m in FLAG.finditer(text)
    ]
    found += [f"a file's line: {m.group(0)!r}" for m in YAML_LINE.finditer(text)]
    found += [f"a hash: {m.group(0)!r}" for m in HEX.finditer(text)]
    for _level, heading in HEADING.findall(HIDDEN.sub(" ", html)):
        words = htmllib.unescape(TAGS.sub(" ", heading))
        found += [f"a folder name in a heading: {m.group(0)!r}" for m in SLUG.finditer(words)]
    return found


class PlainWordsClient(TestClient):
    """A test client that fails the test when a desk page it gets speaks in the wrong words."""

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().request(method, url, *args, **kwargs)
        path = str(response.request.url.path)
        kind = response.headers.get("content-type", "")
        if path.startswith("/desk") and kind.startswith("text/html") and not path.endswith("/frame"):
            found = problems(response.text)
            assert not found, f"{method} {path} ({response.status_code}) shows: " + "; ".join(found)
        return response
