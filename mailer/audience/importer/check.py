"""Checking one row of an import file against the shape: the address, the name, the region and
interests, the consent date, the member fields.

A row that fails a check is rejected with its reason (``Reject``); a row that passes becomes a
``Record``, and rows for one address are merged into one (``Record.merge``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from mailer.audience import addresses
from mailer.audience.importer.columns import Mapping
from mailer.audience.importer.consent_columns import WORDS_HINT, read_status
from mailer.audience.mailable import SUBSCRIBED, worse
from mailer.audience.shape import Shape
from mailer.errors import InvalidInput

MAX_NAME, MAX_POSTCODE, MAX_SOURCE, MAX_FIELD_VALUE = 200, 16, 32, 1000
MAX_FIRST_NAME = 100
MAX_STATUS_VALUE = 60  # of a status cell, in the status source
MAX_BASIS = 200  # of a --consent basis, in each member's status source and consent-log line


@dataclass(frozen=True)
class Options:
    """How an import reads what its file leaves open (``lists import`` options)."""

    consent: str | None = None  # --consent "<basis>": the basis for rows no status column speaks for
    unknown_region_blank: bool = False  # --unknown-region blank: an unknown region is no region
    first_name_from_name: bool = False  # --first-name-from-name: greet by the name's first word


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
    status: str = SUBSCRIBED  # what the file says: subscribed, not-opted-in, unsubscribed, cleaned
    status_source: str = ""  # "import:FILE:COLUMN=VALUE"
    first_name: str = ""

    def merge(self, later: Record) -> None:
        self.name = later.name or self.name
        self.first_name = later.first_name or self.first_name
        self.postcode = later.postcode or self.postcode
        self.region = later.region or self.region
        self.interests |= later.interests
        self.fields.update(later.fields)
        self.consent_source = later.consent_source or self.consent_source
        self.consent_date = later.consent_date or self.consent_date
        if worse(self.status, later.status) != self.status:  # a "no" on any row wins
            self.status, self.status_source = later.status, later.status_source


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


def clean(text: str) -> tuple[str, bool]:
    """``text`` stripped, with control characters removed; and whether there were any."""
    if text.isprintable():
        return text.strip(), False
    if not addresses.has_control_characters(text):
        return text.strip(), False
    return addresses.clean_name(text), True


class Checker:
    """Validates one row at a time against the shape, reading its cells where ``mapping`` says."""

    def __init__(
        self,
        shape: Shape,
        mapping: Mapping,
        today: date,
        *,
        file: str = "",
        options: Options | None = None,
        hasher: Callable[[str], str],
    ) -> None:
        self.hasher = hasher  # the suppression hash (addresses.address_hash, keyed: docs/data.md)
        self.shape = shape
        self.m = mapping
        self.today = today
        self.file = file
        self.options = options or Options()
        self.regions = {slug: slug for slug in shape.regions}
        for r in shape.regions.values():
            self.regions.setdefault(r.name.lower(), r.slug)
        self.interests = {slug: slug for slug in shape.interests}
        for i in shape.interests.values():
            self.interests.setdefault(i.name.lower(), i.slug)
        self.dates: dict[str, str] = {}
        self.postcode_regions: dict[str, str | None] = {}
        self.blank_regions = 0  # rows whose unknown region was left blank (--unknown-region blank)
        consent = clean(self.options.consent or "")[0][:MAX_BASIS]  # typed on a command line: no CR/LF
        self.basis = f"import:{file}:--consent={consent}" if consent else ""

    def _name(self, cells: Sequence[str]) -> tuple[str, str, bool]:
        """The Name cell, else the First Name and Last Name cells joined; the first name; whether
        any was cleaned."""
        m = self.m
        first, dirty_first = clean(cells[m.first_name]) if m.first_name is not None else ("", False)
        if m.name is not None:
            name, dirty = clean(cells[m.name])
            if name or (m.first_name is None and m.last_name is None):
                return name, self._first(first, name), dirty or dirty_first
        last, dirty_last = clean(cells[m.last_name]) if m.last_name is not None else ("", False)
        name = f"{first} {last}".strip()
        return name, self._first(first, name), dirty_first or dirty_last

    def _first(self, first: str, name: str) -> str:
        if first or not self.options.first_name_from_name or not name:
            return first
        return name.split()[0]

    def _region(self, cells: Sequence[str], postcode: str) -> str | None:
        m = self.m
        region_cell = cells[m.region].strip() if m.region is not None else ""
        if region_cell:
            region = self.regions.get(region_cell.lower())
            if region is not None:
                return region
            if not self.options.unknown_region_blank:
                raise Reject(
                    f"unknown region {region_cell!r} (see lists/regions.toml; "
                    "--unknown-region blank imports such rows with no region)"
                )
            self.blank_regions += 1
            return None
        if not postcode:
            return None
        area = postcode[:3]  # enough to decide the postcode area
        if area in self.postcode_regions:
            return self.postcode_regions[area]
        region = self.postcode_regions[area] = self.shape.region_for_postcode(postcode)
        return region

    def _interests(self, cells: Sequence[str]) -> set[str]:
        m = self.m
        chosen: set[str] = set()
        cell = cells[m.interests] if m.interests is not None else ""
        if not cell:
            return chosen
        # ";" as mailer writes them; "," as CRM tag lists do ("a, b" or Mailchimp's "a","b").
        for part in cell.replace(",", ";").split(";"):
            key = part.strip().strip('"').strip().lower()
            if key:
                slug = self.interests.get(key)
                if slug is None:
                    raise Reject(f"unknown interest {part.strip()!r} (see lists/interests.toml)")
                chosen.add(slug)
        return chosen

    def _consent(self, cells: Sequence[str]) -> tuple[str, str, bool]:
        """The consent_source cell, the consent date as ISO text, whether the source was cleaned."""
        m = self.m
        source, dirty = clean(cells[m.consent_source]) if m.consent_source is not None else ("", False)
        if len(source) > MAX_SOURCE:
            raise Reject(f"consent_source longer than {MAX_SOURCE} characters")
        date_cell = cells[m.consent_date].strip() if m.consent_date is not None else ""
        consent_date = ""
        if date_cell:
            consent_date = self.dates.get(date_cell, "")
            if not consent_date:
                consent_date = self.dates[date_cell] = _parse_date(date_cell, self.today)
        return source, consent_date, dirty

    def _status(self, cells: Sequence[str], consent_source: str) -> tuple[str, str]:
        """The row's status and its source: the most final of its status columns' (a "no" wins),
        else the basis the file gives (``consent_source``, ``--consent``); raises ``Reject``."""
        status: str | None = None
        source = ""
        for index, header, kind in self.m.status:
            cell = cells[index].strip()
            try:
                said = read_status(kind, cell)
            except ValueError:
                raise Reject(
                    f"column {header!r}: {cell[:MAX_STATUS_VALUE]!r} is not a status mailer knows "
                    f"(use {WORDS_HINT}); the row was not imported"
                ) from None
            if not source or (said is not None and worse(status, said) != status):
                source = f"import:{self.file}:{header}={clean(cell)[0][:MAX_STATUS_VALUE]}"
            status = worse(status, said)
        if self.m.status:
            return status or SUBSCRIBED, source
        if consent_source:
            return SUBSCRIBED, f"import:{self.file}:consent_source={consent_source}"
        if self.basis:
            return SUBSCRIBED, self.basis
        raise Reject(
            "no consent_source and no status column says this address may be mailed "
            '(add one, or give the basis with --consent "<basis>")'
        )

    def _fields(self, cells: Sequence[str]) -> tuple[dict[str, str], bool]:
        fields: dict[str, str] = {}
        cleaned = False
        for index, field_name in self.m.fields:
            value, dirty = clean(cells[index])
            if value:
                cleaned |= dirty
                if len(value) > MAX_FIELD_VALUE:
                    raise Reject(f"{field_name} longer than {MAX_FIELD_VALUE} characters")
                fields[field_name] = value
        return fields, cleaned

    def check(self, row: int, cells: Sequence[str]) -> tuple[Record, bool]:
        """The row's record and whether any text was cleaned; raises ``Reject``."""
        m = self.m
        raw_email = cells[m.email].strip()
        if not raw_email:
            raise Reject("no email address")
        email = normalise_address(raw_email)
        name, first_name, cleaned = self._name(cells)
        if len(name) > MAX_NAME:
            raise Reject(f"name longer than {MAX_NAME} characters")
        if len(first_name) > MAX_FIRST_NAME:
            raise Reject(f"first name longer than {MAX_FIRST_NAME} characters")
        postcode = " ".join(cells[m.postcode].upper().split()) if m.postcode is not None else ""
        if len(postcode) > MAX_POSTCODE:
            raise Reject(f"postcode {postcode[:20]!r} is too long")
        region = self._region(cells, postcode)
        chosen = self._interests(cells)
        source, consent_date, dirty = self._consent(cells)
        status, status_source = self._status(cells, source)
        fields, dirty_fields = self._fields(cells)
        record = Record(
            row=row,
            email=email,
            address_hash=self.hasher(email),
            name=name,
            postcode=postcode,
            region=region,
            interests=chosen,
            fields=fields,
            consent_source=source,
            consent_date=consent_date,
            status=status,
            status_source=status_source,
            first_name=first_name,
        )
        return record, cleaned or dirty or dirty_fields
