"""`mailer lists count` agrees with counts computed straight from the CSV file, on both databases.

The expected numbers come from reading lists/members.csv with the csv module and applying the
rules by hand (a region matches itself and every region below it; a member without a region gets
one from the postcode's area; suppressed addresses never count). Nothing of mailer's segment
compiler or importer is used to compute them.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO
from support.cli_runner import MailerCli

from mailer.audience.importer import import_csv
from mailer.audience.shape import Shape
from mailer.audience.suppression import suppress
from mailer.db import Database

CSV = REPO / "lists" / "members.csv"


def csv_members() -> list[dict[str, object]]:
    """The demo members as plain dicts, with each one's region resolved as the rules say."""
    regions_toml = tomllib.loads((REPO / "lists" / "regions.toml").read_text())
    parent = {r["slug"]: r.get("parent") for r in regions_toml["region"]}
    areas = {
        row["area"]: row["region"] for row in csv.DictReader((REPO / "lists" / "postcode_areas.csv").open())
    }
    out = []
    for row in csv.DictReader(CSV.open(encoding="utf-8")):
        region = row["region"].strip()
        if not region and row["postcode"].strip():
            m = re.match(r"([A-Z]{1,2})[0-9]", row["postcode"].strip().upper())
            region = areas.get(m.group(1), "") if m else ""
        chain = []
        while region:
            chain.append(region)
            region = parent[region] or ""
        out.append(
            {
                "email": row["email"].strip().lower(),
                "regions": set(chain),  # the home region and all above it
                "interests": {i for i in row["interests"].split(";") if i},
                "student": row["student"],
            }
        )
    return out


Rule = Callable[[dict[str, object]], bool]


def region(slug: str) -> Rule:
    return lambda m: slug in m["regions"]  # type: ignore[operator]


def interest(slug: str) -> Rule:
    return lambda m: slug in m["interests"]  # type: ignore[operator]


CASES: list[tuple[str, Rule]] = [
    ("all", lambda m: True),
    ("region:kent", region("kent")),
    ("region:south-east", region("south-east")),
    (
        "region:central-england and not region:west-midlands",
        lambda m: region("central-england")(m) and not region("west-midlands")(m),
    ),
    ("interest:refugees", interest("refugees")),
    ("region:kent and interest:refugees", lambda m: region("kent")(m) and interest("refugees")(m)),
    (
        'region:kent and (interest:refugees or interest:womens-rights) and not field.student = "yes"',
        lambda m: (
            region("kent")(m)
            and (interest("refugees")(m) or interest("womens-rights")(m))
            and m["student"] != "yes"
        ),
    ),
    ("west-midlands-mp-advocacy", lambda m: region("west-midlands")(m) and interest("mp-advocacy")(m)),
    (
        "interest:schools or interest:social-media",
        lambda m: interest("schools")(m) or interest("social-media")(m),
    ),
]


@pytest.fixture
def imported(db: Database, shape: Shape) -> list[dict[str, object]]:
    with db.session() as session:
        report = import_csv(session, CSV, shape)
    assert report.rejected == 0
    members = csv_members()
    assert len(members) == report.added == 500
    # Three of them leave: they must drop out of every count that included them.
    for m in members[:3]:
        with db.session() as session:
            suppress(session, str(m["email"]), reason="unsubscribe", source="admin")
    return members[3:]


def test_lists_count_agrees_with_the_csv(imported: list[dict[str, object]], mailer_cli: MailerCli) -> None:
    for expression, rule in CASES:
        expected = sum(1 for m in imported if rule(m))
        out = mailer_cli("lists", "count", expression, "--json", check=True)
        assert json.loads(out.stdout) == {"count": expected}, expression
    # and the expressions are not trivial: they pick different, non-empty parts of the list
    counts = {e: sum(1 for m in imported if r(m)) for e, r in CASES}
    assert len(set(counts.values())) == len(CASES) and min(counts.values()) > 0


def test_unknown_region_is_an_error_not_an_empty_count(
    imported: list[dict[str, object]], env: dict[str, str], mailer_cli: MailerCli
) -> None:
    out = mailer_cli("lists", "count", "region:kentt")
    assert out.exit_code != 0 and "kent" in out.stderr
    assert Path(env["MAILER_WORKSPACE"]).is_dir()
