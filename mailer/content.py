"""Issue files: ``campaigns/<slug>/issue.yaml`` loaded and validated into a typed ``Issue``.

An issue is a newsletter (items, highlights, a calendar) or an alert (one call to action). Event
times are wall-clock times in Europe/London; the issue's ``date`` is the "today" against which events
count as past. Bodies are Markdown, rendered later with raw HTML off.

``load_issue`` / ``load_campaign`` read a file and validate it as a whole: every problem is reported
at once in one ``ContentError``, each with its file, line and field (``items[3].events[0].end``).
Warnings (events before the issue date, ``http://`` links) come back with the loaded issue;
``audience_warnings`` adds the one that needs the database (an item no member would see).

Rules an editor relies on:

- Every item has a ``highlight`` (its line in the HIGHLIGHTS), unless it says ``highlight: false``:
  then it is a report, a section with no line in the highlights. A missing or empty highlight is an
  error.
- ``regions: []`` and ``interests: []`` (the default) mean everyone in the audience. An event's
  ``regions``/``interests`` default to its item's.
- Text still holding ``TODO`` (as ``mailer campaigns new`` writes it) is an error: fill it in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailer.errors import ContentError, MailerError, Problem, UnknownName, suggest

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mailer.audience.shape import Shape
    from mailer.db import Database

LONDON = ZoneInfo("Europe/London")
ISSUE_FILE = "issue.yaml"
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
TODO = "TODO"
_URL = re.compile(r"^(?:https?://[^\s/]+\S*|mailto:\S+@\S+)$")
_HTTP_IN_TEXT = re.compile(r"http://[^\s)>\]\"']+")

# ---------------------------------------------------------------------------------------------
# Field types with their own parsing and messages


def _when(value: object) -> date | datetime:
    """``2025-11-29`` is a date (an all-day event); ``2025-11-18 19:30`` a date and time."""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            pass
    raise PydanticCustomError(
        "when",
        "not a date or a date and time: {value}",
        {"value": repr(value), "hint": "write 2025-11-29 for a whole day, 2025-11-18 19:30 for a time"},
    )


def _end(value: object) -> datetime | time | None:
    """An end: a date and time (``2025-12-01 21:00``), a time on the start's day (``21:00``) or none."""
    if value is None or isinstance(value, datetime | time):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return time.fromisoformat(text) if len(text) <= 8 else datetime.fromisoformat(text)
        except ValueError:
            pass
    raise PydanticCustomError(
        "end",
        "not a time or a date and time: {value}",
        {"value": repr(value), "hint": "write 21:00, or 2025-12-01 21:00"},
    )


def _url(value: str) -> str:
    if not _URL.match(value):
        raise PydanticCustomError(
            "url",
            "not a link: {value}",
            {"value": repr(value), "hint": "a link starts with https:// (or mailto: for an address)"},
        )
    return value


def _image_src(value: str, info: ValidationInfo) -> str:
    if re.match(r"^https?://", value):
        return _url(value)
    if ":" in value or value.startswith("/") or ".." in Path(value).parts:
        raise PydanticCustomError(
            "image_src",
            "not an image address: {value}",
            {
                "value": repr(value),
                "hint": "give an https:// address, or a file name in the campaign's folder",
            },
        )
    folder = (info.context or {}).get("folder")
    if isinstance(folder, Path) and not (folder / value).is_file():
        raise PydanticCustomError(
            "image_missing",
            "image file {value} not found in {folder}",
            {"value": repr(value), "folder": str(folder), "hint": "put the image next to issue.yaml"},
        )
    return value


def _alt(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError(
            "alt",
            "the image has no alt text",
            {"hint": "describe the image for people who cannot see it, e.g. alt: Cover of the guide"},
        )
    return value


def _no_highlight(value: object) -> object:
    """``highlight: false`` marks a report: a section with no line in the highlights."""
    return None if value is False else value


def _check_slug(kind: str, value: str, info: ValidationInfo) -> str:
    shape = (info.context or {}).get("shape")
    if shape is None:
        return value
    known: dict[str, Any] = shape.regions if kind == "region" else shape.interests
    if value not in known:
        raise PydanticCustomError(
            f"unknown_{kind}",
            "unknown {kind} {value}",
            {"kind": kind, "value": repr(value), "hint": suggest(value, list(known), f"{kind}s")},
        )
    return value


def _region(value: str, info: ValidationInfo) -> str:
    return _check_slug("region", value, info)


def _interest(value: str, info: ValidationInfo) -> str:
    return _check_slug("interest", value, info)


When = Annotated[datetime | date, PlainValidator(_when)]
EndTime = Annotated[datetime | time | None, PlainValidator(_end)]
Url = Annotated[str, AfterValidator(_url)]
RegionSlug = Annotated[str, AfterValidator(_region)]
InterestSlug = Annotated[str, AfterValidator(_interest)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Link(Model):
    """A link listed under an item ("Book your ticket": https://…)."""

    text: str
    url: Url


class Image(Model):
    """An image in an item; ``alt`` is required (an empty alt is an error: describe the image).

    ``src`` is an https:// address or a file in the campaign's folder.
    """

    src: Annotated[str, AfterValidator(_image_src)]
    alt: Annotated[str, AfterValidator(_alt)]
    width: int | None = None


class Button(Model):
    """An alert's one call to action."""

    text: str
    url: Url


class Event(Model):
    """A dated entry of the calendar.

    ``start`` is a date for an all-day event, else a date and time (Europe/London). ``end`` is a date
    and time or a time on the start's day. ``location`` says where; ``online: true`` says it can be
    joined online (with a location too: both). ``regions`` and ``interests`` default to the item's
    (None means "inherit"; [] means "everyone in the audience").
    """

    title: str
    start: When
    end: EndTime = None
    location: str = ""
    online: bool = False
    booking: Link | None = None
    contact: str = ""
    regions: list[RegionSlug] | None = None
    interests: list[InterestSlug] | None = None

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: datetime | time | None, info: ValidationInfo) -> datetime | time | None:
        start = info.data.get("start")
        if end is None or start is None:
            return end
        if not isinstance(start, datetime):
            raise PydanticCustomError(
                "end_all_day",
                "an all-day event has no end time",
                {"hint": "give start a time too (2025-11-29 10:00), or leave out end"},
            )
        end_at = end if isinstance(end, datetime) else datetime.combine(start.date(), end)
        if end_at < start:
            raise PydanticCustomError(
                "end_before_start",
                "the event ends ({end}) before it starts ({start})",
                {"end": f"{end_at:%Y-%m-%d %H:%M}", "start": f"{start:%Y-%m-%d %H:%M}"},
            )
        return end

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    @property
    def day(self) -> date:
        return self.start.date() if isinstance(self.start, datetime) else self.start

    @property
    def start_time(self) -> time | None:
        return self.start.time() if isinstance(self.start, datetime) else None

    @property
    def end_time(self) -> time | None:
        if isinstance(self.end, datetime):
            return self.end.time()
        return self.end

    def start_at(self) -> datetime:
        """The start as an aware datetime in Europe/London (midnight for an all-day event)."""
        start = self.start if isinstance(self.start, datetime) else datetime.combine(self.start, time())
        return start.replace(tzinfo=LONDON)

    def end_at(self) -> datetime | None:
        """The end as an aware datetime in Europe/London, if the event has one."""
        if self.end is None:
            return None
        end = self.end if isinstance(self.end, datetime) else datetime.combine(self.day, self.end)
        return end.replace(tzinfo=LONDON)


class Item(Model):
    """One section of a newsletter, with its line in the highlights and its events.

    ``highlight`` is None for a report (``highlight: false`` in the file): a section with no line in
    the highlights.
    """

    id: Annotated[str, Field(pattern=SLUG.pattern)]
    title: str
    highlight: Annotated[Annotated[str, Field(min_length=1)] | None, BeforeValidator(_no_highlight)]
    body: str = ""
    links: list[Link] = Field(default_factory=list)
    contact: str = ""
    image: Image | None = None
    regions: list[RegionSlug] = Field(default_factory=list)
    interests: list[InterestSlug] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)

    @property
    def is_report(self) -> bool:
        """True for a section with no line in the highlights."""
        return self.highlight is None


def _audience(value: str, info: ValidationInfo) -> str:
    shape = (info.context or {}).get("shape")
    if shape is None:
        return value
    try:
        from mailer.audience import segments
    except ImportError:  # pragma: no cover - the segments module ships with the package
        return value
    try:
        segments.resolve(segments.parse(value), shape)
    except MailerError as exc:
        # A syntax error's message shows the expression with a caret under the column; keep the
        # first line (it names the column) and the advice after the caret, if any.
        first, *rest = exc.message.splitlines()
        advice = [line.strip() for line in rest[2:] if line.strip()]
        raise PydanticCustomError(
            "audience",
            "not a valid audience {value}: {message}",
            {
                "value": repr(value),
                "message": first,
                "hint": exc.problem.hint
                or (advice[0] if advice else "e.g. region:kent and (interest:refugees or interest:schools)"),
            },
        ) from None
    return value


Audience = Annotated[str, AfterValidator(_audience)]


class Newsletter(Model):
    kind: Literal["newsletter"]
    title: str
    subject: str
    preheader: str = ""
    date: date
    audience: Audience = "all"
    intro: str = ""
    items: list[Item] = Field(default_factory=list)
    calendar: list[Event] = Field(default_factory=list)
    sign_off: str = ""

    def events(self) -> list[tuple[Item | None, Event]]:
        """Every event: the items' (with their item) then the calendar-only entries (item None)."""
        out: list[tuple[Item | None, Event]] = [(item, e) for item in self.items for e in item.events]
        out.extend((None, e) for e in self.calendar)
        return out


class Alert(Model):
    kind: Literal["alert"]
    title: str
    subject: str
    preheader: str = ""
    date: date
    audience: Audience
    body: str
    button: Button
    sign_off: str = ""


Issue = Annotated[Newsletter | Alert, Field(discriminator="kind")]

# ---------------------------------------------------------------------------------------------
# Reading YAML with the position of every field

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _IssueYAMLLoader(yaml.SafeLoader):
    """``yaml.safe_load`` semantics, except that times stay text: ``21:00`` is not the number 1260
    (YAML 1.1 base 60) and ``2025-11-18`` is parsed by the model, not by YAML."""


_IssueYAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in entries if tag not in (_INT, _FLOAT, _TIMESTAMP)]
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_IssueYAMLLoader.add_implicit_resolver(
    _INT,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_IssueYAMLLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)

IssueYAMLLoader = _IssueYAMLLoader
"""The YAML loader issue files are read with (``yaml.load(text, Loader=IssueYAMLLoader)``)."""

Loc = tuple[str | int, ...]


def field_name(loc: Loc) -> str:
    """``("items", 3, "events", 0, "end")`` → ``items[3].events[0].end``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


MAX_NODES = 100_000  # an issue file with more values than this is a YAML alias bomb, not an issue


class _TooLarge(Exception):
    pass


def _walk(
    node: Node,
    loc: Loc,
    lines: dict[Loc, tuple[int, int]],
    problems: list[Problem],
    path: Path,
    ancestors: frozenset[int] = frozenset(),
) -> None:
    """Record the line and column of every field, and report keys given twice.

    Raises ``_TooLarge`` when aliases (``*name``) refer to themselves or expand past ``MAX_NODES``."""
    if id(node) in ancestors or len(lines) > MAX_NODES:
        raise _TooLarge(node.start_mark.line + 1)
    lines.setdefault(loc, (node.start_mark.line + 1, node.start_mark.column + 1))
    ancestors = ancestors | {id(node)}
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, ScalarNode) else "?"
            line = key.start_mark.line + 1
            if name in seen:
                problems.append(
                    Problem(
                        f"{name!r} is given twice (first at line {seen[name]})",
                        path=path,
                        line=line,
                        field=field_name((*loc, name)),
                        hint="keep one of them",
                    )
                )
            seen.setdefault(name, line)
            lines.setdefault((*loc, name), (line, key.start_mark.column + 1))
            _walk(value, (*loc, name), lines, problems, path, ancestors)
    elif isinstance(node, SequenceNode):
        for i, child in enumerate(node.value):
            _walk(child, (*loc, i), lines, problems, path, ancestors)


def _read_yaml(text: str, path: Path, problems: list[Problem]) -> tuple[Any, dict[Loc, tuple[int, int]]]:
    lines: dict[Loc, tuple[int, int]] = {}
    loader = _IssueYAMLLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            problems.append(
                Problem(
                    "the file is empty", path=path, line=1, hint="run `mailer campaigns new` for a skeleton"
                )
            )
            return None, lines
        _walk(node, (), lines, problems, path)
        data = loader.construct_document(node)
    except _TooLarge as exc:
        problems.append(
            Problem(
                "a YAML alias (*name) refers to itself or expands to too much",
                path=path,
                line=exc.args[0],
                hint="write the value out instead of using an alias",
            )
        )
        return None, lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        problems.append(
            Problem(
                f"not valid YAML: {message}",
                path=path,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
                hint="check the indentation, and quote text that contains ': ' or starts with a symbol",
            )
        )
        return None, lines
    except yaml.YAMLError as exc:
        problems.append(Problem(f"not valid YAML: {exc}", path=path))
        return None, lines
    finally:
        loader.dispose()
    return data, lines


# ---------------------------------------------------------------------------------------------
# Turning pydantic's errors into problems a person can act on

_MISSING_HINTS = {
    "highlight": "write the item's line in the HIGHLIGHTS, or `highlight: false` for a report with none",
    "alt": "describe the image for people who cannot see it, e.g. alt: Cover of the guide",
    "kind": "kind: newsletter, or kind: alert",
}


def _model_fields(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names of the model found at ``loc`` (for suggesting the field an editor meant)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        current = _find_model(info.annotation) if info else None
    return list(current.model_fields) if current else []


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found:
            return found
    return None


def _problem(err: Any, model: type[BaseModel], path: Path, lines: dict[Loc, tuple[int, int]]) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    name = loc[-1] if loc else ""
    hint: str | None = ctx.get("hint")
    if kind == "missing":
        message = "missing highlight" if name == "highlight" else f"{name} is required"
        hint = _MISSING_HINTS.get(str(name))
    elif kind == "extra_forbidden":
        message = f"unknown field {name!r}"
        known = _model_fields(model, loc[:-1])
        hint = suggest(str(name), known, "fields") if known else None
    elif kind == "string_too_short" and name == "highlight":
        message = "the highlight is empty"
        hint = _MISSING_HINTS["highlight"]
    elif kind == "string_pattern_mismatch" and name == "id":
        message = f"not a valid id: {err['input']!r}"
        hint = "use lower-case letters, digits and hyphens, e.g. write-for-rights"
    elif kind.startswith(
        ("string_type", "int_", "bool_", "list_type", "model_type", "model_attributes_type")
    ):
        message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {err['input']!r}"
    else:
        message = err["msg"]
        message = message.removeprefix("Value error, ")
    at = lines.get(loc)
    probe = loc
    while at is None and probe:
        probe = probe[:-1]
        at = lines.get(probe)
    return Problem(
        message,
        path=path,
        line=at[0] if at else None,
        field=field_name(loc) or None,
        hint=hint,
    )


def _todo_problems(data: Any, loc: Loc, path: Path, lines: dict[Loc, tuple[int, int]]) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(_todo_problems(value, (*loc, str(key)), path, lines))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.extend(_todo_problems(value, (*loc, i), path, lines))
    elif isinstance(data, str) and TODO in data:
        at = lines.get(loc)
        out.append(
            Problem(
                "still to fill in (it says TODO)",
                path=path,
                line=at[0] if at else None,
                field=field_name(loc),
                hint="replace the TODO text, or delete the field or item if you do not need it",
            )
        )
    return out


def _raw_problems(data: dict[str, Any], path: Path, lines: dict[Loc, tuple[int, int]]) -> list[Problem]:
    """Checks across items, made on the file's data so that they run even when an item is invalid."""
    out: list[Problem] = []
    items = data.get("items")
    if not isinstance(items, list):
        return out
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if "highlight" in item and item["highlight"] is None:
            at = lines.get(("items", i, "highlight"))
            out.append(
                Problem(
                    "missing highlight",
                    path=path,
                    line=at[0] if at else None,
                    field=f"items[{i}].highlight",
                    hint=_MISSING_HINTS["highlight"],
                )
            )
        ident = item.get("id")
        if not isinstance(ident, str):
            continue
        if ident in first:
            j = first[ident]
            at, other = lines.get(("items", i, "id")), lines.get(("items", j, "id"))
            out.append(
                Problem(
                    f"duplicate item id {ident!r} "
                    f"(items[{j}] at line {other[0] if other else '?'} has it too)",
                    path=path,
                    line=at[0] if at else None,
                    field=f"items[{i}].id",
                    hint="every item needs an id of its own: it is the anchor its highlight links to",
                )
            )
        else:
            first[ident] = i
    return out


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class LoadedIssue:
    """A validated issue file: the issue, where it came from, its warnings and its fields' lines."""

    slug: str
    path: Path
    issue: Newsletter | Alert
    warnings: list[Problem]
    lines: dict[str, int] = field(default_factory=dict)  # "items[3].events[0].end" -> line

    def line(self, field_path: str) -> int | None:
        """The line of a field (``items[3].title``), or of the nearest enclosing one."""
        probe = field_path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = re.sub(r"(\[\d+\]|\.[^.\[]+|^[^.\[]+)$", "", probe)
        return None

    def problem(self, message: str, field_path: str, hint: str | None = None) -> Problem:
        """A warning about a field of this issue, located at its line."""
        return Problem(
            message,
            path=self.path,
            line=self.line(field_path),
            field=field_path,
            hint=hint,
            severity="warning",
        )


def load_issue(path: Path, shape: Shape | None) -> LoadedIssue:
    """Read and validate an issue file; raise ``ContentError`` listing every problem in it.

    With ``shape`` the regions, interests and audience are checked against the workspace's lists;
    with None (no lists at hand) those checks are skipped.
    """
    problems: list[Problem] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError(
            [Problem("no such issue file", path=path, hint="create one with `mailer campaigns new SLUG`")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError([Problem(f"cannot read the issue file: {exc}", path=path)]) from None

    data, lines = _read_yaml(text, path, problems)
    if problems and data is None:
        raise ContentError(problems, summary=_summary(path, len(problems)))
    if not isinstance(data, dict):
        problems.append(
            Problem(
                "an issue file is a set of fields (kind:, title:, …), not a single value",
                path=path,
                line=1,
                hint="run `mailer campaigns new` for a skeleton",
            )
        )
        raise ContentError(problems)

    kind = data.get("kind")
    model: type[Newsletter] | type[Alert]
    if kind == "alert":
        model = Alert
    elif kind == "newsletter":
        model = Newsletter
    else:
        at = lines.get(("kind",), (1, 1))
        problems.append(
            Problem(
                f"unknown kind {kind!r}" if "kind" in data else "kind is required",
                path=path,
                line=at[0],
                field="kind",
                hint=_MISSING_HINTS["kind"],
            )
        )
        raise ContentError(problems)

    problems.extend(_raw_problems(data, path, lines))
    problems.extend(_todo_problems(data, (), path, lines))
    issue: Newsletter | Alert | None = None
    try:
        issue = model.model_validate(data, context={"shape": shape, "folder": path.parent})
    except ValidationError as exc:
        problems.extend(_problem(err, model, path, lines) for err in exc.errors())

    # One problem per field: a TODO and a type error at the same place say the same thing twice.
    unique: dict[tuple[str | None, str], Problem] = {}
    for p in problems:
        unique.setdefault((p.field, p.message), p)
    problems = sorted(unique.values(), key=lambda p: (p.line or 0, p.field or ""))
    if problems or issue is None:
        raise ContentError(problems, summary=_summary(path, len(problems)))

    loaded = LoadedIssue(
        slug=path.parent.name,
        path=path,
        issue=issue,
        warnings=[],
        lines={field_name(loc): at[0] for loc, at in lines.items() if loc},
    )
    loaded.warnings.extend(content_warnings(loaded))
    return loaded


def _summary(path: Path, count: int) -> str:
    return f"{path}: {count} problem{'s' if count != 1 else ''} found"


def campaign_path(workspace: Path, slug: str) -> Path:
    """``workspace/campaigns/<slug>/issue.yaml``."""
    return workspace / "campaigns" / slug / ISSUE_FILE


def campaign_slugs(workspace: Path) -> list[str]:
    """The slugs of the workspace's campaigns (folders with an issue file), sorted."""
    folder = workspace / "campaigns"
    if not folder.is_dir():
        return []
    return sorted(p.parent.name for p in folder.glob(f"*/{ISSUE_FILE}"))


def load_campaign(workspace: Path, slug: str, shape: Shape | None) -> LoadedIssue:
    """Load ``campaigns/<slug>/issue.yaml`` of ``workspace``; ``UnknownName`` if there is none."""
    path = campaign_path(workspace, slug)
    if not SLUG.match(slug) or not path.is_file():
        known = campaign_slugs(workspace)
        raise UnknownName(
            f"no campaign {slug!r} in {workspace / 'campaigns'}",
            field="campaign",
            hint=suggest(slug, known, "campaigns")
            if known
            else "create one with `mailer campaigns new SLUG`",
        )
    return load_issue(path, shape)


# ---------------------------------------------------------------------------------------------
# Scaffolding: `mailer campaigns new`

KINDS = ("newsletter", "alert")


def scaffold(kind: str, slug: str, shape: Shape | None, today: date) -> str:
    """The commented skeleton of a new issue file: every field explained, every value to fill in
    marked TODO (``check`` reports each one until it is filled in)."""
    import textwrap
    from datetime import timedelta
    from importlib.resources import files
    from string import Template

    if kind not in KINDS:
        raise ContentError([Problem(f"unknown kind {kind!r}", field="kind", hint="newsletter or alert")])
    source = files("mailer").joinpath("scaffold", f"{kind}.yaml").read_text(encoding="utf-8")

    def listed(names: list[str]) -> str:
        text = ", ".join(names) if names else "(none yet: see lists/)"
        return "\n#   ".join(textwrap.wrap(text, 90, break_on_hyphens=False))

    regions = list(shape.regions) if shape else []
    interests = list(shape.interests) if shape else []
    segments = list(shape.segments) if shape else []
    top = [r for r in regions if shape and shape.regions[r].parent is None]
    event_day = today + timedelta(days=7)
    if kind == "alert":
        audience = f"interest:{interests[0]}" if interests else "all"
    else:
        audience = f"region:{top[0]}" if top else "all"
    return Template(source).substitute(
        slug=slug,
        date=today.isoformat(),
        audience=audience,
        region_example=regions[-1] if regions else "my-town",
        interest_example=interests[0] if interests else "refugees",
        event_start=f"{event_day.isoformat()} 19:30",
        event_day=event_day.isoformat(),
        event_end="21:00",
        regions="\n#   " + listed(regions),
        interests="\n#   " + listed(interests),
        segments="\n#   " + listed(segments),
    )


def new_campaign(
    workspace: Path,
    slug: str,
    kind: str = "newsletter",
    shape: Shape | None = None,
    today: date | None = None,
) -> Path:
    """Write ``campaigns/<slug>/issue.yaml`` with a commented skeleton; never overwrites a file."""
    if not SLUG.match(slug):
        raise ContentError(
            [
                Problem(
                    f"not a valid campaign name: {slug!r}",
                    field="SLUG",
                    hint="use lower-case letters, digits and hyphens, e.g. 2025-12-kent-network",
                )
            ]
        )
    path = campaign_path(workspace, slug)
    if path.exists():
        raise ContentError(
            [
                Problem(
                    "the campaign already exists",
                    path=path,
                    field="SLUG",
                    hint="edit that file, or choose another name",
                )
            ]
        )
    text = scaffold(kind, slug, shape, today or date.today())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as f:  # "x": never overwrite, even in a race
        f.write(text)
    return path


# ---------------------------------------------------------------------------------------------
# Warnings


def _http_links(text: str) -> list[str]:
    return _HTTP_IN_TEXT.findall(text)


def content_warnings(loaded: LoadedIssue) -> list[Problem]:
    """Warnings that need only the file: events before the issue date, ``http://`` links."""
    issue = loaded.issue
    out: list[Problem] = []

    def http(value: str, where: str) -> None:
        for url in _http_links(value):
            out.append(
                loaded.problem(
                    f"insecure link {url}",
                    where,
                    hint="use https:// if the site supports it; some mail programs warn about http:// links",
                )
            )

    http(
        issue.intro if isinstance(issue, Newsletter) else issue.body,
        "intro" if isinstance(issue, Newsletter) else "body",
    )
    http(issue.sign_off, "sign_off")
    if isinstance(issue, Alert):
        http(issue.button.url, "button.url")
        return out

    def event(e: Event, where: str) -> None:
        if e.day < issue.date:
            out.append(
                loaded.problem(
                    f"the event is on {e.day:%Y-%m-%d}, before the issue's date {issue.date:%Y-%m-%d}",
                    f"{where}.start",
                    hint="it will be shown as past; check the date, or remove the event",
                )
            )
        if e.booking:
            http(e.booking.url, f"{where}.booking.url")
        http(e.contact, f"{where}.contact")

    for i, item in enumerate(issue.items):
        http(item.body, f"items[{i}].body")
        http(item.contact, f"items[{i}].contact")
        for j, link in enumerate(item.links):
            http(link.url, f"items[{i}].links[{j}].url")
        if item.image:
            http(item.image.src, f"items[{i}].image.src")
        for j, e in enumerate(item.events):
            event(e, f"items[{i}].events[{j}]")
    for j, e in enumerate(issue.calendar):
        event(e, f"calendar[{j}]")
    return out


def audience_warnings(session: Session, loaded: LoadedIssue, shape: Shape) -> list[Problem]:
    """Warnings that need the members: an item (or calendar entry, or an event targeted on its own)
    that no member of the issue's audience would see, and an audience with no members at all.

    A member sees an item when the item's regions are empty or contain the member's region or an
    ancestor of it, and the item's interests are empty or share one with the member's.
    """
    from sqlalchemy import exists, or_, select

    from mailer.audience.segments import compile_segment
    from mailer.models import Interest, Member, MemberInterest, Region

    issue = loaded.issue
    audience = compile_segment(issue.audience, shape)
    if session.scalar(select(exists().where(audience))) is not True:
        return [
            loaded.problem(
                f"no member is in the audience {issue.audience!r}",
                "audience",
                hint="check the audience, or import the members first (mailer lists import)",
            )
        ]
    if isinstance(issue, Alert):
        return []

    def anyone(regions: list[str], interests: list[str]) -> bool:
        conditions = [audience]
        if regions:
            below = select(Region.id).where(or_(*(Region.path.like(shape.path(r) + "%") for r in regions)))
            conditions.append(Member.region_id.in_(below))
        if interests:
            chosen = select(Interest.id).where(Interest.slug.in_(interests))
            conditions.append(
                exists().where(MemberInterest.member_id == Member.id, MemberInterest.interest_id.in_(chosen))
            )
        return session.scalar(select(exists().where(*conditions))) is True

    def targeting(regions: list[str], interests: list[str]) -> str:
        parts = [
            f"regions {', '.join(regions)}" if regions else "",
            f"interests {', '.join(interests)}" if interests else "",
        ]
        return " and ".join(p for p in parts if p)

    out: list[Problem] = []
    hint = "check its regions and interests; it may be fine if members are still to be imported"
    for i, item in enumerate(issue.items):
        if not anyone(item.regions, item.interests):
            out.append(
                loaded.problem(
                    f"no member in the audience would see item {item.id!r} "
                    f"({targeting(item.regions, item.interests)})",
                    f"items[{i}]",
                    hint=hint,
                )
            )
            continue
        for j, e in enumerate(item.events):
            if e.regions is None and e.interests is None:
                continue
            regions = item.regions if e.regions is None else e.regions
            interests = item.interests if e.interests is None else e.interests
            if not anyone(regions, interests):
                out.append(
                    loaded.problem(
                        f"no member in the audience would see this event ({targeting(regions, interests)})",
                        f"items[{i}].events[{j}]",
                        hint=hint,
                    )
                )
    for j, e in enumerate(issue.calendar):
        regions, interests = e.regions or [], e.interests or []
        if not anyone(regions, interests):
            out.append(
                loaded.problem(
                    "no member in the audience would see this calendar entry "
                    f"({targeting(regions, interests)})",
                    f"calendar[{j}]",
                    hint=hint,
                )
            )
    return out


@dataclass(frozen=True)
class CheckResult:
    """What ``mailer campaigns check`` found: errors (the issue cannot be sent), warnings, notes."""

    slug: str
    path: Path
    errors: list[Problem]
    warnings: list[Problem]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_campaign(workspace: Path, slug: str, shape: Shape | None, database: Database | None) -> CheckResult:
    """Check ``campaigns/<slug>/issue.yaml`` and report every problem instead of raising.

    With a database, the audience warnings run too (an item no member would see); without one a
    note says they did not. Raises ``UnknownName`` only if there is no such campaign.
    """
    path = campaign_path(workspace, slug)
    notes: list[str] = []
    try:
        loaded = load_campaign(workspace, slug, shape)
    except ContentError as exc:
        return CheckResult(slug, path, exc.problems, exc.warnings, notes)
    warnings = list(loaded.warnings)
    if database is None or shape is None:
        notes.append("the audience was not checked against the members: no database")
    else:
        with database.session() as session:
            warnings.extend(audience_warnings(session, loaded, shape))
    warnings.sort(key=lambda p: p.line or 0)
    return CheckResult(slug, path, [], warnings, notes)


__all__ = [
    "LONDON",
    "Alert",
    "Button",
    "CheckResult",
    "Event",
    "Image",
    "Issue",
    "IssueYAMLLoader",
    "Item",
    "Link",
    "LoadedIssue",
    "Newsletter",
    "When",
    "audience_warnings",
    "campaign_path",
    "campaign_slugs",
    "check_campaign",
    "content_warnings",
    "field_name",
    "load_campaign",
    "load_issue",
    "new_campaign",
    "scaffold",
]
