"""Which column of an import file holds what: the header mapped onto member columns.

A header cell is matched without regard to case, spaces or punctuation, so the headers of common
CRM and mailing-list exports are recognised as they are: ``Email Address``, ``E-mail``,
``email_address`` and ``Email`` all hold the address; ``First Name`` and ``Last Name`` are joined
into the name; ``Post Code``, ``Postal Code``, ``ZIP`` and ``Zip Code`` hold the postcode (see
``ALIASES``). ``--map "HEADER=TARGET"`` (``explicit``) says it for any other header, or overrides
a recognised one: TARGET is a member column, ``field.NAME`` (a member field), or ``-`` (leave the
column out). Every other column becomes a member field named after its header (``Date Joined`` →
``date_joined``).

Two columns for one target (``Email`` and ``E-mail Address``) are refused, naming both, rather
than guessing which one holds the address.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailer.audience.importer.consent_columns import (
    BOUNCED,
    NOT_EMAIL,
    OPT_IN,
    OPT_OUT,
    WORDS,
    StatusKind,
    status_kind,
)
from mailer.errors import InvalidInput, Problem, suggest

TARGETS = (
    "email",
    "name",
    "first_name",
    "last_name",
    "postcode",
    "region",
    "interests",
    "consent_source",
    "consent_date",
    "opted_in",
    "opted_out",
    "bounced",
    "status",
)
SKIP = "-"
# ``--map "HEADER=opted_in"`` and its like name a status column of that kind (consent_columns).
STATUS_TARGETS = {
    "opted_in": StatusKind(OPT_IN),
    "opted_out": StatusKind(OPT_OUT),
    "bounced": StatusKind(BOUNCED),
    "status": StatusKind(WORDS),
}
STATUS = "status"  # the target of every status column in ``Mapping.used``
FIELD_PREFIX = "field."
MAX_COLUMNS = 1000  # a header wider than this is refused (the widest CRM exports have a few hundred)
MAX_FIELD_NAME = 100

# Header cells, reduced by ``header_key`` (lower case, letters and digits only), that name a target.
ALIASES: dict[str, str] = {
    **dict.fromkeys(("email", "emailaddress", "emailaddr", "primaryemail", "emailid"), "email"),
    **dict.fromkeys(("name", "fullname", "contactname", "displayname"), "name"),
    **dict.fromkeys(
        ("firstname", "forename", "givenname", "first", "preferredname", "knownas"), "first_name"
    ),
    **dict.fromkeys(("lastname", "surname", "familyname", "last"), "last_name"),
    **dict.fromkeys(
        (
            "postcode",
            "postalcode",
            "zip",
            "zipcode",
            "postcodezip",
            "zippostalcode",
            "postalzipcode",
            "zippostcode",
            "mailingpostalcode",
            "mailingzippostalcode",
            "primaryzip",
            "homepostcode",
            "addresspostcode",
            "postcodezipcode",
        ),
        "postcode",
    ),
    **dict.fromkeys(
        ("region", "localgroup", "group", "branch", "area", "localbranch", "localarea", "chapter"), "region"
    ),
    **dict.fromkeys(
        (
            "interests",
            "interest",
            "interestssemicolonseparated",
            "tags",
            "topics",
            "topic",
            "campaigns",
        ),
        "interests",
    ),
    **dict.fromkeys(("datejoined", "joined", "joindate", "joiningdate", "membersince"), "field.joined"),
    "consentsource": "consent_source",
    **dict.fromkeys(("consentdate", "optindate", "optintime"), "consent_date"),
}

# In a Mailchimp export, REGION and CC are where Mailchimp located the address, not a local group.
MAILCHIMP = {"region": "field.mailchimp_region", "cc": "field.mailchimp_cc"}

KNOWN = (
    "email (Email Address, E-mail, …), name (Full Name; or First Name + Last Name), "
    "postcode (Post Code, Postal Code, ZIP, …), region (Local Group, Group, Branch, Area), "
    "interests (Tags, Topics), consent_source, consent_date, and status columns (Opted In, "
    "Do Not Email, Email Opt Out, Unsubscribed, … see docs/import.md)"
)
LOOKED_FOR = ("email", "region", "interests", STATUS)  # the dry run says loudly which are missing


def header_key(cell: str) -> str:
    """``cell`` in lower case with everything but letters and digits removed: ``E-mail Address`` →
    ``emailaddress``."""
    return "".join(c for c in cell.casefold() if c.isalnum())


def field_name(cell: str) -> str:
    """The member field a column becomes: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", cell.strip().lower()).strip("_")


@dataclass(frozen=True)
class Mapping:
    """Where each target is in a row (``None``: no such column), the member fields, and for the
    report each header cell with what it became."""

    width: int
    email: int
    name: int | None
    first_name: int | None
    last_name: int | None
    postcode: int | None
    region: int | None
    interests: int | None
    consent_source: int | None
    consent_date: int | None
    fields: tuple[tuple[int, str], ...]  # (column, field name)
    used: tuple[tuple[str, str], ...]  # (header cell, target): "email", "field.team", "status", "-"
    status: tuple[tuple[int, str, StatusKind], ...] = ()  # (column, header cell, kind)
    not_email: tuple[str, ...] = ()  # phone, post and SMS flags: fields, never a status

    @property
    def field_names(self) -> list[str]:
        return [name for _i, name in self.fields]

    @property
    def missing(self) -> list[str]:
        """Which of email, region, interests and a status the file has no column for."""
        found = {target for _cell, target in self.used}
        return [target for target in LOOKED_FOR if target not in found]

    def describe(self) -> str:
        """One line for the report: ``Email Address → email, Post Code → postcode, field.team``."""
        parts = []
        for cell, target in self.used:
            if target == SKIP:
                parts.append(f"{cell} → (left out)")
            elif cell == target.removeprefix(FIELD_PREFIX):
                parts.append(target)
            else:
                parts.append(f"{cell} → {target}")
        return ", ".join(parts)


def parse_map(option: str, path: Path) -> tuple[str, str]:
    """``"Email Address=email"`` → (``Email Address``, ``email``); raises ``InvalidInput``."""
    header, sep, target = option.rpartition("=")
    if not sep or not header.strip():
        raise InvalidInput(
            [
                Problem(
                    f"--map {option!r} is not HEADER=TARGET",
                    path=path,
                    line=1,
                    hint='for example --map "Email Address=email"',
                )
            ],
            summary=f"{path} cannot be imported",
        )
    return header.strip(), target.strip()


def _target(option: str, target: str, path: Path) -> str:
    """The canonical target of a --map option, or an error naming it."""
    lowered = target.lower()
    if lowered == SKIP:
        return lowered
    lowered = lowered.replace("-", "_")  # opted-in, opted_in
    if lowered in TARGETS:
        return lowered
    if lowered.startswith(FIELD_PREFIX):
        name = field_name(target[len(FIELD_PREFIX) :])
        if name and len(name) <= MAX_FIELD_NAME:
            return FIELD_PREFIX + name
    hint = suggest(lowered, TARGETS, "columns")
    raise InvalidInput(
        [
            Problem(
                f"--map {option!r}: {target!r} is not a column mailer knows",
                path=path,
                line=1,
                hint=f"{hint} Map to one of {', '.join(TARGETS)}; field.NAME for a member field; "
                "or - to leave the column out",
            )
        ],
        summary=f"{path} cannot be imported",
    )


def _short(cells: Sequence[str], shown: int = 12) -> str:
    names = [repr(c[:40]) for c in cells[:shown]]
    return ", ".join(names) + (f" and {len(cells) - shown} more" if len(cells) > shown else "")


def _too_wide(path: Path, header: Sequence[str]) -> None:
    if len(header) > MAX_COLUMNS:
        raise InvalidInput(
            [
                Problem(
                    f"the header has {len(header):,} columns; an import takes at most {MAX_COLUMNS:,}",
                    path=path,
                    line=1,
                    hint="save a copy with only the columns you need",
                )
            ],
            summary=f"{path} cannot be imported",
        )


def _explicit(
    path: Path, header: Sequence[str], keys: Sequence[str], explicit: Sequence[str], problems: list[Problem]
) -> dict[int, str]:
    """The column each ``--map`` option names, with its target."""
    chosen: dict[int, str] = {}
    for option in explicit:
        cell, target = parse_map(option, path)
        target = _target(option, target, path)
        key = header_key(cell)
        matches = [i for i, k in enumerate(keys) if k == key and key]
        if not matches:
            problems.append(
                Problem(
                    f"--map {option!r}: the file has no column {cell!r}",
                    path=path,
                    line=1,
                    hint=f"its columns: {_short(header)}",
                )
            )
        for i in matches:
            chosen[i] = target
    return chosen


def _recognised(key: str, mailchimp: bool) -> str | None:
    """The target a header key names by itself: a member column, ``status``, or None."""
    if mailchimp and key in MAILCHIMP:
        return MAILCHIMP[key]
    if status_kind(key) is not None:
        return STATUS
    return ALIASES.get(key)


def _as_field(path: Path, i: int, cell: str, problems: list[Problem]) -> str:
    name = field_name(cell)
    if not name:
        problems.append(
            Problem(
                f"column {i + 1} ({cell!r}) has no usable name",
                path=path,
                line=1,
                hint=f'name it, or leave it out with --map "{cell}=-"',
            )
        )
    elif len(name) > MAX_FIELD_NAME:
        problems.append(Problem(f"column name {name[:20]!r}… is too long", path=path, line=1))
    return FIELD_PREFIX + name


def _duplicates(
    path: Path, header: Sequence[str], by_target: dict[str, list[int]], problems: list[Problem]
) -> None:
    for target, columns in by_target.items():
        if len(columns) < 2 or target == STATUS:  # a file may say it in several status columns
            continue
        named = [header[i] for i in columns]
        if len(set(named)) == 1:
            times = "twice" if len(columns) == 2 else f"{len(columns)} times"
            message = f"column {named[0]!r} appears {times}"
        else:
            both = "both" if len(columns) == 2 else "all"
            message = f"columns {_short(named)} {both} map to {target}"
        hint = f'keep one: --map "{named[-1]}=-" leaves a column out'
        if target.startswith(FIELD_PREFIX):
            hint = "rename one"
        problems.append(
            Problem(message, path=path, line=1, field=target.removeprefix(FIELD_PREFIX), hint=hint)
        )


def map_columns(path: Path, header: Sequence[str], explicit: Sequence[str] = ()) -> Mapping:
    """The mapping of ``header`` (the file's first row), with the ``--map`` options ``explicit``;
    raises ``InvalidInput`` naming the file, line 1 and every problem."""
    _too_wide(path, header)
    problems: list[Problem] = []
    keys = [header_key(cell) for cell in header]
    chosen = _explicit(path, header, keys, explicit, problems)
    mailchimp = "memberrating" in keys and "leid" in keys
    targets: list[str] = []
    status: list[tuple[int, str, StatusKind]] = []
    for i, cell in enumerate(header):
        target = chosen.get(i) or _recognised(keys[i], mailchimp) or _as_field(path, i, cell, problems)
        if target == STATUS and i not in chosen:
            status.append((i, cell, status_kind(keys[i]) or StatusKind(WORDS)))
        elif target in STATUS_TARGETS:
            status.append((i, cell, STATUS_TARGETS[target]))
            target = STATUS
        targets.append(target)
    by_target: dict[str, list[int]] = {}
    for i, target in enumerate(targets):
        if target != SKIP:
            by_target.setdefault(target, []).append(i)
    _duplicates(path, header, by_target, problems)
    if "email" not in by_target:
        problems.append(
            Problem(
                "no email column",
                path=path,
                line=1,
                hint=f"the first line names the columns; recognised: {KNOWN}; only email is required. "
                'Name another with --map, e.g. --map "Contact=email"',
            )
        )
    if problems:
        raise InvalidInput(problems[:20], summary=f"{path} cannot be imported")

    def at(target: str) -> int | None:
        columns = by_target.get(target)
        return columns[0] if columns else None

    return Mapping(
        width=len(header),
        email=by_target["email"][0],
        name=at("name"),
        first_name=at("first_name"),
        last_name=at("last_name"),
        postcode=at("postcode"),
        region=at("region"),
        interests=at("interests"),
        consent_source=at("consent_source"),
        consent_date=at("consent_date"),
        fields=tuple(
            (i, t.removeprefix(FIELD_PREFIX)) for i, t in enumerate(targets) if t.startswith(FIELD_PREFIX)
        ),
        used=tuple(zip(header, targets, strict=True)),
        status=tuple(status),
        not_email=tuple(cell for cell, key in zip(header, keys, strict=True) if key in NOT_EMAIL),
    )
