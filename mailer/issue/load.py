"""Loading an issue file: read the YAML, validate it as a whole, and say what is wrong and where.

``load_issue`` / ``load_campaign`` report every problem at once in one ``ContentError``, each with
its file, line and field (``items[3].events[0].end``), pydantic's errors turned into messages a
person can act on. The warnings the file alone can give (``mailer.issue.lint``: pasted markup,
``javascript:`` text, ``http://`` links, events before the issue date) come with the loaded issue,
or with the ``ContentError`` (its ``warnings``) when the file has errors: they run on whatever was
read. Those that need the members are in ``mailer.issue.check``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel, ValidationError

from mailer.errors import ContentError, Problem, UnknownName, suggest
from mailer.issue.lint import file_warnings
from mailer.issue.schema import SLUG, Alert, Digest, Event, Issue, Newsletter
from mailer.issue.yaml_loader import Lines, Loc, Position, field_name, read_yaml

if TYPE_CHECKING:
    from mailer.audience.shape import Shape

ISSUE_FILE = "issue.yaml"
TODO = "TODO"
MAX_BYTES = 2 * 1024 * 1024  # an issue file is text: a few kilobytes; images are files beside it

# ---------------------------------------------------------------------------------------------
# Turning pydantic's errors into problems a person can act on

_MISSING_HINTS = {
    "highlight": "write the item's line in the HIGHLIGHTS, or `highlight: false` for a report with none",
    "alt": "describe the image for people who cannot see it, e.g. alt: Cover of the guide",
    "kind": "kind: newsletter, kind: alert, or kind: digest",
}


_ALL_DAY = (
    "a date alone is an all-day event (start: 2025-12-01): drop all_day; give start a time "
    "(2025-12-01 19:30) for an event at a time"
)
_NOT_IN_AN_ALERT = (
    "an alert has one body and one button; use kind: newsletter for an issue with items and a calendar"
)
#: Fields an editor writes in the wrong kind of place, and what to do instead (by model, then name).
_MISPLACED_HINTS: dict[type[BaseModel], dict[str, str]] = {
    Event: {"all_day": _ALL_DAY, "allday": _ALL_DAY, "all-day": _ALL_DAY},
    Alert: {"items": _NOT_IN_AN_ALERT, "calendar": _NOT_IN_AN_ALERT, "intro": _NOT_IN_AN_ALERT},
    Newsletter: {
        "button": "a newsletter's calls to action are its items' links; use kind: alert for one body "
        "and one button",
        "body": "a newsletter's text is its intro and its items' bodies; use kind: alert for one body "
        "and one button",
    },
}


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model found at ``loc`` inside ``model`` (None when ``loc`` leads to no model)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        current = _find_model(info.annotation) if info else None
    return current


def _unknown_field(model: type[BaseModel], loc: Loc) -> tuple[str, str | None]:
    """The message and hint for a field the model at ``loc[:-1]`` does not have: what to do instead
    when it is a field of another kind of thing (``all_day`` on an event, ``items`` in an alert),
    else the field it was probably meant as."""
    name = str(loc[-1])
    found = _model_at(model, loc[:-1])
    if found is None:
        return f"unknown field {name!r}", None
    hint = _MISPLACED_HINTS.get(found, {}).get(name.lower())
    if hint is not None:
        where = {Event: "an event", Alert: "an alert", Newsletter: "a newsletter", Digest: "a digest"}[found]
        return f"{where} has no field {name!r}", hint
    return f"unknown field {name!r}", suggest(name, list(found.model_fields), "fields")


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found:
            return found
    return None


def _problem(err: Any, model: type[BaseModel], path: Path, lines: Lines) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    name = loc[-1] if loc else ""
    hint: str | None = ctx.get("hint")
    if kind == "missing":
        message = "missing highlight" if name == "highlight" else f"{name} is required"
        hint = _MISSING_HINTS.get(str(name))
    elif kind == "extra_forbidden":
        message, hint = _unknown_field(model, loc)
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
    on_value = kind not in ("missing", "extra_forbidden")
    line, column = _located(lines, loc, on_value=on_value)
    return Problem(message, path=path, line=line, column=column, field=field_name(loc) or None, hint=hint)


def _located(lines: Lines, loc: Loc, *, on_value: bool = True) -> tuple[int | None, int | None]:
    """The line and column of ``loc`` (of the nearest enclosing field when it is not in the file):
    its value's column when ``on_value`` and the value starts on the key's line, else its key's."""
    at: Position | None = lines.get(loc)
    probe = loc
    while at is None and probe:
        probe = probe[:-1]
        at = lines.get(probe)
    if at is None:
        return None, None
    if on_value and probe == loc and at.value_line == at.line:
        return at.line, at.value_column
    return at.line, at.column


def _todo_problems(data: Any, loc: Loc, path: Path, lines: Lines) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(_todo_problems(value, (*loc, str(key)), path, lines))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.extend(_todo_problems(value, (*loc, i), path, lines))
    elif isinstance(data, str) and TODO in data:
        line, column = _located(lines, loc)
        out.append(
            Problem(
                "still to fill in (it says TODO)",
                path=path,
                line=line,
                column=column,
                field=field_name(loc),
                hint="replace the TODO text, or delete the field or item if you do not need it",
            )
        )
    return out


def _no_highlight_in_1_1(i: int, word: str, path: Path, lines: Lines) -> Problem:
    """``highlight: no``: a report in YAML 1.1, the highlight "no" in YAML 1.2 (docs/issue-files.md,
    "One YAML engine")."""
    line, column = _located(lines, ("items", i, "highlight"))
    return Problem(
        f"highlight: {word} is the text {word!r} in YAML 1.2 (YAML 1.1 read it as false)",
        path=path,
        line=line,
        column=column,
        field=f"items[{i}].highlight",
        hint=f'write highlight: false for a report with no line in the highlights, or "{word}" in quotes '
        "if that is the highlight",
    )


def _raw_problems(data: dict[str, Any], path: Path, lines: Lines, booleans_in_1_1: set[Loc]) -> list[Problem]:
    """Checks across items, made on the file's data so that they run even when an item is invalid."""
    out: list[Problem] = []
    items = data.get("items")
    if not isinstance(items, list):
        return out
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if ("items", i, "highlight") in booleans_in_1_1:
            out.append(_no_highlight_in_1_1(i, str(item.get("highlight")), path, lines))
        if "highlight" in item and item["highlight"] is None:
            line, column = _located(lines, ("items", i, "highlight"), on_value=False)
            out.append(
                Problem(
                    "missing highlight",
                    path=path,
                    line=line,
                    column=column,
                    field=f"items[{i}].highlight",
                    hint=_MISSING_HINTS["highlight"],
                )
            )
        ident = item.get("id")
        if not isinstance(ident, str):
            continue
        if ident in first:
            j = first[ident]
            line, column = _located(lines, ("items", i, "id"))
            other = lines.get(("items", j, "id"))
            out.append(
                Problem(
                    f"duplicate item id {ident!r} "
                    f"(items[{j}] at line {other.line if other else '?'} has it too)",
                    path=path,
                    line=line,
                    column=column,
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
    issue: Issue
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
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ContentError(
                [
                    Problem(
                        f"the issue file is {_megabytes(size)}; an issue file is at most "
                        f"{_megabytes(MAX_BYTES)}",
                        path=path,
                        hint="put images and documents beside it as files and link to them, "
                        "or split it into several issues",
                    )
                ]
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError(
            [Problem("no such issue file", path=path, hint="create one with `mailer campaigns new SLUG`")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError([Problem(f"cannot read the issue file: {exc}", path=path)]) from None

    booleans_in_1_1: set[Loc] = set()
    data, lines = read_yaml(text, path, problems, booleans_in_1_1=booleans_in_1_1)
    if problems and data is None:
        raise ContentError(problems, summary=_summary(path, len(problems)))
    if not isinstance(data, dict):
        problems.append(
            Problem(
                "an issue file is a set of fields (kind:, title:, …), not a single value",
                path=path,
                line=1,
                column=1,
                hint="run `mailer campaigns new` for a skeleton",
            )
        )
        raise ContentError(problems)

    def warnings_of_what_was_read(errors: list[Problem]) -> list[Problem]:
        """The file's warnings, except at a field that has an error (the error says it already)."""
        wrong = {p.field for p in errors}
        found = file_warnings(data, path, lambda loc: _line_number(lines, loc))
        return [w for w in found if w.field not in wrong]

    kind = data.get("kind")
    model: type[Newsletter] | type[Alert] | type[Digest]
    if kind == "alert":
        model = Alert
    elif kind == "digest":
        model = Digest
    elif kind == "newsletter":
        model = Newsletter
    else:
        line, column = _located(lines, ("kind",), on_value="kind" in data)
        problems.append(
            Problem(
                f"unknown kind {kind!r}" if "kind" in data else "kind is required",
                path=path,
                line=line or 1,
                column=column or 1,
                field="kind",
                hint=_MISSING_HINTS["kind"],
            )
        )
        raise ContentError(
            problems + warnings_of_what_was_read(problems), summary=_summary(path, len(problems))
        )

    problems.extend(_raw_problems(data, path, lines, booleans_in_1_1))
    problems.extend(_todo_problems(data, (), path, lines))
    issue: Issue | None = None
    try:
        issue = model.model_validate(data, context={"shape": shape, "folder": path.parent})
    except ValidationError as exc:
        problems.extend(_problem(err, model, path, lines) for err in exc.errors())

    # One problem per field: a TODO and a type error at the same place say the same thing twice.
    unique: dict[tuple[str | None, str], Problem] = {}
    for p in problems:
        unique.setdefault((p.field, p.message), p)
    problems = sorted(unique.values(), key=lambda p: (p.line or 0, p.field or ""))
    warnings = warnings_of_what_was_read(problems)
    if problems or issue is None:
        raise ContentError(problems + warnings, summary=_summary(path, len(problems)))

    return LoadedIssue(
        slug=path.parent.name,
        path=path,
        issue=issue,
        warnings=warnings,
        lines={field_name(loc): at.line for loc, at in lines.items() if loc},
    )


def _line_number(lines: Lines, loc: Loc) -> int | None:
    """The line of ``loc`` in the file, or of the nearest enclosing field."""
    at = lines.get(loc)
    while at is None and loc:
        loc = loc[:-1]
        at = lines.get(loc)
    return at[0] if at else None


def _megabytes(size: int) -> str:
    mb = size / (1024 * 1024)
    return f"{mb:.0f} MB" if mb >= 10 or mb == int(mb) else f"{mb:.1f} MB"


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
# Warnings the file alone can give (mailer.issue.lint; those that need the members: mailer.issue.check)


def content_warnings(loaded: LoadedIssue) -> list[Problem]:
    """The file's warnings for a loaded issue (``mailer.issue.lint.file_warnings`` on its values):
    pasted markup, ``javascript:`` text, ``http://`` links, events before the issue date."""
    return file_warnings(loaded.issue.model_dump(), loaded.path, lambda loc: loaded.line(field_name(loc)))


__all__ = [
    "ISSUE_FILE",
    "LoadedIssue",
    "campaign_path",
    "campaign_slugs",
    "content_warnings",
    "load_campaign",
    "load_issue",
]
