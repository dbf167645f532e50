"""The desk's edits of an issue file: ``campaigns/<slug>/issue.yaml`` stays the single source of truth.

Every change is made on the file's own YAML with a round-trip library (ruamel.yaml), so the
editor's comments, the order of fields and the quoting of values untouched by the change stay as
they were. Each write:

- is refused with ``StaleIssue`` when the file on disk is no longer the version the change was
  made against (``expected_version``: the SHA-256 of the file's bytes as it was opened), so an
  edit made on disk meanwhile is never overwritten;
- is read and written by the one YAML engine of issue files (``mailer.issue.yaml_loader``, YAML
  1.2; docs/issue-files.md, "One YAML engine"), so what the desk writes is read back by the rules
  ``campaigns check`` reads it with; the parts the change names (``strict``) must be valid
  (``mailer.issue.load``); the rest of the file may still have problems an editor is working on:
  they come back with the result, as ``campaigns check`` gives them;
- is atomic: a temporary file beside it, then a rename; desk writes of one workspace are
  serialised by a lock file (``campaigns/.desk-lock``).

Changes are made by ``mailer.issue.rewrite``: a comment stays with the field or item it stands
above (or beside), whatever is inserted, removed or moved around it; an emptied list is written
``[]`` on its key's line.

New values are written in a style the issue loader reads back unchanged: text of several lines as
a literal block (``|``), a single line plain when that is safe and in double quotes otherwise
(``yes``, ``21:00``, ``a: b``, ``# not a comment``), lists of names in flow style (``[kent]``).

``record_edit`` and ``last_editor`` keep the issue's editors (``IssueEdit``): the newest row names
the last editor, who may not approve the issue.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString
from sqlalchemy import select

from mailer.errors import ContentError, InvalidInput, MailerError, Problem, UnknownName
from mailer.issue.load import MAX_BYTES, LoadedIssue, campaign_path, load_issue
from mailer.issue.rewrite import Change, rewrite
from mailer.issue.scaffold import scaffold
from mailer.issue.schema import SLUG
from mailer.issue.yaml_loader import plain, read_yaml, reads_as_text
from mailer.models import IssueEdit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mailer.audience.networks import Network
    from mailer.audience.shape import Shape
    from mailer.settings import Settings

LOCK_FILE = ".desk-lock"
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9 ,.'’()/&+-]*")
_PLAIN_IN_LIST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class StaleIssue(MailerError):
    """The issue file changed on disk since it was opened: nothing was written."""

    exit_code = 2


# ---------------------------------------------------------------------------------------------
# Reading


def version_of(data: bytes | str) -> str:
    """The version of an issue file: the SHA-256 of its bytes (UTF-8), in hex."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def issue_path(workspace: Path, slug: str) -> Path:
    """``campaigns/<slug>/issue.yaml``; UnknownName for a slug that is not one (``../x``)."""
    if not isinstance(slug, str) or not SLUG.match(slug) or len(slug) > 200:
        raise UnknownName(
            f"not a campaign name: {slug[:80]!r}",
            field="slug",
            hint="lower-case letters, digits and hyphens, e.g. 2025-12-central-england",
        )
    return campaign_path(workspace, slug)


def _read_bytes(path: Path, slug: str) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UnknownName(f"no campaign {slug!r}", field="slug", hint="start one on the desk") from None
    if size > MAX_BYTES:
        raise ContentError([Problem("the issue file is too large to edit on the desk", path=path)])
    return path.read_bytes()


@dataclass(frozen=True)
class IssueFile:
    """An issue file as opened: its text and version (SHA-256 of its bytes)."""

    slug: str
    path: Path
    text: str
    version: str

    @classmethod
    def open(cls, workspace: Path, slug: str) -> IssueFile:
        """Read ``campaigns/<slug>/issue.yaml``; UnknownName if there is no such campaign."""
        path = issue_path(workspace, slug)
        raw = _read_bytes(path, slug)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ContentError([Problem("the issue file is not UTF-8 text", path=path)]) from None
        return cls(slug, path, text, version_of(raw))

    def data(self) -> dict[str, Any]:
        """The file's fields as the issue loader reads them (ContentError if it cannot be read, or
        is not a set of fields)."""
        problems: list[Problem] = []
        data, _ = read_yaml(self.text, self.path, problems)
        errors = [p for p in problems if p.severity == "error"]
        if errors or not isinstance(data, dict):
            raise ContentError(
                errors or [Problem("an issue file is a set of fields", path=self.path, line=1)],
                summary=f"{self.path}: fix the file before editing it on the desk",
            )
        return data


# ---------------------------------------------------------------------------------------------
# Values in a style the issue loader reads back unchanged


def _text(value: str, *, in_list: bool = False) -> Any:
    if "\n" in value.rstrip("\n"):
        lines = value.split("\n")
        printable = all(line.isprintable() for line in lines)
        if printable and not value.startswith((" ", "\n")) and not any(line.endswith(" ") for line in lines):
            return LiteralScalarString(value)
        return DoubleQuotedScalarString(value)
    plain = _PLAIN_IN_LIST if in_list else _PLAIN
    if plain.fullmatch(value) and not value.endswith(" ") and reads_as_text(value):
        return value
    return DoubleQuotedScalarString(value)


def to_yaml(value: Any, *, flow: bool = False) -> Any:
    """``value`` (text, numbers, booleans, lists and dicts of them) as round-trip YAML values:
    see the module's notes. A list of names (text without spaces) is written in flow style
    (``[birmingham, derby]``); None values in a dict are left out."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, date):
        return DoubleQuotedScalarString(value.isoformat())
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        out = CommentedMap()
        for key, item in value.items():
            if item is not None:
                out[str(key)] = to_yaml(item)
        return out
    if isinstance(value, list | tuple):
        seq = CommentedSeq(_text(v, in_list=True) if isinstance(v, str) else to_yaml(v) for v in value)
        if flow or all(isinstance(v, str) and v and " " not in v and "\n" not in v for v in value):
            seq.fa.set_flow_style()
        return seq
    raise TypeError(f"cannot write {type(value).__name__} to an issue file")


def put(mapping: MutableMapping[str, Any], key: str, value: Any, *, after: str | None = None) -> None:
    """Set ``mapping[key]`` to ``value`` (made with ``to_yaml``); a new key goes after ``after``
    when the mapping keeps an order (round-trip YAML), else at the end."""
    if key not in mapping and after is not None and isinstance(mapping, CommentedMap) and after in mapping:
        mapping.insert(list(mapping).index(after) + 1, key, value)
    else:
        mapping[key] = value


def drop(mapping: MutableMapping[str, Any], key: str) -> None:
    """Delete ``key`` from ``mapping`` with the comments on it (above it and beside it); the comment
    lines below its value belong to the next key (``anchor_comments``) and stay."""
    if key not in mapping:
        return
    if isinstance(mapping, CommentedMap):
        mapping.ca.items.pop(key, None)
    del mapping[key]


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class Saved:
    """A written issue file: its new version and text, and what ``campaigns check`` would say of
    the file alone (errors and warnings, located in the new text; empty when it is valid)."""

    slug: str
    path: Path
    version: str
    text: str
    problems: tuple[Problem, ...] = ()

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


@contextlib.contextmanager
def _locked(workspace: Path) -> Iterator[None]:
    folder = workspace / "campaigns"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _shape_of(workspace: Path, shape: Shape | None) -> Shape | None:
    if shape is not None:
        return shape
    lists = workspace / "lists"
    if not lists.is_dir():
        return None
    from mailer.audience.shape import load_shape

    return load_shape(lists)


def _check_text(path: Path, text: str, shape: Shape | None) -> tuple[Path, list[Problem]]:
    """Write ``text`` to a temporary file beside ``path`` and load it: the temporary path and the
    problems (errors and warnings), located in ``text`` and named after ``path``."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".issue.yaml.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            loaded = load_issue(temp, shape)
            found = list(loaded.warnings)
        except ContentError as exc:
            found = [*exc.problems, *exc.warnings]
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp, [replace(p, path=path) for p in found]


def _refuse_if_stale(path: Path, slug: str, expected_version: str | None) -> bytes:
    raw = _read_bytes(path, slug)
    if expected_version is not None and version_of(raw) != expected_version:
        raise StaleIssue(
            "the issue file was changed since you opened it (on disk, or by someone else on the desk), "
            "so your changes were not saved",
            path=path,
            field="version",
            hint="open the issue again to see the changes, then make yours again",
        )
    return raw


def _strict_errors(problems: list[Problem], strict: Sequence[str]) -> list[Problem]:
    def within(field: str | None) -> bool:
        return field is not None and any(field == s or field.startswith((s + ".", s + "[")) for s in strict)

    return [p for p in problems if p.severity == "error" and within(p.field)]


def edit(
    workspace: Path,
    slug: str,
    change: Change,
    *,
    expected_version: str | None,
    shape: Shape | None = None,
    strict: Sequence[str] = (),
) -> Saved:
    """Apply ``change`` to ``campaigns/<slug>/issue.yaml`` and write it (see the module's notes).

    ``expected_version`` None writes over whatever is there now (a change that names its place, like
    adding an item). ``strict``: field paths (``items[3]``, ``calendar[0]``) whose errors refuse the
    write with ContentError. StaleIssue when the file changed; ContentError when the file cannot be
    read as YAML or is not a set of fields (fix it by hand first).
    """
    path = issue_path(workspace, slug)
    shape = _shape_of(workspace, shape)
    with _locked(workspace):
        raw = _refuse_if_stale(path, slug, expected_version)
        text = raw.decode("utf-8", errors="replace")
        IssueFile(slug, path, text, version_of(raw)).data()  # readable, a set of fields: else located errors
        new_text = rewrite(text, change, path=path)
        temp, found = _check_text(path, new_text, shape)
        try:
            refused = _strict_errors(found, strict)
            if refused:
                raise ContentError(refused, summary=f"{path}: not saved")
            with contextlib.suppress(OSError):
                os.chmod(temp, path.stat().st_mode & 0o777)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    return Saved(slug, path, version_of(new_text), new_text, tuple(found))


# ---------------------------------------------------------------------------------------------
# A new issue, items and events


def _network(
    workspace: Path, network: Network | str, shape: Shape | None, settings: Settings | None
) -> Network:
    from mailer.audience.networks import Network, default_network, named
    from mailer.settings import load

    if isinstance(network, Network):
        return network
    settings = settings or load(workspace)
    return named(shape, settings, network) if shape is not None else default_network(settings)


def new_issue(
    workspace: Path,
    network: Network | str,
    slug: str,
    title: str,
    date: date,
    *,
    shape: Shape | None = None,
    settings: Settings | None = None,
) -> Path:
    """Start ``campaigns/<slug>/issue.yaml`` for ``network`` (a ``Network`` or its slug) from the
    packaged newsletter skeleton (``mailer campaigns new``), its comments kept: the title (and
    subject) given, the network, an audience of the network's regions, ``date``, the network's
    sign-off, and no items or calendar entries yet, so the file is valid from the start. Never
    overwrites: ContentError if the campaign exists or the result would not be valid."""
    path = issue_path(workspace, slug)
    shape = _shape_of(workspace, shape)
    who = _network(workspace, network, shape, settings)
    title = " ".join(title.split())
    source = scaffold("newsletter", slug, shape, date).replace(
        "# A newsletter issue. Fill in every TODO, then run:",
        f"# A newsletter issue of the {who.name}, started on the desk. When it is written, run:",
    )

    def start(doc: MutableMapping[str, Any]) -> None:
        doc["title"] = to_yaml(title)
        doc["subject"] = to_yaml(title)
        drop(doc, "preheader")
        if shape is not None and shape.networks:
            put(doc, "network", to_yaml(who.slug), after="kind")
        doc["audience"] = to_yaml(" or ".join(f"region:{r}" for r in who.regions) or "all")
        doc["intro"] = to_yaml("")
        doc["items"] = CommentedSeq()
        doc["calendar"] = CommentedSeq()
        sign_off = who.sign_off.strip()
        if sign_off:
            doc["sign_off"] = LiteralScalarString(sign_off + "\n")
        else:
            drop(doc, "sign_off")

    text = rewrite(source, start)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(workspace):
        if path.exists():
            problem = Problem(
                "the campaign already exists", path=path, field="slug", hint="choose another name"
            )
            raise ContentError([problem])
        temp, found = _check_text(path, text, shape)
        try:
            errors = [p for p in found if p.severity == "error"]
            if errors:
                raise ContentError(errors, summary=f"{path}: not started")
            os.link(temp, path)  # never overwrites, even in a race
        finally:
            temp.unlink(missing_ok=True)
    return path


def _items(data: MutableMapping[str, Any]) -> list[Any]:
    items = data.get("items")
    if items is None:
        data["items"] = CommentedSeq() if isinstance(data, CommentedMap) else []
        items = data["items"]
    if not isinstance(items, list):
        raise ContentError([Problem("items is not a list", field="items")])
    return items


def _item_ids(data: MutableMapping[str, Any]) -> list[str]:
    return [str(i.get("id")) for i in _items(data) if isinstance(i, dict)]


def add_item(
    workspace: Path,
    slug: str,
    item: dict[str, Any],
    *,
    expected_version: str | None,
    position: int | None = None,
    shape: Shape | None = None,
) -> str:
    """Add ``item`` (an item's fields: ``id``, ``title``, ``highlight``, ``body``, ``events``, …)
    to the issue's items, at ``position`` (default: the end). The new item must be valid
    (ContentError naming its fields otherwise, nothing written); its id must be new. Returns the
    file's new version."""
    new = to_yaml(item)
    strict: list[str] = []

    def change(data: MutableMapping[str, Any]) -> None:
        ident = item.get("id")
        if ident is not None and str(ident) in _item_ids(data):
            raise InvalidInput(
                [Problem(f"the issue has an item {ident!r} already", field="id", hint="give it another id")]
            )
        items = _items(data)
        index = len(items) if position is None else max(0, min(position, len(items)))
        items.insert(index, copy.deepcopy(new))
        strict[:] = [f"items[{index}]"]

    saved = edit(workspace, slug, change, expected_version=expected_version, shape=shape, strict=strict)
    return saved.version


def add_event(
    workspace: Path,
    slug: str,
    event: dict[str, Any],
    *,
    to_item: str | None,
    expected_version: str | None,
    shape: Shape | None = None,
) -> str:
    """Add ``event`` (``title``, ``start``, ``end``, ``location``, ``online``, ``booking``,
    ``contact``, ``regions``, ``interests``) to the events of the item with id ``to_item``, or to
    the calendar when None. The event must be valid (ContentError naming its fields otherwise,
    nothing written). Returns the file's new version."""
    new = to_yaml(event)
    strict: list[str] = []

    def change(doc: MutableMapping[str, Any]) -> None:
        if to_item is None:
            holder: MutableMapping[str, Any] = doc
            key, where = "calendar", "calendar"
        else:
            items = _items(doc)
            ids = _item_ids(doc)
            if to_item not in ids:
                raise UnknownName(
                    f"the issue has no item {to_item!r}", field="item", hint="choose one of its items"
                )
            holder = items[ids.index(to_item)]
            key, where = "events", f"items[{ids.index(to_item)}].events"
        if not isinstance(holder.get(key), list):
            put(holder, key, CommentedSeq() if isinstance(holder, CommentedMap) else [])
        holder[key].append(copy.deepcopy(new))
        strict[:] = [f"{where}[{len(holder[key]) - 1}]"]

    return edit(
        workspace, slug, change, expected_version=expected_version, shape=shape, strict=strict
    ).version


# ---------------------------------------------------------------------------------------------
# Who edited it


def record_edit(
    session: Session, slug: str, user_id: int | None, version: str, *, now: datetime | None = None
) -> None:
    """Record that ``user_id`` saved the issue ``slug`` at ``version`` (the newest row names its
    last editor)."""
    session.add(
        IssueEdit(slug=slug, user_id=user_id, content_hash=version, created_at=now or datetime.now(UTC))
    )
    session.flush()


def last_editor(session: Session, slug: str) -> int | None:
    """The user id of whoever saved the issue last on the desk; None if nobody has."""
    return session.scalar(
        select(IssueEdit.user_id)
        .where(IssueEdit.slug == slug)
        .order_by(IssueEdit.created_at.desc(), IssueEdit.id.desc())
        .limit(1)
    )


__all__ = [
    "Change",
    "IssueFile",
    "Saved",
    "StaleIssue",
    "add_event",
    "add_item",
    "drop",
    "edit",
    "issue_path",
    "last_editor",
    "new_issue",
    "plain",
    "put",
    "record_edit",
    "to_yaml",
    "version_of",
]


def draft(workspace: Path, slug: str, change: Change, *, shape: Shape | None = None) -> LoadedIssue:
    """The issue as ``change`` would make it, loaded but not written (the desk's live preview):
    the changed text is loaded from a temporary file beside the issue (so its images are found)
    and the file removed. ContentError when the changed issue cannot be loaded."""
    path = issue_path(workspace, slug)
    shape = _shape_of(workspace, shape)
    text = _read_bytes(path, slug).decode("utf-8", errors="replace")
    IssueFile(slug, path, text, version_of(text)).data()
    new_text = rewrite(text, change, path=path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".draft.", suffix=".yaml")
    temp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(new_text)
        loaded = load_issue(temp, shape)
        return replace(loaded, path=path, slug=slug)
    finally:
        temp.unlink(missing_ok=True)
