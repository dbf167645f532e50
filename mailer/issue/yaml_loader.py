"""Reading an issue file's YAML with the line and column of every field.

``IssueYAMLLoader`` is ``yaml.safe_load`` except that times and dates stay text for the model to
parse. ``read_yaml`` records where each field is (``("items", 3, "end")`` → line, column), reports
keys given twice, and refuses, each with its own message and line: values nested more than
``MAX_DEPTH`` levels deep, more than ``MAX_NODES`` values, and YAML aliases that refer to themselves
or expand past ``MAX_NODES``. ``field_name`` writes a location the way messages show it
(``items[3].end``). The size of the file itself is limited by ``load_issue`` (``MAX_BYTES``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailer.errors import Problem

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


MAX_DEPTH = 50  # levels of nesting; an issue needs about 6 (items[3].events[0].booking.url)
MAX_NODES = 100_000  # values in an issue file, aliases expanded


class _TooDeep(yaml.YAMLError):
    """Nesting past ``MAX_DEPTH``; ``args[0]`` is the 1-based line where it goes too deep."""


class _TooLarge(yaml.YAMLError):
    """``args``: the 1-based line, and the message."""


class _IssueYAMLLoader(yaml.SafeLoader):
    """``yaml.safe_load`` semantics, except that times stay text: ``21:00`` is not the number 1260
    (YAML 1.1 base 60) and ``2025-11-18`` is parsed by the model, not by YAML. Nesting deeper than
    ``MAX_DEPTH`` stops the composer (which recurses once per level) with ``_TooDeep``."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.line + 1)  # type: ignore[no-untyped-call]
            self._nodes += 1
            if self._nodes > MAX_NODES:
                line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]
                raise _TooLarge(
                    line, f"the file holds more than {MAX_NODES:,} values; an issue needs far fewer"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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
Lines = dict[Loc, tuple[int, int]]
"""Where each field is: its location → (line, column), both 1-based."""


def field_name(loc: Loc) -> str:
    """``("items", 3, "events", 0, "end")`` → ``items[3].events[0].end``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _walk(node: Node, lines: Lines, problems: list[Problem], path: Path) -> None:
    """Record the line and column of every field, and report keys given twice.

    Iterative, so that no file can make it recurse. Raises ``_TooLarge`` when aliases (``*name``)
    refer to themselves or expand past ``MAX_NODES`` values, when the file itself holds more than
    ``MAX_NODES`` values, and when aliases nest values past ``MAX_DEPTH`` levels."""
    distinct: set[int] = set()
    visits = 0
    stack: list[tuple[Node, Loc, frozenset[int]]] = [(node, (), frozenset())]
    while stack:
        current, loc, ancestors = stack.pop()
        line = current.start_mark.line + 1
        if id(current) in ancestors:
            raise _TooLarge(line, "a YAML alias (*name) refers to itself (to the value that holds it)")
        visits += 1
        distinct.add(id(current))
        if visits > MAX_NODES:
            if len(distinct) > MAX_NODES:
                raise _TooLarge(
                    line, f"the file holds more than {MAX_NODES:,} values; an issue needs far fewer"
                )
            raise _TooLarge(line, f"YAML aliases (*name) expand to more than {MAX_NODES:,} values")
        if len(ancestors) >= MAX_DEPTH:
            raise _TooLarge(line, f"YAML aliases (*name) nest values more than {MAX_DEPTH} levels deep")
        lines.setdefault(loc, (line, current.start_mark.column + 1))
        ancestors = ancestors | {id(current)}
        children: list[tuple[Node, Loc, frozenset[int]]] = []
        if isinstance(current, MappingNode):
            seen: dict[str, int] = {}
            for key, value in current.value:
                name = str(key.value) if isinstance(key, ScalarNode) else "?"
                key_line = key.start_mark.line + 1
                if name in seen:
                    problems.append(
                        Problem(
                            f"{name!r} is given twice (first at line {seen[name]})",
                            path=path,
                            line=key_line,
                            field=field_name((*loc, name)),
                            hint="keep one of them",
                        )
                    )
                seen.setdefault(name, key_line)
                lines.setdefault((*loc, name), (key_line, key.start_mark.column + 1))
                children.append((value, (*loc, name), ancestors))
        elif isinstance(current, SequenceNode):
            children = [(child, (*loc, i), ancestors) for i, child in enumerate(current.value)]
        stack.extend(reversed(children))


def read_yaml(text: str, path: Path, problems: list[Problem]) -> tuple[Any, Lines]:
    """The document of ``text`` and where each of its fields is; the problems found go to ``problems``.

    The data is None when the file is empty or not YAML (the reason is in ``problems``); keys given
    twice are reported but the data is still returned (the later value wins, as in YAML)."""
    lines: Lines = {}
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
        _walk(node, lines, problems, path)
        data = loader.construct_document(node)
    except _TooDeep as exc:
        problems.append(
            Problem(
                f"values nested more than {MAX_DEPTH} levels deep",
                path=path,
                line=exc.args[0],
                hint="an issue nests a few levels: items, then an item's events; check the indentation "
                "and the brackets",
            )
        )
        return None, lines
    except _TooLarge as exc:
        line, message = exc.args
        problems.append(
            Problem(
                message,
                path=path,
                line=line,
                hint="write the value out instead of using an alias"
                if "alias" in message
                else "split it into several issues",
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


__all__ = ["MAX_DEPTH", "MAX_NODES", "IssueYAMLLoader", "Lines", "Loc", "field_name", "read_yaml"]
