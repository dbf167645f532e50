"""Importing members from a CSV file: validated, merged, and never resubscribing anyone.

``import_csv`` reads the whole file and checks every row before it writes anything; then it writes
in bulk, in chunks (the driver's ``executemany`` on SQLite, ``COPY`` on PostgreSQL; no per-row ORM
objects or queries) inside the caller's transaction, so an import that fails part way leaves the
database as it was. 325,000 rows take about 1.4x the CPU time of ``sqlite-utils insert --csv``
(bench/import.py).

``read`` decodes the file and checks every row, ``apply`` merges the records into the database,
``report`` holds what the import did; ``import_csv`` here runs them in that order.

Columns
    ``email`` (required), ``name``, ``postcode``, ``region`` (a slug or a region's name; empty means
    "from the postcode"), ``interests`` (slugs or names separated by ``;``), ``consent_source``,
    ``consent_date`` (``2024-03-01``, ``2024-03-01T10:00`` or ``01/03/2024``). Header names are
    case-insensitive. Any other column becomes a member field, its name lower-cased with runs of
    other characters turned into ``_`` (``Date Joined`` → ``date_joined``).

Rules
    - Rows are numbered by the line of the file where they start; the header is line 1.
    - An empty cell means "not known": it never clears what the database holds.
    - Several rows for one address (after normalisation) are merged: for each column the last
      non-empty cell wins; interests are unioned. Each merged row is counted in ``merged``.
    - A member already in the database is updated with the file's non-empty cells; interests in the
      file are added to theirs, never removed (leaving a topic is done in preferences).
    - A row with an invalid address, an address whose local part is not ASCII (mailer sends without
      SMTPUTF8, so it could never be mailed), an unknown region or interest, a bad consent date or an
      over-long value is rejected with its reason; every other row is kept. Rejected rows go to
      ``<input stem>.rejected.csv`` beside the input, with the original cells plus ``row`` and
      ``reason``, spreadsheet-safe (``mailer.audience.exports``: a cell that would run as a formula
      gets a ``'`` before it).
    - A cell that starts with ``'`` followed by ``=``, ``+``, ``-``, ``@``, a tab or a CR loses the
      ``'``: that is how a spreadsheet-safe export writes such a cell, so an export imports back as it was.
    - Names (and other text) with CR, LF or other control characters are cleaned, never stored raw,
      and counted in ``cleaned``.
    - A suppressed address stays suppressed: an existing member's data may be updated, but no import
      removes a suppression. A suppressed address with no member record (someone erased with
      ``members forget``, a bounced stranger) is not added at all, so an erased person's data never
      comes back. New members get one ``subscribe`` event in the consent log (source:
      ``consent_source``, else ``import``); existing consent events are never touched.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from mailer.audience.importer.apply import apply, plan_import
from mailer.audience.importer.read import fast_normalise, read
from mailer.audience.importer.report import (
    ImportReport,
    Notice,
    Progress,
    Rejection,
    rejected_path_for,
    write_rejected,
)
from mailer.audience.shape import Shape

__all__ = [
    "ImportReport",
    "Notice",
    "Progress",
    "Rejection",
    "fast_normalise",
    "import_csv",
    "rejected_path_for",
]


def import_csv(
    session: Session,
    path: Path,
    shape: Shape,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the members in the CSV file at ``path`` (see the module's docstring for the rules).

    Runs inside ``session``'s transaction: use ``with db.session() as session`` so that the whole
    import commits at once or not at all. With ``dry_run`` nothing is written to the database (the
    rejected rows are still written beside the input). The shape's regions and interests must be in
    the database (``mailer lists sync``) unless it is a dry run.

    Raises ``InvalidInput`` naming the file and line for a file that is not UTF-8 CSV with an
    ``email`` column and rows as wide as the header.
    """
    path = Path(path)
    report = ImportReport(path=path, dry_run=dry_run)
    records, header, rejected = read(path, shape, report, progress)
    conn = session.connection()
    plan = plan_import(conn, records, report)
    report.rejected_path = write_rejected(path, header, rejected)
    if not dry_run:
        apply(conn, plan, path, progress)
    return report
