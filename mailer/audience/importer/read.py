"""Reading an import file: decoding, the header, and checking each row against the shape.

Every row is checked before anything is written. A row that fails a check is rejected with its
reason (``Reject``); rows for one address are merged into one ``Record``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from mailer.audience import addresses
from mailer.audience.exports import FORMULA_LEADS, unneutralise
from mailer.audience.importer.report import CHUNK, ImportReport, Progress, Rejection
from mailer.audience.shape import Shape
from mailer.errors import InvalidInput, MailerError, Problem

KNOWN_COLUMNS = ("email", "name", "postcode", "region", "interests", "consent_source", "consent_date")
MAX_NAME, MAX_POSTCODE, MAX_SOURCE, MAX_FIELD_NAME, MAX_FIELD_VALUE = 200, 16, 32, 100, 1000


@dataclass(slots=True)
class Record:
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

    def merge(self, later: Record) -> None:
        self.name = later.name or self.name
        self.postcode = later.postcode or self.postcode
        self.region = later.region or self.region
        self.interests |= later.interests
        self.fields.update(later.fields)
        self.consent_source = later.consent_source or self.consent_source
        self.consent_date = later.consent_date or self.consent_date


class Reject(Exception):
    """A row that cannot be imported; the message says why."""


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
    """``addresses.mailable`` with a fast path; raises ``Reject`` with the validator's reason, or
    because the local part is not ASCII (mailer sends without SMTPUTF8)."""
    fast = fast_normalise(raw)
    if fast is not None:
        return fast
    try:
        return addresses.mailable(raw)
    except InvalidInput as exc:
        reason = exc.problems[0].message if exc.problems else str(exc)
        raise Reject(reason) from None


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
    """A consent date as ISO text; raises ``Reject`` when it is not a date or is in the future."""
    try:
        if "/" in text:
            parsed = datetime.strptime(text, "%d/%m/%Y").date()
        elif "T" in text or " " in text:
            parsed = datetime.fromisoformat(text).date()
        else:
            parsed = date.fromisoformat(text)
    except ValueError:
        raise Reject(f"consent_date {text!r} is not a date (use 2024-03-01 or 01/03/2024)") from None
    if parsed > today:
        raise Reject(f"consent_date {text!r} is in the future")
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

    def check(self, row: int, cells: dict[str, str], extra: Sequence[str]) -> tuple[Record, bool]:
        """The row's record and whether any text was cleaned; raises ``Reject``."""
        raw_email = cells["email"].strip()
        if not raw_email:
            raise Reject("no email address")
        email = normalise_address(raw_email)
        cleaned = False

        name, dirty = _clean(cells.get("name", ""))
        cleaned |= dirty
        if len(name) > MAX_NAME:
            raise Reject(f"name longer than {MAX_NAME} characters")

        postcode = " ".join(cells.get("postcode", "").upper().split())
        if len(postcode) > MAX_POSTCODE:
            raise Reject(f"postcode {postcode[:20]!r} is too long")

        region_cell = cells.get("region", "").strip()
        region: str | None
        if region_cell:
            region = self.regions.get(region_cell.lower())
            if region is None:
                raise Reject(f"unknown region {region_cell!r} (see lists/regions.toml)")
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
                        raise Reject(f"unknown interest {part.strip()!r} (see lists/interests.toml)")
                    chosen.add(slug)

        source, dirty = _clean(cells.get("consent_source", ""))
        cleaned |= dirty
        if len(source) > MAX_SOURCE:
            raise Reject(f"consent_source longer than {MAX_SOURCE} characters")

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
                    raise Reject(f"{name_} longer than {MAX_FIELD_VALUE} characters")
                fields[name_] = value

        record = Record(
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


def read(
    path: Path, shape: Shape, report: ImportReport, progress: Progress | None
) -> tuple[dict[str, Record], list[str], list[tuple[Rejection, list[str]]]]:
    """Every valid record by address; the header; and the rejected rows with their cells."""
    text = _decode(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = _read_header(path, reader)
    report.fields = [h for h in header if h not in KNOWN_COLUMNS]
    extra = report.fields
    total = text.count("\n")
    # Cells a spreadsheet-safe export wrote with a ' before them ('=…, '+44 …): the ' comes off.
    quoted = any("'" + lead in text for lead in FORMULA_LEADS)
    checker = _Checker(shape, datetime.now(UTC).date())
    records: dict[str, Record] = {}
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
        values = dict(zip(header, map(unneutralise, cells) if quoted else cells, strict=True))
        try:
            record, cleaned = checker.check(row, values, extra)
        except Reject as exc:
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
