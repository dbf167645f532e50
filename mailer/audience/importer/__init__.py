"""Importing members from a CSV file: validated, merged, and never resubscribing anyone.

``import_csv`` streams: it never holds the file, its rows or the members in memory whole. It
reads the file twice (``read``): first to map the header (``columns``), check that every row is
CSV as wide as the header and find the addresses on more than one row, refusing a malformed file
before anything is written; then a chunk of rows at a time, checking each row (``check``), looking
up the chunk's addresses among the members and suppressions, and writing it in bulk (``apply``:
the driver's ``executemany`` on SQLite, ``COPY`` on PostgreSQL; no per-row ORM objects or
queries). Every chunk is written in the caller's one transaction, so an import that fails part way
leaves the database as it was. The rows of an address that appears more than once are held back
and merged, and written after the last chunk, at most ``HELD`` addresses at a time (a file with
more is read once more per group of them). 325,000 rows peak at 113 MB of resident memory (about
6 MB of it the added members' ids) and take 0.9-1.1x the wall-clock time of ``sqlite-utils insert
--csv`` (1.05-1.25x its CPU time; bench/import.py). ``report`` holds what the import did, with
the ids of the members it added (``ImportReport.added_ids``: ``lists import --welcome`` mails
them), and writes the rejected rows as they are found.

Columns
    ``email`` (required), ``name`` (or ``first_name`` and ``last_name``, joined), ``postcode``,
    ``region`` (a slug or a region's name; empty means "from the postcode"), ``interests`` (slugs or
    names separated by ``;``), ``consent_source``, ``consent_date`` (``2024-03-01``,
    ``2024-03-01T10:00`` or ``01/03/2024``). Header names are matched without regard to case,
    spaces or punctuation, and the headers of common CRM exports are recognised (``Email Address``,
    ``E-mail``, ``First Name``, ``Post Code``, ``ZIP``, …: see ``columns``); ``mapping`` (``--map
    "HEADER=TARGET"``) names the rest. Any other column becomes a member field, its name
    lower-cased with runs of other characters turned into ``_`` (``Date Joined`` → ``date_joined``).

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
      gets a ``'`` before it). The report lists the first 1,000; the file holds them all. A dry run
      writes no file.
    - A cell that starts with ``'`` followed by ``=``, ``+``, ``-``, ``@``, a tab or a CR loses the
      ``'``: that is how a spreadsheet-safe export writes such a cell, so an export imports back as it was.
    - Names (and other text) with CR, LF or other control characters are cleaned, never stored raw,
      and counted in ``cleaned``.
    - A suppressed address stays suppressed: an existing member's data may be updated, but no import
      removes a suppression. A suppressed address with no member record (someone erased with
      ``members forget``, a bounced stranger) is not added at all, so an erased person's data never
      comes back. New members get one ``subscribe`` event in the consent log (source:
      ``consent_source``, else ``import``); existing consent events are never touched.
    - Consent is data (docs/import.md): the status columns of CRM and list-tool exports
      (``consent_columns``) give each row a status; a "no" suppresses the address (a new one is not
      added) or marks the member "not opted in", and a "no" from any file outlasts a later "yes". A
      file with no status column needs ``consent_source`` or ``Options.consent``, or it is refused.
    - A field a member chose themselves (``MemberChoice``) is kept as they chose it, and listed in
      the report and in ``<input stem>.kept.csv``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from mailer.audience import addresses
from mailer.audience.importer.apply import Merger, page_cache
from mailer.audience.importer.check import (
    Checker,
    Options,
    Record,
    Reject,
    fast_normalise,
    normalise_address,
)
from mailer.audience.importer.columns import MAX_COLUMNS, Mapping, map_columns
from mailer.audience.importer.read import Scan, rows, scan
from mailer.audience.importer.report import (
    CHUNK,
    ImportReport,
    Kept,
    KeptRows,
    Notice,
    Progress,
    RejectedRows,
    Rejection,
    kept_path_for,
    rejected_path_for,
)
from mailer.audience.shape import Shape
from mailer.errors import InvalidInput, Problem

HELD = 10_000  # addresses on several rows held back (and merged) at a time

__all__ = [
    "HELD",
    "MAX_COLUMNS",
    "ImportReport",
    "Kept",
    "Notice",
    "Options",
    "Progress",
    "Rejection",
    "fast_normalise",
    "import_csv",
    "kept_path_for",
    "map_columns",
    "rejected_path_for",
]


def import_csv(
    session: Session,
    path: Path,
    shape: Shape,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    mapping: Sequence[str] = (),
    options: Options | None = None,
) -> ImportReport:
    """Import the members in the CSV file at ``path`` (see the module's docstring for the rules).

    Runs inside ``session``'s transaction: use ``with db.session() as session`` so that the whole
    import commits at once or not at all. With ``dry_run`` nothing is written, to the database or
    beside the input. ``mapping`` holds ``--map`` options, ``"HEADER=TARGET"``. The shape's regions
    and interests must be in the database (``mailer lists sync``) unless it is a dry run.

    ``options`` says what the file leaves open: the basis of consent for a file with no status
    column (``--consent``), an unknown region left blank, the first name taken from the name.

    Raises ``InvalidInput`` naming the file and line for a file that is not UTF-8 CSV with an
    email column and rows as wide as the header, or whose header cannot be mapped, and for a file
    with no status column, no ``consent_source`` column and no ``--consent`` basis.
    """
    path = Path(path)
    options = options or Options()
    report = ImportReport(path=path, dry_run=dry_run, consent=options.consent)
    scanned = scan(path, mapping, progress)
    _require_basis(path, scanned.mapping, options)
    report.fields = scanned.mapping.field_names
    report.columns = list(scanned.mapping.used)
    report.mapping = scanned.mapping.describe()
    report.missing = scanned.mapping.missing
    report.not_email = list(scanned.mapping.not_email)
    report.status_kinds = {header: kind.kind for _i, header, kind in scanned.mapping.status}
    report.postcode_column = scanned.mapping.postcode is not None
    rejected = RejectedRows(path, scanned.header, report, write=not dry_run)
    kept = KeptRows(path, report, write=not dry_run)
    conn = session.connection()
    checker = Checker(
        shape,
        scanned.mapping,
        datetime.now(UTC).date(),
        file=path.name,
        options=options,
        hasher=functools.partial(addresses.address_hash, session),
    )
    try:
        with page_cache(conn):
            merger = Merger(conn, path, report, kept, older=functools.partial(_older_hashes, session))
            for done, records in _chunks(path, scanned, checker, report, rejected):
                plan = merger.plan(records)
                if progress is not None:
                    progress("check", done, scanned.rows)
                if not dry_run:
                    merger.write(plan)
                    if progress is not None:
                        progress("write", done, scanned.rows)
    except BaseException:
        rejected.discard()
        kept.discard()
        raise
    report.blank_regions = checker.blank_regions
    report.rejected_path = rejected.finish()
    report.kept_path = kept.finish()
    return report


def _require_basis(path: Path, mapping: Mapping, options: Options) -> None:
    """Refuse a file that says nowhere whether its addresses may be mailed."""
    if mapping.status or mapping.consent_source is not None or (options.consent or "").strip():
        return
    raise InvalidInput(
        [
            Problem(
                "no column says whether these addresses may be mailed (no status column such as "
                "Opted In, Do Not Email, Email Opt Out or Unsubscribed, and no consent_source)",
                path=path,
                line=1,
                hint='name the column with --map "HEADER=opted_in" (or opted_out, bounced, status), '
                'or state the basis on which everyone in the file agreed: --consent "signed up at '
                'the 2025 conference"; see docs/import.md',
            )
        ],
        summary=f"{path} cannot be imported",
    )


def _chunks(
    path: Path, scanned: Scan, checker: Checker, report: ImportReport, rejected: RejectedRows
) -> Iterator[tuple[int, list[Record]]]:
    """The file's valid records, a chunk at a time, with the number of rows read so far.

    The rows of an address that appears more than once are merged before its record is written:
    they are held back while the file is read and come after the last chunk. To keep memory
    bounded whatever the file, at most about ``HELD`` such addresses are held at a time: when
    there are more, they are split into groups by hash, the first held during the reading, each
    other gathered by one more reading of the file (only files with over ``HELD`` repeated
    addresses, such as two exports run together, are read more than twice).
    """
    mapping = scanned.mapping
    repeated = scanned.repeated
    groups = -(-len(repeated) // HELD) or 1
    held: dict[str, Record] = {}
    # Wide files get smaller chunks, so that a chunk's cells stay few.
    size = max(10, min(CHUNK, CHUNK * 10 // mapping.width))
    chunk: list[Record] = []
    for row, given, cells in rows(path, scanned):
        report.rows += 1
        try:
            record, cleaned = checker.check(row, cells)
        except Reject as exc:
            rejected.add(Rejection(row, cells[mapping.email], str(exc)), given)
        else:
            report.cleaned += cleaned
            key = hash(record.email)
            if repeated and key in repeated:
                if key % groups == 0:
                    _hold(held, record, report)
            else:
                chunk.append(record)
        if report.rows % size == 0:
            yield report.rows, chunk
            chunk = []
    if chunk:
        yield report.rows, chunk
    for group in range(groups):
        if group:  # read the file again for this group's rows (checked and counted already)
            for row, _given, cells in rows(path, scanned):
                found = _key(cells[mapping.email])
                if found is not None and found in repeated and found % groups == group:
                    try:
                        record, _cleaned = checker.check(row, cells)
                    except Reject:
                        continue
                    _hold(held, record, report)
        last = list(held.values())
        held.clear()
        for start in range(0, len(last), size):
            yield report.rows, last[start : start + size]


def _hold(held: dict[str, Record], record: Record, report: ImportReport) -> None:
    earlier = held.get(record.email)
    if earlier is None:
        held[record.email] = record
    else:
        earlier.merge(record)
        report.merged += 1


def _key(cell: str) -> int | None:
    """``hash()`` of the address in ``cell`` as the checks normalise it (as ``read.scan`` keys it)."""
    try:
        return hash(normalise_address(cell.strip()))
    except Reject:
        return None


def _older_hashes(session: Session, normalised: str) -> list[str]:
    """The hashes other than the newest key's that a suppression of ``normalised`` may be under: a
    person erased under an older key, or before keys (docs/data.md, The suppression hash)."""
    return addresses.hash_candidates(session, normalised)[1:]
