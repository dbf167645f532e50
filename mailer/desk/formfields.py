"""The fields of the desk's issue form: what a field is (``Spec``, ``Field``) and how a posted value
is cleaned before it may go into the issue file (``clean``, ``line``, ``names_of``).

``mailer.desk.issueform`` builds the form of them; ``mailer.desk.itemparts`` an item's
links and image.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Protocol


class Posted(Protocol):
    """A posted form as the web hands it over (Starlette's ``FormData``), or any mapping with
    every value of a repeated field in ``multi_items``."""

    def get(self, key: str, /) -> Any: ...

    def __contains__(self, key: object, /) -> bool: ...

    def multi_items(self) -> list[tuple[str, Any]]: ...


@dataclass(frozen=True)
class Spec:
    """One field: its key (``booking-url``), the path in the container (``("booking", "url")``),
    its label, kind (``line``, ``text``, ``names``, ``bool``), longest value and hint."""

    key: str
    label: str
    kind: str = "line"
    limit: int = 300
    hint: str = ""
    required: bool = False

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("-", 1)) if self.key.startswith(("booking-", "button-")) else (self.key,)


@dataclass
class Field:
    """A field as the form shows it: its name (``items-2-title``), spec and value."""

    name: str
    spec: Spec
    value: Any


_LINE_ENDS = re.compile(r"\r\n?|[\u2028\u2029\x85]")


def clean(value: str, *, several_lines: bool = False) -> str:
    """A posted value as it may go into the file: line breaks as ``\n`` (only in text of several
    lines; elsewhere a space), no other control characters (a NUL, an escape) but tabs in text."""
    value = _LINE_ENDS.sub("\n", value)
    keep = "\n\t" if several_lines else ""
    value = "".join(
        c if c in keep or unicodedata.category(c) != "Cc" else (" " if c in "\n\t" else "") for c in value
    )
    return value if several_lines else value.strip()


def line(form: Posted, name: str, limit: int) -> str:
    """A one-line field, cleaned (``clean``) and cut to ``limit`` characters."""
    value = form.get(name)
    return clean(value)[:limit] if isinstance(value, str) else ""


def names_of(text: str) -> list[str]:
    """The names of a list field (``birmingham, derby``), each once, in order."""
    out: list[str] = []
    for part in re.split(r"[,\s]+", text):
        if part and part not in out:
            out.append(part)
    return out


__all__ = ["Field", "Spec", "clean", "line", "names_of"]
