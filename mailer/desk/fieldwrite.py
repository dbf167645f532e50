"""Writing one field of the desk's issue form into the issue's data: only where its value
changed, in the file's order, everything else (comments, other keys) left as it was."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from ruamel.yaml.comments import CommentedMap

from mailer.desk.formfields import Field, names_of
from mailer.desk.issuefile import drop, to_yaml
from mailer.desk.itemparts import put_in_order


def get_path(container: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` (keys of nested maps) in ``container``, or None."""
    for part in path:
        container = container.get(part) if isinstance(container, dict) else None
    return container


def set_field(
    container: MutableMapping[str, Any], prefix: str, f: Field, values: dict[str, Any], order: list[str]
) -> None:
    """Write the field ``f``'s posted value into ``container`` where it changed, in the file's
    order (``order``), leaving everything that did not change as it was."""
    spec, new = f.spec, values[f.name]
    if spec.key == "report":
        return  # with the highlight
    if spec.key == "highlight":
        _set_highlight(
            container, values.get(prefix + "report", container.get("highlight") is False), f, new, order
        )
    elif spec.kind == "bool":
        _set_bool(container, f, new, order)
    elif spec.kind == "names":
        _set_names(container, f, new, order)
    elif new != f.value:
        _set_text(container, f, _as_text(spec.kind, new), order)


def _set_highlight(
    container: MutableMapping[str, Any], report: bool, f: Field, new: Any, order: list[str]
) -> None:
    """The highlight, or ``highlight: false`` for an item that is a report."""
    if report:
        if container.get("highlight") is not False:
            put_in_order(container, "highlight", False, order)
        return
    if new == f.value and container.get("highlight") is not False:
        return
    put_in_order(container, "highlight", to_yaml(new), order)


def _set_bool(container: MutableMapping[str, Any], f: Field, new: Any, order: list[str]) -> None:
    if new == f.value:
        return
    if new:
        put_in_order(container, f.spec.key, True, order)
    else:
        drop(container, f.spec.key)


def _set_names(container: MutableMapping[str, Any], f: Field, new: Any, order: list[str]) -> None:
    spec = f.spec
    now = get_path(container, spec.path)
    if (isinstance(now, list) and [str(v) for v in now] == names_of(new)) or (now is None and not new):
        return
    if not names_of(new):
        drop(container, spec.key)
    else:
        put_in_order(container, spec.key, to_yaml(names_of(new)), order)


def _as_text(kind: str, new: Any) -> Any:
    """Several lines end with one line break; one line of text has no spaces around it."""
    if kind == "text" and "\n" in new.strip("\n"):
        return new.rstrip() + "\n"
    if kind == "text":
        return new.strip()
    return new


def _set_text(container: MutableMapping[str, Any], f: Field, new: Any, order: list[str]) -> None:
    spec = f.spec
    if len(spec.path) == 2:
        _set_nested(container, spec.path[0], spec.path[1], new, order)
    elif not new and not spec.required:
        drop(container, spec.key)
    else:
        put_in_order(container, spec.key, to_yaml(new), order)


def _set_nested(
    container: MutableMapping[str, Any], outer: str, inner: str, new: Any, order: list[str]
) -> None:
    """``outer.inner`` (a booking's url): the map made when it is first needed, gone when empty."""
    holder = container.get(outer)
    if not isinstance(holder, dict):
        if not new:
            return
        put_in_order(container, outer, CommentedMap() if isinstance(container, CommentedMap) else {}, order)
        holder = container[outer]
    if new:
        holder[inner] = to_yaml(new)
    else:
        drop(holder, inner)
        if not holder:
            drop(container, outer)
