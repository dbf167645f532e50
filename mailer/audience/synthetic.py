"""Synthetic members for the demo and the benchmarks: seeded, so the same seed gives the same rows.

Members are spread over the shape's regions, mostly the leaf regions (local groups); where a region
has a postcode area their postcode lies in it, and about one in five of those leaves the region
column empty so that the import assigns it from the postcode. Addresses are unique and at
example.org (some with ``+tags`` or capitals, which the import normalises); some names are
non-ASCII ("Zoë Ó Briain"). Two extra columns, ``student`` and ``joined``, become member fields.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

from mailer.audience.shape import Shape

COLUMNS = [
    "email",
    "name",
    "postcode",
    "region",
    "interests",
    "consent_source",
    "consent_date",
    "student",
    "joined",
]

FIRST_NAMES = [
    "Alice", "Amir", "Anna", "Ben", "Bethan", "Chloé", "Chris", "Dafydd", "Deepa", "Eilidh",
    "Emma", "Farah", "François", "Grace", "Graham", "Hannah", "Ifeoma", "Jack", "James", "José",
    "Kwame", "Laura", "Łukasz", "Mairéad", "Mohammed", "Nadia", "Niamh", "Oliver", "Priya", "Rachel",
    "Rhys", "Ruth", "Sam", "Sarah", "Siobhán", "Søren", "Tom", "Yusuf", "Zoë", "Ayşe",
]  # fmt: skip
LAST_NAMES = [
    "Adebayo", "Ahmed", "Brown", "Campbell", "Chen", "Clarke", "Davies", "Evans", "Fernández",
    "Green", "Hughes", "Jones", "Kaur", "Khan", "Kowalski", "Lewis", "Martin", "Mensah", "Müller",
    "Nguyễn", "Ó Briain", "O'Connor", "Okafor", "Patel", "Roberts", "Robinson", "Singh", "Smith",
    "Taylor", "Thomas", "Walker", "White", "Williams", "Wilson", "Wright", "Yılmaz",
]  # fmt: skip
INTEREST_WEIGHTS = {
    "refugees": 6,
    "womens-rights": 5,
    "palestine": 4,
    "social-security": 2,
    "students": 2,
    "schools": 2,
    "social-media": 2,
    "mp-advocacy": 3,
    "write-for-rights": 4,
    "fundraising": 2,
    "events": 4,
    "anti-racism": 3,
}
CONSENT_SOURCES = ["signup", "signup", "event", "petition", "import"]
TAGS = ["news", "amnesty", "kent", "lists"]
_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ı": "i", "ß": "ss"})


def ascii_fold(text: str) -> str:
    """``Zoë Ó Briain`` → ``Zoe O Briain``: the letters an address local part is made of."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if c.isascii())


def _postcode(rng: random.Random, area: str) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    district = rng.randint(1, 20)
    return f"{area}{district} {rng.randint(0, 9)}{rng.choice(letters)}{rng.choice(letters)}"


def generate(count: int, shape: Shape, *, seed: int = 1) -> Iterator[dict[str, str]]:
    """``count`` synthetic member rows (dicts keyed by ``COLUMNS``), the same for the same seed."""
    rng = random.Random(seed)
    parents = {r.parent for r in shape.regions.values()}
    slugs = list(shape.regions)
    weights = [1 if slug in parents else 10 for slug in slugs]
    areas_of: dict[str, list[str]] = {}
    for area, region in sorted(shape.postcode_areas.items()):
        areas_of.setdefault(region, []).append(area)
    interest_slugs = [s for s in INTEREST_WEIGHTS if s in shape.interests] or list(shape.interests)
    interest_weights = [INTEREST_WEIGHTS.get(s, 1) for s in interest_slugs]
    start = date(2019, 1, 1)
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        name = "" if rng.random() < 0.03 else f"{first} {last}"
        local = f"{ascii_fold(first)}.{ascii_fold(last)}".lower().replace(" ", "").replace("'", "")
        local = f"{local}.{i + 1}"
        if rng.random() < 0.08:
            local += "+" + rng.choice(TAGS)
        email = f"{local}@example.org"
        if rng.random() < 0.05:
            email = email[0].upper() + email[1:].replace("@example.org", "@Example.ORG")
        region = rng.choices(slugs, weights)[0]
        own_areas = areas_of.get(region, [])
        postcode = ""
        if own_areas:
            postcode = _postcode(rng, rng.choice(own_areas))
            region_cell = "" if rng.random() < 0.2 else region
        else:
            region_cell = region
        chosen = sorted(
            set(rng.choices(interest_slugs, interest_weights, k=rng.choice([0, 1, 1, 2, 2, 3, 4])))
        )
        yield {
            "email": email,
            "name": name,
            "postcode": postcode,
            "region": region_cell,
            "interests": ";".join(chosen),
            "consent_source": rng.choice(CONSENT_SOURCES),
            "consent_date": (start + timedelta(days=rng.randrange(2500))).isoformat(),
            "student": "yes" if rng.random() < 0.15 else "no",
            "joined": str(rng.randint(2008, 2025)),
        }


def write_rows(fh: TextIO, rows: Iterable[dict[str, str]]) -> int:
    """Write ``rows`` as CSV with a header of ``COLUMNS`` to an open text file; return how many."""
    writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    written = 0
    for row in rows:
        writer.writerow(row)
        written += 1
    return written


def write_csv(path: Path, rows: Iterable[dict[str, str]]) -> int:
    """Write ``rows`` to the file at ``path`` as CSV; return how many were written."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        return write_rows(fh, rows)
