"""Checking one row of an import file against the shape: the address, the name, the region and
interests, the consent date, the member fields.

A row that fails a check is rejected with its reason (``Reject``); a row that passes becomes a
``Record``, and rows for one address are merged into one (``Record.merge``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from mailer.audience import addresses
from mailer.audience.importer.columns import Mapping
from mailer.audience.shape import Shape
from mailer.errors import InvalidInput

MAX_NAME, MAX_POSTCODE, MAX_SOURCE, MAX_FIELD_VALUE = 200, 16, 32, 1000


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

    def __init__(self, shape: Shape, mapping: Mapping, today: date) -> None:
        self.shape = shape
        self.m = mapping
        self.today = today
        self.regions = {slug: slug for slug in shape.regions}
        for r in shape.regions.values():
            self.regions.setdefault(r.name.lower(), r.slug)
        self.interests = {slug: slug for slug in shape.interests}
        for i in shape.interests.values():
            self.interests.setdefault(i.name.lower(), i.slug)
        self.dates: dict[str, str] = {}
        self.postcode_regions: dict[str, str | None] = {}

    def _name(self, cells: Sequence[str]) -> tuple[str, bool]:
        """The Name cell, else the First Name and Last Name cells joined."""
        m = self.m
        if m.name is not None:
            name, dirty = clean(cells[m.name])
            if name or (m.first_name is None and m.last_name is None):
                return name, dirty
        first, dirty_first = clean(cells[m.first_name]) if m.first_name is not None else ("", False)
        last, dirty_last = clean(cells[m.last_name]) if m.last_name is not None else ("", False)
        return f"{first} {last}".strip(), dirty_first or dirty_last

    def check(self, row: int, cells: Sequence[str]) -> tuple[Record, bool]:
        """The row's record and whether any text was cleaned; raises ``Reject``."""
        m = self.m
        raw_email = cells[m.email].strip()
        if not raw_email:
            raise Reject("no email address")
        email = normalise_address(raw_email)

        name, cleaned = self._name(cells)
        if len(name) > MAX_NAME:
            raise Reject(f"name longer than {MAX_NAME} characters")

        postcode = " ".join(cells[m.postcode].upper().split()) if m.postcode is not None else ""
        if len(postcode) > MAX_POSTCODE:
            raise Reject(f"postcode {postcode[:20]!r} is too long")

        region_cell = cells[m.region].strip() if m.region is not None else ""
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
        interests_cell = cells[m.interests] if m.interests is not None else ""
        if interests_cell:
            for part in interests_cell.split(";"):
                key = part.strip().lower()
                if key:
                    slug = self.interests.get(key)
                    if slug is None:
                        raise Reject(f"unknown interest {part.strip()!r} (see lists/interests.toml)")
                    chosen.add(slug)

        source, dirty = clean(cells[m.consent_source]) if m.consent_source is not None else ("", False)
        cleaned |= dirty
        if len(source) > MAX_SOURCE:
            raise Reject(f"consent_source longer than {MAX_SOURCE} characters")

        date_cell = cells[m.consent_date].strip() if m.consent_date is not None else ""
        consent_date = ""
        if date_cell:
            consent_date = self.dates.get(date_cell, "")
            if not consent_date:
                consent_date = self.dates[date_cell] = _parse_date(date_cell, self.today)

        fields: dict[str, str] = {}
        for index, field_name in m.fields:
            value, dirty = clean(cells[index])
            if value:
                cleaned |= dirty
                if len(value) > MAX_FIELD_VALUE:
                    raise Reject(f"{field_name} longer than {MAX_FIELD_VALUE} characters")
                fields[field_name] = value

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
