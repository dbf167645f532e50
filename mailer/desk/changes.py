"""What changed in an issue since it was last approved, in words an approver reads.

An approval keeps a copy of what was approved (``approvals``: the issue file's text and its
audience as resolved). ``compare`` reads that copy and the issue as it is now as plain data (the
issue files' own YAML engine, not validated: an old copy is compared even if the rules changed
since) and says, item by item, what an approver would want to know: text changed word by word
(title, highlight, body, contact), items added, removed or moved, events added, removed or changed
(title, time, place), the issue's own fields (title, subject, introduction, sign-off) and its
audience (expression, members in all, members per home region). Comments and layout of the file
are not changes: only what a member could see, or who sees it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailer.issue.yaml_loader import read_yaml

# The fields of an item and an event an approver reads, in order, with their names on the page.
ISSUE_FIELDS = (
    ("title", "Title"),
    ("subject", "Subject line"),
    ("preheader", "Preview line"),
    ("intro", "Introduction"),
    ("sign_off", "Sign-off"),
)
ITEM_FIELDS = (
    ("title", "Title"),
    ("highlight", "Highlight"),
    ("body", "Text"),
    ("contact", "Contact"),
    ("regions", "Regions"),
    ("interests", "Interests"),
)
EVENT_FIELDS = (
    ("title", "Title"),
    ("start", "Starts"),
    ("end", "Ends"),
    ("location", "Place"),
    ("online", "Online"),
    ("contact", "Contact"),
    ("regions", "Regions"),
)
WORDS = re.compile(r"\s+|[^\s]+")
CONTEXT = 8  # words kept either side of a change; longer unchanged text is cut short with "…"


@dataclass(frozen=True)
class Piece:
    """A run of words: ``kind`` is "same", "added" or "removed"."""

    kind: str
    text: str


@dataclass(frozen=True)
class TextChange:
    """One field's text before and after, as runs of words kept, added and removed."""

    field: str
    pieces: tuple[Piece, ...]


@dataclass(frozen=True)
class EventChange:
    """An event added, removed or changed (``fields``: what changed in it, word by word)."""

    kind: str
    title: str
    fields: tuple[TextChange, ...] = ()


@dataclass(frozen=True)
class ItemChange:
    """An item added, removed, moved or changed: its title, its place then and now (1-based; 0
    when absent), its text changes and its events' changes."""

    kind: str
    title: str
    was: int
    now: int
    fields: tuple[TextChange, ...] = ()
    events: tuple[EventChange, ...] = ()


@dataclass(frozen=True)
class RegionCount:
    label: str
    before: int
    after: int


@dataclass(frozen=True)
class AudienceChange:
    """Who the issue reaches, then and now (only what differs is listed per region)."""

    expression_before: str
    expression_after: str
    total_before: int
    total_after: int
    regions: tuple[RegionCount, ...]


@dataclass(frozen=True)
class Changes:
    """Everything that changed since the approved copy; ``none`` when nothing a member sees did."""

    issue: tuple[TextChange, ...]
    items: tuple[ItemChange, ...]
    calendar: tuple[EventChange, ...]
    audience: AudienceChange | None

    @property
    def none(self) -> bool:
        return not (self.issue or self.items or self.calendar or self.audience)

    def as_dict(self) -> dict[str, Any]:
        def text(c: TextChange) -> dict[str, Any]:
            return {"field": c.field, "pieces": [[p.kind, p.text] for p in c.pieces]}

        def event(e: EventChange) -> dict[str, Any]:
            return {"kind": e.kind, "title": e.title, "fields": [text(f) for f in e.fields]}

        return {
            "issue": [text(c) for c in self.issue],
            "items": [
                {
                    "kind": i.kind,
                    "title": i.title,
                    "was": i.was,
                    "now": i.now,
                    "fields": [text(f) for f in i.fields],
                    "events": [event(e) for e in i.events],
                }
                for i in self.items
            ],
            "calendar": [event(e) for e in self.calendar],
            "audience": None
            if self.audience is None
            else vars(self.audience) | {"regions": [vars(r) for r in self.audience.regions]},
        }


def shown(value: Any) -> str:
    """A field's value as text to compare and show: lists joined, booleans as yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {shown(v)}" for k, v in value.items())
    return str(value).strip()


def word_diff(field: str, before: Any, after: Any) -> TextChange | None:
    """``field``'s change from ``before`` to ``after`` word by word; None when the same."""
    old, new = shown(before), shown(after)
    if old == new:
        return None
    a, b = WORDS.findall(old), WORDS.findall(new)
    pieces: list[Piece] = []
    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for n, (op, i1, i2, j1, j2) in enumerate(opcodes):
        if op == "equal":
            pieces.append(Piece("same", _cut(a[i1:i2], first=n == 0, last=n == len(opcodes) - 1)))
            continue
        if i2 > i1:
            pieces.append(Piece("removed", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(Piece("added", "".join(b[j1:j2])))
    return TextChange(field, tuple(pieces))


def _cut(tokens: list[str], *, first: bool, last: bool) -> str:
    """Unchanged words between changes: at most ``CONTEXT`` words either side of a change."""
    keep = 2 * CONTEXT  # tokens: words and the spaces between them
    if len(tokens) <= 2 * keep + 1:
        return "".join(tokens)
    head = "" if first else "".join(tokens[:keep]).rstrip() + " "
    tail = "" if last else " " + "".join(tokens[-keep:]).lstrip()
    return head + "…" + tail


def _fields(
    before: dict[str, Any], after: dict[str, Any], names: tuple[tuple[str, str], ...]
) -> tuple[TextChange, ...]:
    found = (word_diff(label, before.get(key), after.get(key)) for key, label in names)
    return tuple(c for c in found if c is not None)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _event_key(event: dict[str, Any], index: int, taken: set[str]) -> str:
    key = shown(event.get("title")) or f"#{index}"
    while key in taken:
        key += "'"
    taken.add(key)
    return key


def events(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> tuple[EventChange, ...]:
    """Events matched by title (then by place in the list, for a renamed one): added, removed or
    changed."""
    taken_a: set[str] = set()
    taken_b: set[str] = set()
    old = {_event_key(e, i, taken_a): e for i, e in enumerate(before)}
    new = {_event_key(e, i, taken_b): e for i, e in enumerate(after)}
    gone = [k for k in old if k not in new]
    came = [k for k in new if k not in old]
    renamed = dict(zip(gone, came, strict=True)) if len(gone) == len(came) else {}
    was_named = {c: g for g, c in renamed.items()}
    out: list[EventChange] = []
    for key, event in new.items():
        was = old.get(was_named.get(key, key))
        if was is None:
            out.append(EventChange("added", shown(event.get("title"))))
            continue
        changed = _fields(was, event, EVENT_FIELDS)
        if changed:
            out.append(EventChange("changed", shown(event.get("title")), changed))
    out.extend(EventChange("removed", shown(old[k].get("title"))) for k in gone if k not in renamed)
    return tuple(out)


def _item_key(item: dict[str, Any], index: int) -> str:
    return shown(item.get("id")) or f"#{index}"


def items(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> tuple[ItemChange, ...]:
    """Items matched by their ``id``: added, removed, moved (among those kept) or changed."""
    old = {_item_key(it, i): (i, it) for i, it in enumerate(before)}
    new = {_item_key(it, i): (i, it) for i, it in enumerate(after)}
    kept_old = [k for k in old if k in new]
    kept_new = [k for k in new if k in old]
    out: list[ItemChange] = []
    for key, (index, item) in new.items():
        title = shown(item.get("title")) or shown(item.get("highlight")) or key
        if key not in old:
            out.append(ItemChange("added", title, 0, index + 1))
            continue
        was_index, was = old[key]
        moved = kept_old.index(key) != kept_new.index(key)
        fields = _fields(was, item, ITEM_FIELDS)
        changed_events = events(_list(was.get("events")), _list(item.get("events")))
        if moved or fields or changed_events:
            kind = "moved" if moved and not (fields or changed_events) else "changed"
            out.append(ItemChange(kind, title, was_index + 1, index + 1, fields, changed_events))
            if moved and kind == "changed":
                out.append(ItemChange("moved", title, was_index + 1, index + 1))
    for key, (index, item) in old.items():
        if key not in new:
            title = shown(item.get("title")) or shown(item.get("highlight")) or key
            out.append(ItemChange("removed", title, index + 1, 0))
    return tuple(out)


def audience(before: dict[str, Any], after: dict[str, Any]) -> AudienceChange | None:
    """The audience then and now (``approvals.Audience.as_dict``), None when the same."""
    old_regions = {str(r[0]): int(r[1]) for r in before.get("by_region", [])}
    new_regions = {str(r[0]): int(r[1]) for r in after.get("by_region", [])}
    regions = tuple(
        RegionCount(label, old_regions.get(label, 0), new_regions.get(label, 0))
        for label in sorted(set(old_regions) | set(new_regions))
        if old_regions.get(label, 0) != new_regions.get(label, 0)
    )
    expression_before = str(before.get("audience", ""))
    expression_after = str(after.get("audience", ""))
    total_before, total_after = int(before.get("total", 0)), int(after.get("total", 0))
    if not regions and expression_before == expression_after and total_before == total_after:
        return None
    return AudienceChange(expression_before, expression_after, total_before, total_after, regions)


def read(text: str) -> dict[str, Any]:
    """An issue file's text as plain data ({} when it cannot be read)."""
    data, _lines = read_yaml(text, Path("issue.yaml"), [])
    return data if isinstance(data, dict) else {}


def compare(
    before_text: str, before_audience: dict[str, Any], after_text: str, after_audience: dict[str, Any]
) -> Changes:
    """What changed from the approved copy (``before_*``) to the issue as it is now (``after_*``)."""
    old, new = read(before_text), read(after_text)
    return Changes(
        issue=_fields(old, new, ISSUE_FIELDS),
        items=items(_list(old.get("items")), _list(new.get("items"))),
        calendar=events(_list(old.get("calendar")), _list(new.get("calendar"))),
        audience=audience(_mapping(before_audience), _mapping(after_audience)),
    )
