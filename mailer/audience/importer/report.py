"""What an import did: the report, its rejected and kept-suppressed rows, and the file of rejected rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mailer.audience.exports import SafeWriter
from mailer.errors import MailerError

CHUNK = 2000  # rows written (and progress reported) at a time

# progress(stage, done, total): stage is "check" (reading and validating rows) or "write".
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


@dataclass
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    path: Path
    dry_run: bool = False
    rows: int = 0  # data rows read
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # rows folded into an earlier row for the same address
    cleaned: int = 0  # rows whose name or other text had control characters removed
    suppressed: int = 0  # addresses in the file that are suppressed: all kept suppressed
    not_added: int = 0  # of those, addresses with no member record (e.g. forgotten): not added
    rejections: list[Rejection] = field(default_factory=list)
    kept_suppressed: list[Notice] = field(default_factory=list)
    rejected_path: Path | None = None
    fields: list[str] = field(default_factory=list)  # extra columns stored as member fields

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["rejected"] = self.rejected
        data["rejected_path"] = str(self.rejected_path) if self.rejected_path else None
        return data


def rejected_path_for(path: Path) -> Path:
    """Where the rejected rows of ``path`` go: ``members.csv`` → ``members.rejected.csv``."""
    return path.with_name(path.stem + ".rejected.csv")


def write_rejected(path: Path, header: list[str], rejected: list[tuple[Rejection, list[str]]]) -> Path | None:
    out = rejected_path_for(path)
    try:
        if not rejected:
            out.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
            return None
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = SafeWriter(fh)  # opened in a spreadsheet to be fixed: no cell runs as a formula
            writer.writerow([*header, "row", "reason"])
            for rejection, cells in rejected:
                writer.writerow([*cells, rejection.row, rejection.reason])
    except OSError as exc:
        raise MailerError(f"cannot write the rejected rows to {out}: {exc.strerror}", path=out) from exc
    return out
