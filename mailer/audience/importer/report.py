"""What an import did: the report, its rejected and kept-suppressed rows, and the file of rejected rows."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import IO, Any

from mailer.audience.exports import SafeWriter, open_private
from mailer.errors import MailerError

CHUNK = 2000  # rows checked and written (and progress reported) at a time
LISTED = 1000  # rejections and notices listed in the report; the rejected-rows file holds every one

# progress(stage, done, total): "read" (the first reading of the file: done and total in bytes),
# "check" (a chunk of rows checked and compared with the database), "write" (that chunk written);
# for "check" and "write", done and total count the file's rows.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Rejection:
    """A row that was not imported: the line it starts on, the address as given, and why."""

    row: int
    email: str
    reason: str


@dataclass(frozen=True)
class Notice:
    """A row that was imported with a caveat (its address is suppressed and stays so)."""

    row: int
    email: str
    note: str


@dataclass(frozen=True)
class Kept:
    """A field of a member that the import left as the member set it themselves (preferences
    page, sign-up, unsubscribe): their choice is newer than the file's row."""

    row: int
    email: str
    field: str  # name, region, interests, status
    in_file: str
    kept: str
    chosen: str  # where and when the member chose it: "preferences 2026-12-07T14:03:00Z"


@dataclass
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    path: Path
    dry_run: bool = False
    rows: int = 0  # data rows read
    rejected: int = 0  # rows not imported (the first LISTED are in ``rejections``)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # rows folded into an earlier row for the same address
    cleaned: int = 0  # rows whose name or other text had control characters removed
    suppressed: int = 0  # addresses in the file that are suppressed: all kept suppressed
    not_added: int = 0  # of those, addresses with no member record (e.g. forgotten): not added
    # Status (docs/import.md, "Consent is data"): how many rows of the file said each status,
    # how many addresses a "no" suppressed now, and members whose own choices were kept.
    statuses: dict[str, int] = field(default_factory=dict)
    newly_suppressed: int = 0  # addresses a "no" in the file suppressed (not added when new)
    not_opted_in: int = 0  # members added or set "not opted in": never mailed until they sign up
    kept: int = 0  # members with a field kept as they chose it themselves
    kept_fields: dict[str, int] = field(default_factory=dict)  # field → members
    kept_rows: list[Kept] = field(default_factory=list)  # the first LISTED
    kept_path: Path | None = None
    blank_regions: int = 0  # rows whose unknown region was left blank (--unknown-region blank)
    missing: list[str] = field(default_factory=list)  # of email, region, interests, status: no column
    not_email: list[str] = field(default_factory=list)  # phone/post/SMS flags: fields, not a status
    status_kinds: dict[str, str] = field(default_factory=dict)  # status column → how it reads (opt-in, …)
    postcode_column: bool = False  # regions can come from postcodes
    consent: str | None = None  # --consent, the basis given for rows no status column speaks for
    rejections: list[Rejection] = field(default_factory=list)  # the first LISTED
    kept_suppressed: list[Notice] = field(default_factory=list)  # the first LISTED
    rejected_path: Path | None = None
    fields: list[str] = field(default_factory=list)  # extra columns stored as member fields
    # Each header cell and what it became: a member column, "field.NAME", or "-" (left out).
    columns: list[tuple[str, str]] = field(default_factory=list)
    mapping: str = ""  # the same in one line, e.g. "Email Address → email, Post Code → postcode"
    # The ids of the members this import added, in the order written (none on a dry run): what
    # `lists import --welcome` mails. Plain ints (about 10 MB at 325,000), never the rows; left
    # out of ``as_dict``, whose figures say how many.
    added_ids: list[int] = field(default_factory=list, repr=False)

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.rejections) < LISTED:
            self.rejections.append(rejection)

    def keep_suppressed(self, notice: Notice) -> None:
        if len(self.kept_suppressed) < LISTED:
            self.kept_suppressed.append(notice)

    def keep(self, kept: Sequence[Kept]) -> None:
        """One member's fields kept as they chose them."""
        self.kept += 1
        for k in kept:
            self.kept_fields[k.field] = self.kept_fields.get(k.field, 0) + 1
            if len(self.kept_rows) < LISTED:
                self.kept_rows.append(k)

    def as_dict(self) -> dict[str, Any]:
        """The report for ``--json``: every figure and listing, without ``added_ids``."""
        data = {f.name: getattr(self, f.name) for f in dataclass_fields(self) if f.name != "added_ids"}
        data["rejections"] = [asdict(r) for r in self.rejections]
        data["kept_suppressed"] = [asdict(n) for n in self.kept_suppressed]
        data["kept_rows"] = [asdict(k) for k in self.kept_rows]
        data["kept_path"] = str(self.kept_path) if self.kept_path else None
        data["fields"] = list(self.fields)
        data["path"] = str(self.path)
        data["rejected_path"] = str(self.rejected_path) if self.rejected_path else None
        data["columns"] = [{"column": cell, "to": target} for cell, target in self.columns]
        return data


def kept_path_for(path: Path) -> Path:
    """Where the kept fields of ``path`` are listed: ``members.csv`` → ``members.kept.csv``."""
    return path.with_name(path.stem + ".kept.csv")


def rejected_path_for(path: Path) -> Path:
    """Where the rejected rows of ``path`` go: ``members.csv`` → ``members.rejected.csv``."""
    return path.with_name(path.stem + ".rejected.csv")


class RowsFile:
    """A spreadsheet-safe CSV beside the input, mode 0600, written as rows come: to a ``.part``
    file that ``finish`` renames into place, so a failed import leaves no list behind and a
    successful one with no rows removes a stale list from an earlier run. With ``write=False`` (a
    dry run) no file is touched at all. ``what`` names the rows in an error ("the rejected rows")."""

    what = "the rows"

    def __init__(self, out: Path, header: Sequence[str], *, write: bool) -> None:
        self.out = out
        self.part = out.with_name(out.name + ".part")
        self.header = list(header)
        self.write = write
        self._fh: IO[str] | None = None
        self._writer: SafeWriter | None = None

    def _rows(self, rows: Sequence[Sequence[object]]) -> None:
        if not self.write:
            return
        try:
            if self._writer is None:
                self._fh = open_private(self.part)
                self._writer = SafeWriter(self._fh)
                self._writer.writerow(self.header)
            for row in rows:
                self._writer.writerow(row)
        except OSError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: OSError) -> MailerError:
        return MailerError(f"cannot write {self.what} to {self.out}: {exc.strerror}", path=self.out)

    def finish(self) -> Path | None:
        """Put the list in place (or remove a stale one); where it is, if anywhere."""
        if not self.write:
            return None
        try:
            if self._fh is None:
                self.out.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
                return None
            self._fh.close()
            os.replace(self.part, self.out)
        except OSError as exc:
            raise self._error(exc) from exc
        return self.out

    def discard(self) -> None:
        """The import failed: no list."""
        if self._fh is not None:
            self._fh.close()
            self.part.unlink(missing_ok=True)


class RejectedRows(RowsFile):
    """The rejected rows beside the input (``rejected_path_for``): the original cells, then
    ``row`` and ``reason`` (it is opened in a spreadsheet to be fixed: no cell may run as a formula)."""

    what = "the rejected rows"

    def __init__(self, path: Path, header: Sequence[str], report: ImportReport, *, write: bool) -> None:
        super().__init__(rejected_path_for(path), [*header, "row", "reason"], write=write)
        self.report = report

    def add(self, rejection: Rejection, cells: Sequence[str]) -> None:
        self.report.reject(rejection)
        self._rows([[*cells, rejection.row, rejection.reason]])


KEPT_HEADER = ("row", "email", "field", "in_file", "kept", "chosen")


class KeptRows(RowsFile):
    """The fields kept as members chose them (``kept_path_for``): one line per field."""

    what = "the kept fields"

    def __init__(self, path: Path, report: ImportReport, *, write: bool) -> None:
        super().__init__(kept_path_for(path), KEPT_HEADER, write=write)
        self.report = report

    def add(self, kept: Sequence[Kept]) -> None:
        self.report.keep(kept)
        self._rows([[k.row, k.email, k.field, k.in_file, k.kept, k.chosen] for k in kept])
