"""Rewriting an issue file with the one YAML engine (``mailer.issue.yaml_loader``), comments kept.

``rewrite`` loads the file's text round-trip, applies a change to the document, and writes it back:
the fields and items the change leaves alone keep their comments, key order, quoting and
indentation. docs/issue-files.md, "One YAML engine", says how comments follow the entries:

- A comment belongs to the field or item it stands above, or beside on its line. Round-trip YAML
  keeps a comment line with the entry *above* it (inside its last value); ``anchor_comments`` gives
  each one to the entry below it first, so a key inserted, an item removed or moved takes its own
  comments along and leaves the others where they were. Comment lines indented deeper than the
  entry below are about the end of the entry above, and stay with it.
- ``settle`` makes the document ready to write: an emptied list is written ``[]`` on its key's line
  (in block style it would come after the key's comment: ``items: # …`` then ``[]``, not YAML).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString
from ruamel.yaml.tokens import CommentToken

from mailer.errors import ContentError, Problem
from mailer.issue.yaml_loader import issue_yaml

Change = Callable[[MutableMapping[str, Any]], None]
"""A change of an issue's fields, made on the round-trip document (its comments given to the
entries below them: ``anchor_comments``). The desk makes new values with
``mailer.desk.issuefile.to_yaml`` and new keys with its ``put``; ``yaml_loader.plain`` reads
values as plain data."""


def _entries(node: Any) -> list[Any]:
    if isinstance(node, CommentedMap):
        return list(node.keys())
    if isinstance(node, CommentedSeq):
        return list(range(len(node)))
    return []


def _block(value: Any) -> bool:
    """A list or set of fields written in block style, with something in it."""
    return isinstance(value, CommentedMap | CommentedSeq) and bool(value) and not value.fa.flow_style()


def _split_gap(lines: str, column: int) -> tuple[str, str]:
    """The comment lines indented deeper than ``column`` that come first (they are about the entry
    above, at its end), and the rest, with the blank lines just before it (about the entry below)."""
    rows = lines.splitlines(keepends=True)
    k = next(
        (i for i, r in enumerate(rows) if r.strip() and len(r) - len(r.lstrip(" ")) <= column), len(rows)
    )
    while k > 0 and not rows[k - 1].strip():
        k -= 1
    return "".join(rows[:k]), "".join(rows[k:])


def _take_gap(container: Any, entry: Any, column: int) -> str:
    """Cut the comment lines (and blank lines) that follow ``container[entry]`` and are about the
    entry below it (indented at most to ``column``, that entry's) from where round-trip YAML keeps
    them (the last scalar inside it), and return them; its end-of-line comment stays."""
    value = container[entry]
    if _block(value):
        return _take_gap(value, _entries(value)[-1], column)
    slot = container.ca.items.get(entry)
    at = 2 if isinstance(container, CommentedMap) else 0
    token = slot[at] if slot and len(slot) > at else None
    if token is None:
        return ""
    if isinstance(value, LiteralScalarString | FoldedScalarString):  # their line end is their own
        head, rest = "", _verbatim(token)
    else:
        head, _, rest = str(token.value).partition("\n")
        head += "\n"
    stay, move = _split_gap(rest, column)
    if not move.strip():  # blank lines alone stay where they are: they part entries, whichever go
        return ""
    if (head + stay).strip():
        token.value = head + stay
    else:
        slot[at] = None
    return move


def _column(container: Any, entry: Any) -> int:
    """The column (0-based) of ``container[entry]`` in the file: its key's, or its dash's."""
    try:
        if isinstance(container, CommentedMap):
            return int(container.lc.key(entry)[1])
        return max(0, int(container.lc.item(entry)[1]) - 2)
    except (KeyError, TypeError, IndexError):
        return 0


def _put_before(container: Any, entry: Any, text: str) -> None:
    """Write ``text`` (comment lines, as they were in the file) just above ``container[entry]``: an
    item that is a set of fields keeps them itself (so they move with it), else the container keeps
    them by key or index."""
    token = CommentToken(text, CommentMark(0), None)
    value = container[entry]
    if isinstance(container, CommentedSeq) and isinstance(value, CommentedMap):
        if value.ca.comment is None:
            value.ca.comment = [None, None]
        value.ca.comment[1] = [token, *(value.ca.comment[1] or [])]
        return
    width = 4 if isinstance(container, CommentedMap) else 2
    slot = container.ca.items.setdefault(entry, [None] * width)
    slot[1] = [token, *(slot[1] or [])]


def _to_item(seq: CommentedSeq, index: int) -> None:
    """Move the comment lines round-trip YAML keeps above ``seq[index]`` in the list (by index,
    which ``del seq[-1]`` and ``seq.pop`` do not keep in step) into the item itself; blank lines
    alone go to the end of the item above, where they are kept after any other value."""
    slot = seq.ca.items.get(index)
    if not (slot and len(slot) > 1 and slot[1]):
        return
    lines = "".join(_verbatim(t) for t in slot[1])
    slot[1] = None
    if not lines.strip() and index > 0:
        _end_with(seq, index - 1, lines)
        return
    item = seq[index]
    if item.ca.comment is None:
        item.ca.comment = [None, None]
    item.ca.comment[1] = [CommentToken(lines, CommentMark(0), None), *(item.ca.comment[1] or [])]


def _end_with(container: Any, entry: Any, blank: str) -> None:
    """Add blank lines after ``container[entry]`` (to the last scalar inside it)."""
    value = container[entry]
    if _block(value):
        _end_with(value, _entries(value)[-1], blank)
        return
    width, at = (4, 2) if isinstance(container, CommentedMap) else (2, 0)
    slot = container.ca.items.setdefault(entry, [None] * width)
    if slot[at] is None:
        block = isinstance(value, LiteralScalarString | FoldedScalarString)  # its line end is its own
        slot[at] = CommentToken(blank if block else "\n" + blank, CommentMark(0), None)
    else:
        slot[at].value += blank


def _verbatim(token: Any) -> str:
    """A comment token's lines as they were in the file (its first line's indentation included)."""
    value = str(token.value)
    return value if value.startswith("\n") else " " * token.column + value


def _to_first(holder: CommentedMap, key: Any) -> None:
    """Move the comment lines between ``key:`` and the first entry of its list or set of fields
    (round-trip YAML keeps them with the key, or as the value's own) to that first entry."""
    value = holder[key]
    first = _entries(value)[0]
    lines = ""
    slot = holder.ca.items.get(key)
    token = slot[2] if slot and len(slot) > 2 else None  # the value's own comment too, when a list
    if token is not None:
        head, _, rest = str(token.value).partition("\n")
        if rest.strip():
            token.value = head + "\n"
            lines += rest
    if value.ca.comment and len(value.ca.comment) > 1 and value.ca.comment[1]:
        lines += "".join(_verbatim(t) for t in value.ca.comment[1])
        value.ca.comment[1] = None
    if slot and len(slot) > 3:
        slot[3] = None
    if lines:
        _put_before(value, first, lines)


def anchor_comments(node: Any) -> None:
    """Give each comment line between two entries of a list or a set of fields (round-trip YAML
    keeps it with the entry above, inside its last value) to the entry below it, so that the entry
    below keeps it whatever is inserted, removed or moved."""
    entries = _entries(node)
    for entry in entries:
        anchor_comments(node[entry])
        if isinstance(node, CommentedSeq) and isinstance(node[entry], CommentedMap):
            _to_item(node, entry)
        if isinstance(node, CommentedMap) and _block(node[entry]):
            _to_first(node, entry)
    for entry, below in itertools.pairwise(entries):
        gap = _take_gap(node, entry, _column(node, below))
        if gap:
            _put_before(node, below, gap)


def settle(node: Any) -> None:
    """Make the document ready to write: every empty list or set of fields is written ``[]`` /
    ``{}`` on its key's line (in block style round-trip YAML writes it below the key's comment:
    ``items: # …`` then ``[]``, not YAML), and the comment lines above an item's first field are
    the item's (else they would be written between its dash and that field)."""
    for entry in _entries(node):
        value = node[entry]
        if isinstance(value, CommentedMap | CommentedSeq):
            if not value:
                value.fa.set_flow_style()
            settle(value)
        if isinstance(node, CommentedSeq) and isinstance(value, CommentedMap) and value:
            slot = value.ca.items.get(next(iter(value)))
            if slot and len(slot) > 1 and slot[1]:
                if value.ca.comment is None:
                    value.ca.comment = [None, None]
                value.ca.comment[1] = [*(value.ca.comment[1] or []), *slot[1]]
                slot[1] = None


def rewrite(text: str, change: Change, *, path: Path | None = None) -> str:
    """The text of an issue file after ``change`` (see ``Change``), its comments, key order and
    quoting kept (see the module's notes). ContentError (at ``path``) when ``text`` cannot be read
    as YAML or is not a set of fields."""
    y = issue_yaml(text)
    try:
        doc = y.load(text)
    except YAMLError as exc:
        raise ContentError(
            [Problem(f"the desk cannot edit this file: {exc}".splitlines()[0], path=path)],
            summary=f"{path}: fix the file by hand first",
        ) from None
    if not isinstance(doc, CommentedMap):
        raise ContentError([Problem("an issue file is a set of fields", path=path, line=1)])
    anchor_comments(doc)
    change(doc)
    settle(doc)
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()


__all__ = ["Change", "anchor_comments", "rewrite", "settle"]
