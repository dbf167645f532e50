"""Reading an import file, as a stream: it is never held in memory whole.

The file is read twice (more often only for files with many repeated addresses: see
``import_csv``). ``scan`` (the first reading) decodes it, maps the header (``columns``),
checks that it is CSV with every row as wide as the header, and notes which addresses appear more
than once (a 64-bit hash per row, a few MB for a national list): a file that cannot be imported
is refused here, before anything is written. ``rows`` (the second reading) yields each row with
the line it starts on, for the checks and the writes, a chunk at a time.
"""

from __future__ import annotations

import codecs
import csv
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TextIO

from mailer.audience.exports import FORMULA_LEADS, unneutralise
from mailer.audience.importer.check import Reject, normalise_address
from mailer.audience.importer.columns import Mapping, map_columns
from mailer.audience.importer.report import CHUNK, Progress
from mailer.errors import InvalidInput, MailerError, Problem

MAX_RAGGED = 20  # rows whose width is wrong, listed before the import gives up


@dataclass
class Scan:
    """What the first reading found."""

    header: list[str]
    mapping: Mapping
    rows: int = 0  # data rows (blank lines are not rows)
    repeated: set[int] = field(default_factory=set)  # hash() of each address on more than one row
    quoted: bool = False  # some cell may carry a spreadsheet-safe export's ' (see exports.unneutralise)


class _Lines:
    """The file's lines for ``csv.reader``, counting characters (for progress) and noting whether
    any line holds a ``'`` before a formula lead, as a spreadsheet-safe export writes."""

    def __init__(self) -> None:
        self.chars = 0
        self.quoted = False

    def over(self, fh: TextIO) -> Iterator[str]:
        for line in fh:
            self.chars += len(line)
            if "'" in line and not self.quoted:
                self.quoted = any("'" + lead in line for lead in FORMULA_LEADS)
            yield line


def _open(path: Path) -> TextIO:
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise MailerError(f"cannot read {path}: {exc.strerror}", path=path) from exc


def _not_utf8(path: Path) -> InvalidInput:
    """The error for a file that is not UTF-8, naming the line and the byte (found by reading the
    file again in blocks: this is the rare path)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                data = exc.object
                line += data.count(b"\n", 0, exc.start)
                byte = data[exc.start]
                break
            line += block.count(b"\n")
        else:  # only the end of the file was cut in the middle of a character
            byte = block[-1] if block else 0
    return InvalidInput(
        [
            Problem(
                f"not UTF-8 text (byte 0x{byte:02x})",
                path=path,
                line=line,
                hint="save the file as 'CSV UTF-8' and import it again",
            )
        ],
        summary=f"cannot read {path}",
    )


def _blank(cells: list[str], width: int) -> bool:
    return not cells or (len(cells) == 1 and width > 1 and not cells[0].strip())


def _key(cell: str) -> int | None:
    """A hash of the address in ``cell`` as the checks will normalise it; None when invalid."""
    raw = unneutralise(cell).strip()
    if not raw:
        return None
    try:
        return hash(normalise_address(raw))
    except Reject:
        return None


def _repeated(hashes: array[int]) -> set[int]:
    ordered = sorted(hashes)
    return {a for a, b in pairwise(ordered) if a == b}


def _ragged(path: Path, row: int, cells: list[str], width: int) -> Problem:
    return Problem(
        f"{len(cells)} cells where the header has {width}",
        path=path,
        line=row,
        hint="quote cells that contain commas",
    )


def scan(path: Path, explicit: Sequence[str] = (), progress: Progress | None = None) -> Scan:
    """The first reading: the header and its mapping, the rows counted, repeated addresses;
    raises ``InvalidInput`` naming the file and line for a file that cannot be imported."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MailerError(f"cannot read {path}: {exc.strerror}", path=path) from exc
    lines = _Lines()
    hashes: array[int] = array("q")
    ragged: list[Problem] = []
    try:
        with _open(path) as fh:
            reader = csv.reader(lines.over(fh), strict=True)
            try:
                header = next(reader)
            except StopIteration:
                raise InvalidInput(
                    [Problem("the file is empty", path=path, line=1, hint="the first line names the columns")]
                ) from None
            except csv.Error as exc:
                raise InvalidInput([Problem(f"not valid CSV: {exc}", path=path, line=1)]) from None
            result = Scan(header, map_columns(path, header, explicit))
            width, at = result.mapping.width, result.mapping.email
            last_line = reader.line_num
            try:
                for cells in reader:
                    row, last_line = last_line + 1, reader.line_num
                    if _blank(cells, width):
                        continue
                    result.rows += 1
                    if len(cells) != width:
                        ragged.append(_ragged(path, row, cells, width))
                        if len(ragged) >= MAX_RAGGED:
                            break
                        continue
                    key = _key(cells[at])
                    if key is not None:
                        hashes.append(key)
                    if progress is not None and result.rows % CHUNK == 0:
                        progress("read", min(lines.chars, size), size)
            except csv.Error as exc:
                raise InvalidInput(
                    [Problem(f"not valid CSV: {exc}", path=path, line=reader.line_num)],
                    summary=f"{path} cannot be imported",
                ) from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    if ragged:
        raise InvalidInput(ragged, summary=f"{path} has rows whose cells do not match the header")
    result.repeated = _repeated(hashes)
    result.quoted = lines.quoted
    if progress is not None:
        progress("read", size, size)
    return result


def rows(path: Path, scanned: Scan) -> Iterator[tuple[int, list[str], list[str]]]:
    """The second reading: each data row as (line it starts on, cells as given, cells to check).

    The cells to check have a spreadsheet-safe export's ``'`` taken off. A file changed since
    ``scan`` read it is refused with the line, like any other malformed file.
    """
    width, quoted = scanned.mapping.width, scanned.quoted
    try:
        with _open(path) as fh:
            reader = csv.reader(fh, strict=True)
            try:
                next(reader)  # the header, mapped by scan
                last_line = reader.line_num
                for cells in reader:
                    row, last_line = last_line + 1, reader.line_num
                    if _blank(cells, width):
                        continue
                    if len(cells) != width:
                        raise InvalidInput(
                            [_ragged(path, row, cells, width)],
                            summary=f"{path} changed while it was being imported",
                        )
                    yield row, cells, [unneutralise(c) for c in cells] if quoted else cells
            except (csv.Error, StopIteration) as exc:
                raise InvalidInput(
                    [Problem(f"not valid CSV: {exc}", path=path, line=reader.line_num)],
                    summary=f"{path} changed while it was being imported",
                ) from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
