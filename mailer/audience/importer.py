"""Importing members from a CSV file: validated, merged, and never resubscribing anyone.

``import_csv`` reads the whole file and checks every row before it writes anything; then it writes
in bulk, in chunks (the driver's ``executemany`` on SQLite, ``COPY`` on PostgreSQL; no per-row ORM
objects or queries) inside the caller's transaction, so an import that fails part way leaves the
database as it was. 325,000 rows take about 1.4x the CPU time of ``sqlite-utils insert --csv``
(bench/import.py).

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
    - A row with an invalid address, an unknown region or interest, a bad consent date or an
      over-long value is rejected with its reason; every other row is kept. Rejected rows go to
      ``<input stem>.rejected.csv`` beside the input, with the original cells plus ``row`` and ``reason``.
    - Names (and other text) with CR, LF or other control characters are cleaned, never stored raw,
      and counted in ``cleaned``.
    - A suppressed address stays suppressed: an existing member's data may be updated, but no import
      removes a suppression. A suppressed address with no member record (someone erased with
      ``members forget``, a bounced stranger) is not added at all, so an erased person's data never
      comes back. New members get one ``subscribe`` event in the consent log (source:
      ``consent_source``, else ``import``); existing consent events are never touched.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Connection,
    DateTime,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mailer.audience import addresses
from mailer.audience.shape import Shape
from mailer.errors import InvalidInput, MailerError, Problem
from mailer.models import ConsentEvent, Interest, Member, MemberField, MemberInterest, Region, Suppression
from mailer.models import utcnow as _utcnow

KNOWN_COLUMNS = ("email", "name", "postcode", "region", "interests", "consent_source", "consent_date")
CHUNK = 2000  # rows written (and progress reported) at a time
LOOKUP_CHUNK = 900  # values in one IN (…): under the 999 parameters of older SQLite builds
MAX_NAME, MAX_POSTCODE, MAX_SOURCE, MAX_FIELD_NAME, MAX_FIELD_VALUE = 200, 16, 32, 100, 1000

members_t = cast(Table, Member.__table__)
interests_t = cast(Table, MemberInterest.__table__)
fields_t = cast(Table, MemberField.__table__)
consent_t = cast(Table, ConsentEvent.__table__)

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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["rejected"] = self.rejected
        data["rejected_path"] = str(self.rejected_path) if self.rejected_path else None
        return data


@dataclass(slots=True)
class _Record:
    """One address's validated data from the file (several rows merged)."""

    row: int
    email: str
    address_hash: str
    name: str
    postcode: str
    region: str | None
    interests: set[str]
    fields: dict[str, str]
    consent_source: str
    consent_date: str

    def merge(self, later: _Record) -> None:
        self.name = later.name or self.name
        self.postcode = later.postcode or self.postcode
        self.region = later.region or self.region
        self.interests |= later.interests
        self.fields.update(later.fields)
        self.consent_source = later.consent_source or self.consent_source
        self.consent_date = later.consent_date or self.consent_date


@dataclass(slots=True)
class _Existing:
    id: int
    name: str
    postcode: str
    region: str | None
    interests: set[str] = field(default_factory=set)
    fields: dict[str, str] = field(default_factory=dict)


class _Reject(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Addresses: every address is validated by email-validator's rules (addresses.normalise). The
# common case (an ASCII dot-atom local part at an ASCII host name) is recognised by one regular
# expression that accepts only addresses email-validator accepts and normalises to the same text;
# everything else goes to email-validator itself. tests/test_import.py checks the two agree.

_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_FAST_ADDRESS = re.compile(
    rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+[a-z]{{2,63}}",
    re.IGNORECASE | re.ASCII,
)
_SPECIAL_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def fast_normalise(raw: str) -> str | None:
    """The normalised address when ``raw`` is in the common, plainly valid form; else None."""
    if len(raw) > 254 or not _FAST_ADDRESS.fullmatch(raw):
        return None
    local, _, domain = raw.rpartition("@")
    if len(local) > 64 or len(domain) > 253 or "--" in domain:
        return None
    if domain.rpartition(".")[2].lower() in _SPECIAL_TLDS:
        return None
    return raw.lower()


def normalise_address(raw: str) -> str:
    """``addresses.normalise`` with a fast path; raises ``_Reject`` with the validator's reason."""
    fast = fast_normalise(raw)
    if fast is not None:
        return fast
    try:
        return addresses.normalise(raw)
    except InvalidInput as exc:
        reason = exc.problems[0].message if exc.problems else str(exc)
        raise _Reject(reason) from None


# ---------------------------------------------------------------------------------------------
# Reading the file


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MailerError(f"cannot read {path}: {exc.strerror}", path=path) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(
            [
                Problem(
                    f"not UTF-8 text (byte 0x{data[exc.start]:02x})",
                    path=path,
                    line=line,
                    hint="save the file as 'CSV UTF-8' and import it again",
                )
            ],
            summary=f"cannot read {path}",
        ) from None


def _field_name(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def _read_header(path: Path, reader: Iterator[list[str]]) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(
            [Problem("the file is empty", path=path, line=1, hint="the first line names the columns")]
        ) from None
    except csv.Error as exc:
        raise InvalidInput([Problem(f"not valid CSV: {exc}", path=path, line=1)]) from None
    names: list[str] = []
    problems: list[Problem] = []
    for cell in header:
        name = cell.strip().lower()
        if name not in KNOWN_COLUMNS:
            name = _field_name(cell)
            if not name:
                problems.append(Problem(f"column {cell!r} has no usable name", path=path, line=1))
            elif len(name) > MAX_FIELD_NAME:
                problems.append(Problem(f"column name {name[:20]!r}… is too long", path=path, line=1))
        if name in names:
            problems.append(Problem(f"column {name!r} appears twice", path=path, line=1, field=name))
        names.append(name)
    if "email" not in names:
        problems.append(
            Problem(
                "no email column",
                path=path,
                line=1,
                hint="the first line must name the columns: email, name, postcode, region, interests, "
                "consent_source, consent_date (only email is required)",
            )
        )
    if problems:
        raise InvalidInput(problems, summary=f"{path} cannot be imported")
    return names


def _parse_date(text: str, today: date) -> str:
    """A consent date as ISO text; raises ``_Reject`` when it is not a date or is in the future."""
    try:
        if "/" in text:
            parsed = datetime.strptime(text, "%d/%m/%Y").date()
        elif "T" in text or " " in text:
            parsed = datetime.fromisoformat(text).date()
        else:
            parsed = date.fromisoformat(text)
    except ValueError:
        raise _Reject(f"consent_date {text!r} is not a date (use 2024-03-01 or 01/03/2024)") from None
    if parsed > today:
        raise _Reject(f"consent_date {text!r} is in the future")
    return text if "T" in text or " " in text else parsed.isoformat()


def _clean(text: str) -> tuple[str, bool]:
    """``text`` stripped, with control characters removed; and whether there were any."""
    if text.isprintable():
        return text.strip(), False
    if not addresses.has_control_characters(text):
        return text.strip(), False
    return addresses.clean_name(text), True


class _Checker:
    """Validates one row at a time against the shape."""

    def __init__(self, shape: Shape, today: date) -> None:
        self.shape = shape
        self.today = today
        self.regions = {slug: slug for slug in shape.regions}
        for r in shape.regions.values():
            self.regions.setdefault(r.name.lower(), r.slug)
        self.interests = {slug: slug for slug in shape.interests}
        for i in shape.interests.values():
            self.interests.setdefault(i.name.lower(), i.slug)
        self.dates: dict[str, str] = {}
        self.postcode_regions: dict[str, str | None] = {}

    def check(self, row: int, cells: dict[str, str], extra: Sequence[str]) -> tuple[_Record, bool]:
        """The row's record and whether any text was cleaned; raises ``_Reject``."""
        raw_email = cells["email"].strip()
        if not raw_email:
            raise _Reject("no email address")
        email = normalise_address(raw_email)
        cleaned = False

        name, dirty = _clean(cells.get("name", ""))
        cleaned |= dirty
        if len(name) > MAX_NAME:
            raise _Reject(f"name longer than {MAX_NAME} characters")

        postcode = " ".join(cells.get("postcode", "").upper().split())
        if len(postcode) > MAX_POSTCODE:
            raise _Reject(f"postcode {postcode[:20]!r} is too long")

        region_cell = cells.get("region", "").strip()
        region: str | None
        if region_cell:
            region = self.regions.get(region_cell.lower())
            if region is None:
                raise _Reject(f"unknown region {region_cell!r} (see lists/regions.toml)")
        elif postcode:
            area = postcode[:3]  # enough to decide the postcode area
            if area in self.postcode_regions:
                region = self.postcode_regions[area]
            else:
                region = self.postcode_regions[area] = self.shape.region_for_postcode(postcode)
        else:
            region = None

        chosen: set[str] = set()
        interests_cell = cells.get("interests", "")
        if interests_cell:
            for part in interests_cell.split(";"):
                key = part.strip().lower()
                if key:
                    slug = self.interests.get(key)
                    if slug is None:
                        raise _Reject(f"unknown interest {part.strip()!r} (see lists/interests.toml)")
                    chosen.add(slug)

        source, dirty = _clean(cells.get("consent_source", ""))
        cleaned |= dirty
        if len(source) > MAX_SOURCE:
            raise _Reject(f"consent_source longer than {MAX_SOURCE} characters")

        date_cell = cells.get("consent_date", "").strip()
        consent_date = ""
        if date_cell:
            consent_date = self.dates.get(date_cell, "")
            if not consent_date:
                consent_date = self.dates[date_cell] = _parse_date(date_cell, self.today)

        fields: dict[str, str] = {}
        for name_ in extra:
            value, dirty = _clean(cells[name_])
            if value:
                cleaned |= dirty
                if len(value) > MAX_FIELD_VALUE:
                    raise _Reject(f"{name_} longer than {MAX_FIELD_VALUE} characters")
                fields[name_] = value

        record = _Record(
            row=row,
            email=email,
            address_hash=addresses.address_hash(email),
            name=name,
            postcode=postcode,
            region=region,
            interests=chosen,
            fields=fields,
            consent_source=source,
            consent_date=consent_date,
        )
        return record, cleaned


def _read(
    path: Path, shape: Shape, report: ImportReport, progress: Progress | None
) -> tuple[dict[str, _Record], list[str], list[tuple[Rejection, list[str]]]]:
    """Every valid record by address; the header; and the rejected rows with their cells."""
    text = _decode(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = _read_header(path, reader)
    report.fields = [h for h in header if h not in KNOWN_COLUMNS]
    extra = report.fields
    total = text.count("\n")
    checker = _Checker(shape, datetime.now(UTC).date())
    records: dict[str, _Record] = {}
    rejected: list[tuple[Rejection, list[str]]] = []
    ragged: list[Problem] = []
    width = len(header)
    last_line = reader.line_num
    while True:
        row = last_line + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            raise InvalidInput(
                [Problem(f"not valid CSV: {exc}", path=path, line=reader.line_num)],
                summary=f"{path} cannot be imported",
            ) from None
        if cells is None:
            break
        last_line = reader.line_num
        if not cells or (len(cells) == 1 and not cells[0].strip() and width > 1):
            continue  # a blank line
        report.rows += 1
        if progress is not None and report.rows % CHUNK == 0:
            progress("check", min(last_line, total), total)
        if len(cells) != width:
            ragged.append(
                Problem(
                    f"{len(cells)} cells where the header has {width}",
                    path=path,
                    line=row,
                    hint="quote cells that contain commas",
                )
            )
            if len(ragged) >= 20:
                break
            continue
        values = dict(zip(header, cells, strict=True))
        try:
            record, cleaned = checker.check(row, values, extra)
        except _Reject as exc:
            rejected.append((Rejection(row, values["email"], str(exc)), cells))
            continue
        report.cleaned += cleaned
        earlier = records.get(record.email)
        if earlier is None:
            records[record.email] = record
        else:
            earlier.merge(record)
            report.merged += 1
    if ragged:
        raise InvalidInput(ragged, summary=f"{path} has rows whose cells do not match the header")
    if progress is not None:
        progress("check", total, total)
    report.rejections = [r for r, _cells in rejected]
    return records, header, rejected


def rejected_path_for(path: Path) -> Path:
    """Where the rejected rows of ``path`` go: ``members.csv`` → ``members.rejected.csv``."""
    return path.with_name(path.stem + ".rejected.csv")


def _write_rejected(
    path: Path, header: list[str], rejected: list[tuple[Rejection, list[str]]]
) -> Path | None:
    out = rejected_path_for(path)
    try:
        if not rejected:
            out.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
            return None
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([*header, "row", "reason"])
            for rejection, cells in rejected:
                writer.writerow([*cells, rejection.row, rejection.reason])
    except OSError as exc:
        raise MailerError(f"cannot write the rejected rows to {out}: {exc.strerror}", path=out) from exc
    return out


# ---------------------------------------------------------------------------------------------
# What the database holds already

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _load_existing(conn: Connection, emails: list[str]) -> dict[str, _Existing]:
    """Members already in the database among ``emails``, with their interests and fields."""
    region_slugs: dict[int, str] = {id_: slug for id_, slug in conn.execute(select(Region.id, Region.slug))}
    held = conn.scalar(select(func.count()).select_from(members_t)) or 0
    cols = (members_t.c.id, members_t.c.email, members_t.c.name, members_t.c.postcode, members_t.c.region_id)
    rows: list[Any] = []
    whole = held <= 2 * len(emails)  # most of the table is in the file: read it whole
    if whole:
        rows.extend(conn.execute(select(*cols)).all())
    else:
        for chunk in _chunks(emails, LOOKUP_CHUNK):
            rows.extend(conn.execute(select(*cols).where(members_t.c.email.in_(chunk))).all())
    wanted = set(emails)
    existing = {
        r.email: _Existing(r.id, r.name, r.postcode, region_slugs.get(r.region_id))
        for r in rows
        if r.email in wanted
    }
    by_id = {e.id: e for e in existing.values()}
    interest_q = select(MemberInterest.member_id, Interest.slug).join(
        Interest, Interest.id == MemberInterest.interest_id
    )
    field_q = select(fields_t.c.member_id, fields_t.c.name, fields_t.c.value)
    ids = list(by_id)
    interest_rows: list[Any] = []
    field_rows: list[Any] = []
    if whole:
        interest_rows.extend(conn.execute(interest_q).all())
        field_rows.extend(conn.execute(field_q).all())
    else:
        for id_chunk in _chunks(ids, LOOKUP_CHUNK):
            interest_rows.extend(conn.execute(interest_q.where(MemberInterest.member_id.in_(id_chunk))).all())
            field_rows.extend(conn.execute(field_q.where(fields_t.c.member_id.in_(id_chunk))).all())
    for member_id, slug in interest_rows:
        if member_id in by_id:
            by_id[member_id].interests.add(slug)
    for member_id, name, value in field_rows:
        if member_id in by_id:
            by_id[member_id].fields[name] = value
    return existing


def _load_suppressions(conn: Connection, hashes: list[str]) -> dict[str, str]:
    """Reason of each suppressed hash among ``hashes``."""
    held = conn.scalar(select(func.count()).select_from(Suppression)) or 0
    q = select(Suppression.address_hash, Suppression.reason)
    found: dict[str, str] = {}
    if held <= 2 * len(hashes):
        found.update((h, reason) for h, reason in conn.execute(q))
    else:
        for chunk in _chunks(hashes, LOOKUP_CHUNK):
            found.update(
                (h, reason) for h, reason in conn.execute(q.where(Suppression.address_hash.in_(chunk)))
            )
    wanted = set(hashes)
    return {h: reason for h, reason in found.items() if h in wanted}


# ---------------------------------------------------------------------------------------------
# The import


@dataclass
class _Plan:
    new: list[_Record] = field(default_factory=list)
    updates: list[tuple[int, _Record, _Existing]] = field(default_factory=list)


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
    records, header, rejected = _read(path, shape, report, progress)

    conn = session.connection()
    existing = _load_existing(conn, list(records))
    suppressed = _load_suppressions(conn, [r.address_hash for r in records.values()])

    plan = _Plan()
    for email, record in records.items():
        reason = suppressed.get(record.address_hash)
        old = existing.get(email)
        if reason is not None:
            report.suppressed += 1
            if old is None:
                report.not_added += 1
                note = f"suppressed ({reason}): kept suppressed, not added"
                report.kept_suppressed.append(Notice(record.row, email, note))
                continue
            report.kept_suppressed.append(
                Notice(record.row, email, f"suppressed ({reason}): kept suppressed")
            )
        if old is None:
            plan.new.append(record)
            report.added += 1
        elif _changes(record, old):
            plan.updates.append((old.id, record, old))
            report.updated += 1
        else:
            report.unchanged += 1

    report.rejected_path = _write_rejected(path, header, rejected)
    if not dry_run:
        with _big_cache(conn):
            _apply(conn, plan, path, progress)
    return report


@contextmanager
def _big_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, a page cache big enough for the indexes of a large import (default: 2 MB)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MiB, allocated only as used
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")


def _changes(record: _Record, old: _Existing) -> bool:
    return bool(
        (record.name and record.name != old.name)
        or (record.postcode and record.postcode != old.postcode)
        or (record.region is not None and record.region != old.region)
        or not record.interests <= old.interests
        or any(old.fields.get(k) != v for k, v in record.fields.items())
    )


def _ids(
    conn: Connection, model: type[Region] | type[Interest], wanted: Iterable[str], what: str
) -> dict[str, int]:
    ids: dict[str, int] = {slug: id_ for slug, id_ in conn.execute(select(model.slug, model.id))}
    missing = sorted(set(wanted) - set(ids))
    if missing:
        raise MailerError(
            f"{what} {', '.join(missing)} not in the database yet",
            hint="run `mailer lists sync` to load lists/regions.toml and lists/interests.toml first",
        )
    return ids


_NEXT_MEMBER_IDS = sql_text(
    "SELECT nextval(pg_get_serial_sequence('members', 'id')) FROM generate_series(1, :n)"
)


def _new_member_ids(conn: Connection, count: int) -> list[int]:
    """Ids for ``count`` new members, taken before they are inserted.

    PostgreSQL: from the table's sequence. SQLite: after the largest id. SQLite has one writer at a
    time and from the first chunk on this transaction holds the write lock; a member added by
    another process in the instant before the first chunk is written makes the insert fail on the
    primary key, and the whole import rolls back: an error, never a half-done import.
    """
    if conn.dialect.name == "postgresql":
        return list(conn.execute(_NEXT_MEMBER_IDS, {"n": count}).scalars())
    start = (conn.scalar(select(func.max(members_t.c.id))) or 0) + 1
    return list(range(start, start + count))


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, values already as the database stores them) into
    ``table`` inside the current transaction, by the fastest path each driver offers.

    SQLite: the compiled INSERT through the driver's ``executemany``, with none of SQLAlchemy's
    per-row parameter processing. PostgreSQL: ``COPY … FROM STDIN`` on the same connection, several
    times faster than ``executemany`` (a statement per row) or multi-row VALUES.
    """
    if not rows:
        return
    columns = list(rows[0])
    if conn.dialect.name != "postgresql":
        compiled = insert(table).compile(dialect=conn.dialect, column_keys=columns)
        order = compiled.positiontup or []
        conn.exec_driver_sql(str(compiled), [tuple(row[k] for k in order) for row in rows])
        return
    import psycopg
    from psycopg import sql

    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except psycopg.Error as exc:  # raise it as SQLAlchemy would have (IntegrityError, …)
        statement = copy_sql.as_string(raw)
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def _apply(conn: Connection, plan: _Plan, path: Path, progress: Progress | None) -> None:
    records = [r for r in plan.new] + [r for _id, r, _old in plan.updates]
    region_ids = _ids(conn, Region, {r.region for r in records if r.region}, "region(s)")
    interest_ids = _ids(conn, Interest, {s for r in records for s in r.interests}, "interest(s)")
    total = len(records)
    done = 0

    # The timestamp as the dialect stores it (text on SQLite), converted once rather than per row.
    naive = _utcnow().astimezone(UTC).replace(tzinfo=None)
    to_db = DateTime().bind_processor(conn.dialect)
    stamp = to_db(naive) if to_db else naive
    stamp_type = String() if conn.dialect.name == "sqlite" else DateTime()

    for chunk in _chunks(plan.new):
        ids = _new_member_ids(conn, len(chunk))
        member_rows = [
            {
                "id": i,
                "email": r.email,
                "address_hash": r.address_hash,
                "name": r.name,
                "postcode": r.postcode,
                "region_id": region_ids[r.region] if r.region else None,
                "created_at": stamp,
                "updated_at": stamp,
            }
            for i, r in zip(ids, chunk, strict=True)
        ]
        _insert_many(conn, members_t, member_rows)
        pairs = [
            {"member_id": i, "interest_id": interest_ids[s]}
            for i, r in zip(ids, chunk, strict=True)
            for s in r.interests
        ]
        if pairs:
            _insert_many(conn, interests_t, pairs)
        values = [
            {"member_id": i, "name": k, "value": v}
            for i, r in zip(ids, chunk, strict=True)
            for k, v in r.fields.items()
        ]
        if values:
            _insert_many(conn, fields_t, values)
        events = [
            {
                "member_id": i,
                "address_hash": r.address_hash,
                "action": "subscribe",
                "source": r.consent_source or "import",
                "wording": "",
                "campaign": None,
                "detail": _detail(path, r),
                "created_at": stamp,
            }
            for i, r in zip(ids, chunk, strict=True)
        ]
        if events:
            _insert_many(conn, consent_t, events)
        done += len(chunk)
        if progress is not None:
            progress("write", done, total)

    update_member = (
        update(members_t)
        .where(members_t.c.id == bindparam("b_id"))
        .values(
            name=bindparam("b_name"),
            postcode=bindparam("b_postcode"),
            region_id=bindparam("b_region_id"),
            updated_at=bindparam("b_updated_at", type_=stamp_type),
        )
    )
    update_field = (
        update(fields_t)
        .where(fields_t.c.member_id == bindparam("b_member_id"), fields_t.c.name == bindparam("b_name"))
        .values(value=bindparam("b_value"))
    )
    for chunk_ in _chunks(plan.updates):
        rows, pairs, new_fields, changed_fields = [], [], [], []
        for member_id, r, old in chunk_:
            region = r.region or old.region
            rows.append(
                {
                    "b_id": member_id,
                    "b_name": r.name or old.name,
                    "b_postcode": r.postcode or old.postcode,
                    "b_region_id": region_ids[region] if region else None,
                    "b_updated_at": stamp,
                }
            )
            pairs.extend(
                {"member_id": member_id, "interest_id": interest_ids[s]}
                for s in sorted(r.interests - old.interests)
            )
            for k, v in r.fields.items():
                if k not in old.fields:
                    new_fields.append({"member_id": member_id, "name": k, "value": v})
                elif old.fields[k] != v:
                    changed_fields.append({"b_member_id": member_id, "b_name": k, "b_value": v})
        conn.execute(update_member, rows)
        if pairs:
            _insert_many(conn, interests_t, pairs)
        if new_fields:
            _insert_many(conn, fields_t, new_fields)
        if changed_fields:
            conn.execute(update_field, changed_fields)
        done += len(chunk_)
        if progress is not None:
            progress("write", done, total)


def _detail(path: Path, record: _Record) -> str:
    detail = f"imported from {path.name} line {record.row}"
    if record.consent_date:
        detail += f"; consent given {record.consent_date}"
    return detail
