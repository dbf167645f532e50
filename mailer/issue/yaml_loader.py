"""Reading an issue file's YAML with the line and column of every field.

``IssueYAMLLoader`` is ``yaml.safe_load`` except that times and dates stay text for the model to
parse. ``read_yaml`` records where each field is (``("items", 3, "end")`` → line, column), reports
keys given twice, and refuses YAML aliases that refer to themselves or expand past ``MAX_NODES``.
``field_name`` writes a location the way messages show it (``items[3].end``).
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
Lines = dict[Loc, tuple[int, int]]
"""Where each field is: its location → (line, column), both 1-based."""


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
    lines: Lines,
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


__all__ = ["MAX_NODES", "IssueYAMLLoader", "Lines", "Loc", "field_name", "read_yaml"]
