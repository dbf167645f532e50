"""Issue files' YAML: one engine, ruamel.yaml, one version, YAML 1.2 (docs/issue-files.md, "One YAML
engine").

``issue_yaml`` is the configured reader and writer: the issue loader reads files with it and the
desk rewrites them with it (``mailer.issue.rewrite``), comments kept, so what the desk writes is
read back by the same rules. Files are read with its plain-data constructor and rewritten with its
round-trip one; scanner, parser, composer, resolver and limits are shared. Its rules: YAML 1.2
whatever a ``%YAML`` line says (``read_yaml`` refuses any other version),
dates and times stay text for the model to parse (``2025-11-18``, ``21:00``), and only the tags of
plain data (``!!str``, ``!!int``, …) are allowed.

``read_yaml`` gives the document as plain dicts, lists and scalars, and where each field is
(``("items", 3, "end")`` → line and column of its key, and of its value); it reports keys given
twice, and refuses, each with its own message, line and column: values nested more than
``MAX_DEPTH`` levels deep, more than ``MAX_NODES`` values, YAML aliases that refer to themselves or
expand past ``MAX_NODES``, and tags other than plain data's. ``field_name`` writes a location the
way messages show it (``items[3].end``). The size of the file itself is limited by ``load_issue``
(``MAX_BYTES``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.util import load_yaml_guess_indent

from mailer.errors import Problem
from mailer.issue.memo import Memo, plain_copy

MAX_DEPTH = 50  # levels of nesting; an issue needs about 6 (items[3].events[0].booking.url)
MAX_NODES = 100_000  # values in an issue file, aliases expanded
VERSION = (1, 2)

_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge"))
_NOT_RESOLVED = frozenset({_CORE + "timestamp", _CORE + "value", _CORE + "yaml"})
_DIRECTIVE = re.compile(r"%YAML[ \t]+(\S*)")

Loc = tuple[str | int, ...]
BOOLEANS_1_1 = frozenset(
    f(word) for word in ("y", "yes", "n", "no", "on", "off") for f in (str.lower, str.upper, str.capitalize)
)
"""Plain values YAML 1.1 read as true or false, and YAML 1.2 reads as text."""


class Position(NamedTuple):
    """Where a field is, 1-based: its key's line and column (a list item's: where it starts, after
    its dash), and its value's."""

    line: int
    column: int
    value_line: int
    value_column: int


Lines = dict[Loc, Position]
"""Where each field is: its location → ``Position``."""


class _Refused(YAMLError):
    """A file refused as a whole: ``args`` are the message, the hint, and the node or mark where."""

    def __init__(self, message: str, hint: str, mark: Any) -> None:
        super().__init__(message, hint, mark)
        self.message, self.hint, self.mark = message, hint, mark


_ALIAS_HINT = "write the value out instead of using an alias"
_SPLIT_HINT = "split it into several issues"


class _Resolver(VersionedResolver):
    """YAML 1.2's implicit types, whatever the file's ``%YAML`` line says, less timestamps: dates and
    times are text, parsed by the model."""

    @property
    def processing_version(self) -> Any:
        return VERSION

    def add_version_implicit_resolver(self, version: Any, tag: Any, regexp: Any, first: Any) -> None:
        if tag not in _NOT_RESOLVED:
            super().add_version_implicit_resolver(version, tag, regexp, first)


class _Composer(Composer):
    """Stops at ``MAX_DEPTH`` levels of nesting (the composer recurses once per level) and at
    ``MAX_NODES`` values, before they are built."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    f"values nested more than {MAX_DEPTH} levels deep",
                    "an issue nests a few levels: items, then an item's events; check the indentation "
                    "and the brackets",
                    self.parser.peek_event().start_mark,
                )
            self._nodes += 1
            if self._nodes > MAX_NODES:
                raise _Refused(
                    f"the file holds more than {MAX_NODES:,} values; an issue needs far fewer",
                    _SPLIT_HINT,
                    self.parser.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _key_name(key: Node) -> str:
    return str(key.value) if isinstance(key, ScalarNode) else "?"


def _shown(tag: str | None) -> str:
    tag = tag or ""
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


class _Walk:
    """Where every field is, keys given twice, and the refusals that need the whole tree (aliases
    expanded, tags): one iterative pass over the composed nodes, before anything is built."""

    def __init__(self) -> None:
        self.lines: Lines = {}
        self.twice: list[tuple[Loc, Position, int]] = []  # location, where, line of the first
        self.booleans_in_1_1: set[Loc] = set()  # plain yes, no, on, off, y, n: text in YAML 1.2

    def run(self, root: Node) -> None:
        distinct: set[int] = set()
        visits = 0
        stack: list[tuple[Node, Loc, frozenset[int]]] = [(root, (), frozenset())]
        while stack:
            node, loc, ancestors = stack.pop()
            if id(node) in ancestors:
                raise _Refused(
                    "a YAML alias (*name) refers to itself (to the value that holds it)", _ALIAS_HINT, node
                )
            visits += 1
            distinct.add(id(node))
            if visits > MAX_NODES:
                if len(distinct) > MAX_NODES:
                    raise _Refused(
                        f"the file holds more than {MAX_NODES:,} values; an issue needs far fewer",
                        _SPLIT_HINT,
                        node,
                    )
                raise _Refused(
                    f"YAML aliases (*name) expand to more than {MAX_NODES:,} values", _ALIAS_HINT, node
                )
            if len(ancestors) >= MAX_DEPTH:
                raise _Refused(
                    f"YAML aliases (*name) nest values more than {MAX_DEPTH} levels deep", _ALIAS_HINT, node
                )
            if node.tag not in _ALLOWED_TAGS:
                raise _Refused(
                    f"not valid YAML for an issue file: the tag {_shown(node.tag)} is not allowed",
                    "remove the tag: an issue file holds text, numbers, true or false, lists and fields",
                    node,
                )
            mark = node.start_mark
            if isinstance(node, ScalarNode) and node.style is None and node.value in BOOLEANS_1_1:
                self.booleans_in_1_1.add(loc)
            self.lines.setdefault(
                loc, Position(mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 1)
            )
            ancestors = ancestors | {id(node)}
            stack.extend(reversed(self._children(node, loc, ancestors)))

    def _children(
        self, node: Node, loc: Loc, ancestors: frozenset[int]
    ) -> list[tuple[Node, Loc, frozenset[int]]]:
        if isinstance(node, SequenceNode):
            return [(child, (*loc, i), ancestors) for i, child in enumerate(node.value)]
        if not isinstance(node, MappingNode):
            return []
        children: list[tuple[Node, Loc, frozenset[int]]] = []
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = _key_name(key)
            at = Position(
                key.start_mark.line + 1,
                key.start_mark.column + 1,
                value.start_mark.line + 1,
                value.start_mark.column + 1,
            )
            if name in seen:
                self.twice.append(((*loc, name), at, seen[name]))
            seen.setdefault(name, at.line)
            self.lines.setdefault((*loc, name), at)
            children.append((value, (*loc, name), ancestors))
        return children


class _Walked:
    """Builds the document after a ``_Walk`` of the whole tree (kept as ``walk``)."""

    walk: _Walk | None = None

    def construct_document(self, node: Any) -> Any:
        walk = _Walk()
        walk.run(node)
        self.walk = walk
        return super().construct_document(node)  # type: ignore[misc]


class _RoundTripConstructor(_Walked, RoundTripConstructor):
    """Comments, key order and quotes kept: for rewriting a file."""


class _SafeConstructor(_Walked, SafeConstructor):
    """Plain data: for reading a file (the scanner skips comments, twice as fast)."""


class _TextOnly:
    """Stands in for the YAML engine that ``load_yaml_guess_indent`` loads the text with after
    guessing from its lines: the file is loaded once, by the caller."""

    def load(self, text: str) -> None:
        return None


def _guess_indent(text: str) -> tuple[int | None, int | None]:
    """How the file indents a block list: the dash's column and the item's, after its key's."""
    try:
        _, sequence, offset = load_yaml_guess_indent(text, yaml=_TextOnly())
    except IndexError:  # a line of dashes the guess does not expect: the skeleton's indent
        return None, None
    return sequence, offset


def issue_yaml(text: str | None = None, *, round_trip: bool = True) -> YAML:
    """The YAML engine of issue files (see the module's notes). ``round_trip`` (the desk's): comments,
    key order and quotes are kept, and with ``text`` it writes lists indented as ``text`` does (else
    as the skeleton: ``  - id: …``), lines never wrapped; else (``read_yaml``'s) the same rules give
    plain data, without the cost of keeping comments. Not shared between threads: one per use."""
    y = YAML(typ="rt" if round_trip else "safe", pure=True)
    y.Resolver = _Resolver
    y.Composer = _Composer
    y.Constructor = _RoundTripConstructor if round_trip else _SafeConstructor
    y.allow_duplicate_keys = True  # reported by read_yaml, with both lines
    y.preserve_quotes = True
    y.width = 4096
    sequence, offset = _guess_indent(text) if text is not None else (None, None)
    if offset is None:  # no list written in block style yet: the skeleton's ("  - id: …")
        sequence, offset = 4, 2
    y.indent(mapping=2, sequence=sequence or 4, offset=offset)
    return y


_RESOLVER = _Resolver()


def reads_as_text(value: str) -> bool:
    """Whether ``value`` written plain (unquoted) is read back as that text, not a number, a
    boolean or null."""
    return bool(_RESOLVER.resolve(ScalarNode, value, (True, False)) == _CORE + "str")


def field_name(loc: Loc) -> str:
    """``("items", 3, "events", 0, "end")`` → ``items[3].events[0].end``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def plain(value: Any) -> Any:
    """Round-trip YAML values as plain dicts, lists, text and numbers (merge keys expanded)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, TaggedScalar):
        return str(value.value)
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def _where(mark: Any) -> tuple[int | None, int | None]:
    mark = getattr(mark, "start_mark", mark)
    if mark is None:
        return None, None
    return mark.line + 1, mark.column + 1


def _directive(text: str) -> tuple[int, str] | None:
    """The line and version of a ``%YAML`` line (before the document) naming a version but 1.2."""
    for number, line in enumerate(text.splitlines(), 1):
        found = _DIRECTIVE.match(line)
        if found is not None and found.group(1) != "1.2":
            return number, found.group(1)
        if line.strip() and not line.startswith(("#", "%")):
            return None
    return None


def _version_problem(text: str, path: Path) -> Problem | None:
    found = _directive(text)
    if found is None:
        return None
    return Problem(
        f"not valid YAML for an issue file: it says %YAML {found[1]}; issue files are YAML 1.2",
        path=path,
        line=found[0],
        column=1,
        hint="delete the %YAML line; in YAML 1.2 yes, no, on and off are text: write true or false",
    )


def read_yaml(
    text: str, path: Path, problems: list[Problem], *, booleans_in_1_1: set[Loc] | None = None
) -> tuple[Any, Lines]:
    """The document of ``text`` as plain data and where each of its fields is; the problems found go
    to ``problems``, and the locations of plain values YAML 1.1 read as true or false (``yes``,
    ``off``: ``BOOLEANS_1_1``) to ``booleans_in_1_1``.

    The data is None when the file is empty or not YAML (the reason is in ``problems``); keys given
    twice are reported but the data is still returned (the first value is kept). A text read before
    by this process is not parsed again (``READS``, by text and path); the data is the caller's own
    copy."""

    def parse() -> tuple[Any, Lines, tuple[Problem, ...], frozenset[Loc]]:
        found: list[Problem] = []
        booleans: set[Loc] = set()
        data, lines = _read_yaml(text, path, found, booleans)
        return data, lines, tuple(found), frozenset(booleans)

    data, lines, found, booleans = READS.get((text, str(path)), parse)
    problems.extend(found)
    if booleans_in_1_1 is not None:
        booleans_in_1_1.update(booleans)
    return plain_copy(data), dict(lines)


READS: Memo[tuple[Any, Lines, tuple[Problem, ...], frozenset[Loc]]] = Memo()
"""The issue texts this process has read (``read_yaml``), by text and path."""


def _read_yaml(
    text: str, path: Path, problems: list[Problem], booleans_in_1_1: set[Loc]
) -> tuple[Any, Lines]:
    version = _version_problem(text, path)
    if version is not None:
        problems.append(version)
        return None, {}
    y = issue_yaml(round_trip=False)
    try:
        doc = y.load(text)
    except _Refused as exc:
        line, column = _where(exc.mark)
        problems.append(Problem(exc.message, path=path, line=line, column=column, hint=exc.hint))
        return None, {}
    except MarkedYAMLError as exc:
        line, column = _where(exc.problem_mark or exc.context_mark)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        problems.append(
            Problem(
                f"not valid YAML: {message}",
                path=path,
                line=line,
                column=column,
                hint="check the indentation, and quote text that contains ': ' or starts with a symbol",
            )
        )
        return None, {}
    except YAMLError as exc:
        problems.append(Problem(f"not valid YAML: {exc}", path=path, line=1, column=1))
        return None, {}
    walk: _Walk | None = y.constructor.walk
    if walk is None:  # no document: the file is empty or holds only comments
        problems.append(
            Problem(
                "the file is empty",
                path=path,
                line=1,
                column=1,
                hint="run `mailer campaigns new` for a skeleton",
            )
        )
        return None, {}
    booleans_in_1_1.update(walk.booleans_in_1_1)
    for loc, at, first in walk.twice:
        problems.append(
            Problem(
                f"{loc[-1]!r} is given twice (first at line {first})",
                path=path,
                line=at.line,
                column=at.column,
                field=field_name(loc),
                hint="keep one of them",
            )
        )
    return plain(doc), walk.lines


__all__ = [
    "BOOLEANS_1_1",
    "MAX_DEPTH",
    "MAX_NODES",
    "VERSION",
    "Lines",
    "Loc",
    "Position",
    "field_name",
    "issue_yaml",
    "plain",
    "read_yaml",
    "reads_as_text",
]
