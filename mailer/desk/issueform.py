"""The issue's form on the desk: its fields, their names, and how a post changes the file.

Field names follow the issue's field paths: ``title``, ``items-2-highlight``,
``items-2-events-0-start``, ``calendar-1-booking-url``; so a problem ``campaigns check`` reports at
``items[2].events[0].start`` is shown at the form field ``items-2-events-0-start`` (``place``).

A post changes only the fields whose value differs from the file's (``Submitted.change``): a field
left as it was is not rewritten, so its comments and quoting stay. A field missing from the post is
left as it is. Text that is longer than its field allows refuses the whole save.

An item's links (``items-2-links-0-url``) and image (``items-2-image-src``) are read and written
each as a whole (``mailer.desk.itemparts``), checked with the issue schema's ``Link`` and
``Image`` before anything is written: a wrong one refuses the whole save, its problem shown at its
field (``Submitted.invalid``).
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mailer.desk.fieldwrite import get_path, set_field
from mailer.desk.formfields import Field, Posted, Spec, clean, line
from mailer.desk.issuefile import Change, IssueFile, to_yaml
from mailer.desk.itemparts import (
    image_fields,
    link_rows,
    put_in_order,
    read_image,
    read_links,
    set_image,
    set_links,
)
from mailer.desk.pickers import match
from mailer.errors import MailerError, Problem

if TYPE_CHECKING:
    from mailer.audience.networks import Network
    from mailer.audience.shape import Shape


HEAD = [
    Spec("title", "Title", hint="The heading at the top of the newsletter.", required=True),
    Spec("subject", "Subject line", required=True),
    Spec("preheader", "Preheader", hint="Optional: one line shown after the subject in the inbox."),
    Spec("date", "Date", limit=10, hint="YYYY-MM-DD: events before it count as past.", required=True),
    Spec("audience", "Audience", limit=1000, hint="Who gets it: a segment, e.g. region:central-england."),
]
NEWSLETTER_HEAD = [
    *HEAD,
    Spec("intro", "Intro", "text", 20_000, "The welcome above the highlights (Markdown)."),
]
ALERT_HEAD = [
    *HEAD,
    Spec("body", "Text", "text", 50_000, "Markdown.", required=True),
    Spec("button-text", "Button text", required=True),
    Spec("button-url", "Button link", limit=2000, hint="https://…", required=True),
]
TAIL = [Spec("sign_off", "Sign-off", "text", 2000, "Each line as it is.")]
ITEM = [
    Spec(
        "id",
        "Id",
        limit=100,
        hint="Lower-case words and hyphens, unique: the highlight links to it.",
        required=True,
    ),
    Spec("title", "Title", required=True),
    Spec("highlight", "Highlight", limit=500, hint="Its line in the highlights."),
    Spec("report", "A report: no line in the highlights", "bool"),
    Spec("body", "Text", "text", 50_000, "Markdown: **bold**, [link text](https://…), “- ” lists."),
    Spec("contact", "Contact", limit=500),
    Spec("regions", "Regions", "names", 2000, "Names, separated by commas; empty: the whole audience."),
    Spec("interests", "Interests", "names", 2000, "Names, separated by commas; empty: everyone."),
]
_EVENT = [
    Spec("title", "What", hint="The calendar line.", required=True),
    Spec("start", "Starts", limit=30, hint="2026-01-10 18:30; a date alone is all day.", required=True),
    Spec("end", "Ends", limit=30, hint="Optional: 21:00; or the last day of an all-day event."),
    Spec("location", "Where", limit=500),
    Spec("online", "Can be joined online", "bool"),
    Spec("booking-text", "Booking link text"),
    Spec("booking-url", "Booking link", limit=2000, hint="https://…"),
    Spec("contact", "Contact", limit=500),
]
EVENT = [
    *_EVENT,
    Spec("regions", "Regions", "names", 2000, "Names, separated by commas; empty: as its item."),
    Spec("interests", "Interests", "names", 2000, "Names, separated by commas; empty: as its item."),
]
CALENDAR = [
    *_EVENT,
    Spec("regions", "Regions", "names", 2000, "Names, separated by commas; empty: the whole audience."),
    Spec("interests", "Interests", "names", 2000, "Names, separated by commas; empty: everyone."),
]
ORDER = {
    "top": [
        "kind",
        "network",
        "title",
        "subject",
        "preheader",
        "date",
        "audience",
        "intro",
        "body",
        "button",
    ],
    "item": [
        "id",
        "title",
        "highlight",
        "body",
        "links",
        "contact",
        "image",
        "regions",
        "interests",
        "events",
    ],
    "event": ["title", "start", "end", "location", "online", "booking", "contact", "regions", "interests"],
}


def shown(container: Any, spec: Spec) -> Any:
    """The value the form shows for ``spec`` of ``container`` (a dict of the issue's data)."""
    if spec.key == "report":
        return isinstance(container, dict) and container.get("highlight") is False
    value = get_path(container, spec.path)
    if spec.kind == "bool":
        return value is True
    if spec.key == "highlight" and value is False:
        return ""
    if spec.kind == "names" and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# The form as shown


@dataclass
class Group:
    """Fields of one container (the issue, an item, an event, a calendar entry) and its children;
    an item's link rows and image fields too (None: the desk cannot show them as fields)."""

    prefix: str  # "", "items-2-", "items-2-events-0-", "calendar-1-"
    fields: list[Field]
    children: list[Group] = field(default_factory=list)
    heading: str = ""
    item: bool = False
    links: list[list[Field]] | None = None
    image: list[Field] | None = None

    @property
    def anchor(self) -> str:
        return self.prefix.rstrip("-") or "issue"

    def extra_fields(self) -> list[Field]:
        """The link and image fields (each read and written as a whole, not by ``_set``)."""
        return [f for row in self.links or [] for f in row] + list(self.image or [])

    def extra_names(self) -> set[str]:
        """The names problems may be shown at: the fields, each link row, the links, the image."""
        out = {f.name for f in self.extra_fields()}
        if self.item:
            out.update({self.prefix + "links", self.prefix + "image"})
            out.update(f"{self.prefix}links-{j}" for j in range(len(self.links or [])))
        return out


@dataclass
class Form:
    kind: str
    head: Group
    items: list[Group]
    calendar: list[Group]
    tail: Group

    @property
    def names(self) -> set[str]:
        out: set[str] = set()
        for group in self.groups():
            out.update(f.name for f in group.fields)
            out.update(group.extra_names())
            out.add(group.anchor)
        return out

    def fields(self) -> list[Field]:
        """Every field of the form, the links' and images' too."""
        return [f for g in self.groups() for f in (*g.fields, *g.extra_fields())]

    def show(self, values: dict[str, Any]) -> None:
        """Show ``values`` (by field name) instead of the file's: a refused post, made again."""
        for f in self.fields():
            if f.name in values:
                f.value = values[f.name]

    def groups(self) -> list[Group]:
        out = [self.head, self.tail, *self.calendar]
        for item in self.items:
            out.extend([item, *item.children])
        return out

    @classmethod
    def of(cls, data: dict[str, Any]) -> Form:
        kind = "alert" if data.get("kind") == "alert" else "newsletter"

        def group(container: Any, prefix: str, specs: list[Spec], heading: str = "") -> Group:
            return Group(
                prefix, [Field(prefix + s.key, s, shown(container, s)) for s in specs], heading=heading
            )

        head = group(data, "", ALERT_HEAD if kind == "alert" else NEWSLETTER_HEAD)
        items: list[Group] = []
        calendar: list[Group] = []
        if kind == "newsletter":
            for i, item in enumerate(_list(data, "items")):
                title = get_path(item, ("title",))
                g = group(
                    item,
                    f"items-{i}-",
                    ITEM,
                    f"Item {i + 1}" + (f": {title}" if isinstance(title, str) and title else ""),
                )
                g.item = True
                g.links = link_rows(item, g.prefix)
                g.image = image_fields(item, g.prefix)
                for j, event in enumerate(_list(item, "events")):
                    g.children.append(
                        group(event, f"items-{i}-events-{j}-", EVENT, f"Event {j + 1} of item {i + 1}")
                    )
                items.append(g)
            for j, entry in enumerate(_list(data, "calendar")):
                calendar.append(group(entry, f"calendar-{j}-", CALENDAR, f"Calendar entry {j + 1}"))
        return cls(kind, head, items, calendar, group(data, "", TAIL))


def _list(container: Any, key: str) -> list[Any]:
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------------------------------------
# Problems at their fields


@dataclass(frozen=True)
class Shown:
    text: str
    severity: str = "error"
    line: int | None = None


@dataclass
class Placed:
    at: dict[str, list[Shown]] = field(default_factory=dict)
    general: list[Shown] = field(default_factory=list)
    summary: list[tuple[str, Shown]] = field(default_factory=list)  # (anchor, message)


def form_name(field_path: str) -> str:
    """``items[2].events[0].booking.url`` → ``items-2-events-0-booking-url``."""
    return re.sub(r"\[(\d+)\]", r"-\1", field_path).replace(".", "-")


def place(problems: list[Problem], form: Form | None) -> Placed:
    """Each problem at the form field (or item, event, entry) it concerns; the rest in ``general``."""
    placed = Placed()
    names = form.names if form else set()
    for p in problems:
        text = p.message[:1].upper() + p.message[1:] + (f" ({p.hint})" if p.hint else "")
        shown_ = Shown(text, p.severity, p.line)
        name = form_name(p.field or "")
        parts = name.split("-") if name else []
        while parts and "-".join(parts) not in names:
            parts.pop()
        target = "-".join(parts)
        if target:
            placed.at.setdefault(target, []).append(shown_)
            placed.summary.append((target, shown_))
        else:
            placed.general.append(shown_)
    return placed


# ---------------------------------------------------------------------------------------------
# A post


@dataclass
class Submitted:
    """The posted values of the fields the file has now, which are too long, and which are not
    right (``invalid``: the links and images the schema refuses); the links and image of each item
    (by its prefix) as they are to be written (an image None: removed)."""

    data: dict[str, Any]
    values: dict[str, Any]
    too_long: dict[str, str]
    invalid: dict[str, str] = field(default_factory=dict)
    links: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    images: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    order: list[int] | None = None

    @classmethod
    def read(
        cls,
        form: Posted,
        data: dict[str, Any],
        *,
        folder: Path | None = None,
        known: dict[str, dict[str, str]] | None = None,
    ) -> Submitted:
        """The post ``form`` against the file's ``data``; ``folder``: the campaign's, where an
        image's file must be; ``known``: for a list field's key, its names and slugs (lower-cased)
        → slug, so a name typed in any case is written as its slug (``pickers.table``)."""
        values: dict[str, Any] = {}
        too_long: dict[str, str] = {}
        out = cls(data, values, too_long)
        out.order = _order(form, data)
        groups = Form.of(data).groups()
        for group in groups:
            present = group.prefix + "title" in form
            for f in [*group.fields, *group.extra_fields()]:
                if f.spec.kind == "bool":
                    if present:
                        values[f.name] = form.get(f.name) == "yes"
                    continue
                raw = form.get(f.name)
                if not isinstance(raw, str):
                    continue
                value = clean(raw, several_lines=f.spec.kind == "text")
                if f.spec.kind == "names" and known and f.spec.key in known:
                    value = match(value, known[f.spec.key])
                if len(value) > f.spec.limit:
                    too_long[f.name] = (
                        f"Too long: at most {f.spec.limit:,} characters (this has {len(value):,})."
                    )
                values[f.name] = value
        for group in groups if not too_long else []:
            if group.links is not None:
                links = read_links(group.links, values, out.invalid)
                if links is not None:
                    out.links[group.prefix] = links
            if group.image is not None:
                image = read_image(group.image, values, folder, out.invalid)
                if image is not None:
                    out.images[group.prefix] = image[0]
        return out

    def change(self, action: str) -> Change:
        form = Form.of(self.data)

        def apply(doc: MutableMapping[str, Any]) -> None:
            for group in form.groups():
                container = _container(doc, group.prefix)
                if container is None:
                    continue
                order = (
                    ORDER["top"]
                    if not group.prefix
                    else ORDER["item"]
                    if group.prefix.count("-") == 2
                    else ORDER["event"]
                )
                for f in group.fields:
                    if f.name in self.values:
                        set_field(container, group.prefix, f, self.values, order)
                if group.prefix in self.links:
                    set_links(container, self.links[group.prefix], order)
                if group.prefix in self.images:
                    set_image(container, self.images[group.prefix], order)
            items = doc.get("items")
            if self.order is not None and isinstance(items, list) and len(items) == len(self.order):
                moved = [items[i] for i in self.order]
                for i, item in enumerate(moved):
                    items[i] = item
            _structure(doc, action)

        return apply


def _order(form: Posted, data: dict[str, Any]) -> list[int] | None:
    """The items' new order from a drag on the page (``order``: the items' positions as they were,
    comma-separated, in their new order); None when absent, unchanged or not a reordering of them."""
    raw = form.get("order")
    items = data.get("items")
    if not isinstance(raw, str) or not isinstance(items, list) or not re.fullmatch(r"[0-9,]{1,5000}", raw):
        return None
    order = [int(n) for n in raw.split(",") if n]
    if sorted(order) != list(range(len(items))) or order == sorted(order):
        return None
    return order


def _container(doc: MutableMapping[str, Any], prefix: str) -> Any:
    parts = prefix.strip("-").split("-") if prefix else []
    current: Any = doc
    for part in parts:
        if part.isdigit():
            index = int(part)
            current = current[index] if isinstance(current, list) and index < len(current) else None
        else:
            current = current.get(part) if isinstance(current, dict) else None
        if current is None:
            return None
    return current if isinstance(current, dict) else None


def _seq(doc: MutableMapping[str, Any], key: str, order: list[str]) -> list[Any]:
    seq = doc.get(key)
    if not isinstance(seq, list):
        put_in_order(doc, key, CommentedSeq() if isinstance(doc, CommentedMap) else [], order)
        seq = doc[key]
    if isinstance(seq, CommentedSeq) and seq.fa.flow_style():
        seq.fa.set_block_style()
    return seq


def _new_id(items: list[Any]) -> str:
    ids = {str(i.get("id")) for i in items if isinstance(i, dict)}
    n = 1
    while (candidate := "new-item" if n == 1 else f"new-item-{n}") in ids:
        n += 1
    return candidate


ACTION = re.compile(
    r"(add-item|add-calendar)|(remove-item|up-item|down-item|add-event|remove-calendar)-(\d{1,4})|remove-event-(\d{1,4})-(\d{1,4})"
)


def _structure(doc: MutableMapping[str, Any], action: str) -> None:
    """Add, remove or move what the button pressed says."""
    m = ACTION.fullmatch(action)
    if m is None:
        return
    if m.group(1) == "add-item":
        items = _seq(doc, "items", ORDER["top"] + ["items"])
        items.append(to_yaml({"id": _new_id(items), "title": "", "highlight": ""}))
    elif m.group(1) == "add-calendar":
        _seq(doc, "calendar", ORDER["top"] + ["items", "calendar"]).append(
            to_yaml({"title": "", "start": ""})
        )
    elif m.group(2):
        what, n = m.group(2), int(m.group(3))
        seq = _seq(
            doc, "calendar" if what == "remove-calendar" else "items", ORDER["top"] + ["items", "calendar"]
        )
        if n >= len(seq):
            return
        if what in ("remove-item", "remove-calendar"):
            del seq[n]
        elif what == "up-item" and n > 0:
            seq.insert(n - 1, seq.pop(n))
        elif what == "down-item" and n + 1 < len(seq):
            seq.insert(n + 1, seq.pop(n))
        elif what == "add-event" and isinstance(seq[n], dict):
            _seq(seq[n], "events", ORDER["item"]).append(to_yaml({"title": "", "start": ""}))
    else:
        i, j = int(m.group(4)), int(m.group(5))
        found = doc.get("items")
        if isinstance(found, list) and i < len(found) and isinstance(found[i], dict):
            events = found[i].get("events")
            if isinstance(events, list) and j < len(events):
                del events[j]


def anchor(action: str) -> str:
    m = ACTION.fullmatch(action)
    if m is None:
        return ""
    if m.group(1):
        return "#" + ("items-end" if m.group(1) == "add-item" else "calendar-end")
    if m.group(2) in ("add-event",):
        return f"#items-{m.group(3)}"
    return (
        "#items"
        if m.group(2) and "item" in m.group(2)
        else "#calendar"
        if m.group(2)
        else f"#items-{m.group(4)}"
    )


def unsaved(form: Posted, opened: IssueFile) -> list[tuple[str, str]]:
    """The posted values that differ from the file as it is now (for the editor to make again)."""
    try:
        now = {f.name: f.value for f in Form.of(opened.data()).fields()}
    except MailerError:
        now = {}
    out = []
    for name, value in form.multi_items():
        if name in ("csrf", "version", "action", "order") or not isinstance(value, str):
            continue
        value = value.replace("\r\n", "\n")
        current = now.get(name)
        if (current is True and value == "yes") or (
            str(current or "") == value.strip() and current is not None
        ):
            continue
        if value.strip() or current:
            out.append((name, value[:5000]))
        if len(out) >= 100:
            break
    return out


def region_hint(shape: Shape, network: Network | None) -> str:
    """The regions an issue of ``network`` may name (all of them for a single network)."""
    if network is None or not network.regions:
        return ", ".join(shape.regions)
    owned = [r for r in shape.regions if any(t == r or t in shape.ancestors(r) for t in network.regions)]
    return ", ".join(owned)


__all__ = [
    "Field",
    "Form",
    "Group",
    "Placed",
    "Spec",
    "Submitted",
    "anchor",
    "clean",
    "form_name",
    "line",
    "place",
    "unsaved",
]
