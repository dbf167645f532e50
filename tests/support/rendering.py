"""Checks of rendered mail: golden files (``check_golden``; ``MAILER_UPDATE_GOLDEN=1`` rewrites them,
then review the diff) and the contrast of every text colour on its background in the HTML
(``Colours`` collects the pairs, ``contrast`` is the WCAG ratio)."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

UPDATE = os.environ.get("MAILER_UPDATE_GOLDEN", "") not in ("", "0")


def check_golden(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: run with MAILER_UPDATE_GOLDEN=1 to write it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path} differs: run with MAILER_UPDATE_GOLDEN=1 and review the diff"


def luminance(colour: str) -> float:
    colour = colour.lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    channels = [int(colour[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


VOID = {"br", "img", "meta", "link", "hr", "input", "col", "area", "base", "source", "wbr"}


HEX = r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b"


class Colours(HTMLParser):
    """(text colour, background colour) of every element that sets a text colour."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.pairs: set[tuple[str, str]] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        style = (a.get("style") or "").replace(" ", "")
        background = self.stack[-1][1] if self.stack else "#ffffff"
        found = re.search(r"background(?:-color)?:(" + HEX + ")", style)
        if found:
            background = found.group(1)
        elif a.get("bgcolor"):
            background = str(a["bgcolor"])
        colour = re.search(r"(?<![-\w])color:(" + HEX + ")", style)
        if colour and "display:none" not in style:  # the hidden preheader is not read
            self.pairs.add((colour.group(1).lower(), background.lower()))
        if tag not in VOID:
            self.stack.append((tag, background))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return
