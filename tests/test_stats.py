"""Audience statistics per region (with the tree's totals) and interest, on both databases."""

from __future__ import annotations

import json

from sqlalchemy import select
from support.cli_runner import MailerCli
from support.hashes import hash_of

from mailer.audience.shape import Shape
from mailer.audience.stats import AudienceStats, stats
from mailer.db import Database
from mailer.models import Interest, Member, Region, Suppression

# (email, region, interests, suppressed)
MEMBERS: list[tuple[str, str | None, list[str], bool]] = [
    ("a@example.org", "maidstone-medway-swale", ["refugees"], False),
    ("b@example.org", "maidstone-medway-swale", ["refugees", "schools"], True),
    ("c@example.org", "canterbury", [], False),
    ("d@example.org", "kent", ["schools"], False),
    ("e@example.org", "kent", [], True),
    ("f@example.org", "sussex", ["refugees"], False),
    ("g@example.org", "south-east", [], False),
    ("h@example.org", "birmingham", ["mp-advocacy"], False),
    ("i@example.org", None, ["refugees"], True),
    ("j@example.org", None, [], False),
]


def insert(db: Database) -> None:
    with db.session() as session:
        regions = {slug: id_ for slug, id_ in session.execute(select(Region.slug, Region.id))}
        interests = {i.slug: i for i in session.scalars(select(Interest))}
        for email, region, chosen, suppressed in MEMBERS:
            member = Member(
                email=email, address_hash=hash_of(email), region_id=regions[region] if region else None
            )
            member.interests = [interests[s] for s in chosen]
            session.add(member)
            if suppressed:
                session.add(Suppression(address_hash=hash_of(email), reason="unsubscribe", source="link"))
        # A forgotten member: only the hash is left.
        session.add(Suppression(address_hash=hash_of("gone@example.org"), reason="erasure", source="admin"))


def by_slug(result: AudienceStats) -> dict[str, tuple[int, int, int, int]]:
    return {r.slug: (r.members, r.suppressed, r.total_members, r.total_suppressed) for r in result.regions}


def test_stats_per_region_with_totals(db: Database, shape: Shape) -> None:
    insert(db)
    with db.session() as session:
        result = stats(session, shape)
    regions = by_slug(result)
    assert regions["maidstone-medway-swale"] == (2, 1, 2, 1)
    assert regions["canterbury"] == (1, 0, 1, 0)
    assert regions["kent"] == (2, 1, 5, 2)
    assert regions["sussex"] == (1, 0, 1, 0)
    assert regions["south-east"] == (1, 0, 7, 2)
    assert regions["birmingham"] == (1, 0, 1, 0)
    assert regions["central-england"][2:] == (1, 0)
    assert regions["thanet"] == (0, 0, 0, 0)
    kent = next(r for r in result.regions if r.slug == "kent")
    assert (kent.reachable, kent.total_reachable) == (1, 3)
    assert len(result.regions) == len(shape.regions)
    # Parents come before their children, each one level deeper.
    order = [r.slug for r in result.regions]
    assert order.index("south-east") < order.index("kent") < order.index("canterbury")
    depth = {r.slug: r.depth for r in result.regions}
    assert (depth["south-east"], depth["kent"], depth["canterbury"]) == (0, 1, 2)


def test_stats_totals_and_interests(db: Database, shape: Shape) -> None:
    insert(db)
    with db.session() as session:
        result = stats(session, shape)
    assert (result.members, result.suppressed, result.reachable) == (10, 3, 7)
    assert (result.without_region, result.without_region_suppressed) == (2, 1)
    assert result.suppressions == 4  # three members and one forgotten address
    interests = {i.slug: (i.members, i.suppressed) for i in result.interests}
    assert interests["refugees"] == (4, 2)
    assert interests["schools"] == (2, 1)
    assert interests["mp-advocacy"] == (1, 0)
    assert interests["palestine"] == (0, 0)
    assert [i.slug for i in result.interests] == list(shape.interests)


def test_stats_of_an_empty_database(db: Database, shape: Shape) -> None:
    with db.session() as session:
        result = stats(session, shape)
    assert (result.members, result.suppressed, result.suppressions, result.without_region) == (0, 0, 0, 0)
    assert all(r.total_members == 0 for r in result.regions)


def test_cli_stats(db: Database, mailer_cli: MailerCli) -> None:
    insert(db)
    run = ["lists", "stats"]
    as_json = mailer_cli(*run, "--json", check=True)
    data = json.loads(as_json.stdout)
    assert (data["members"], data["suppressed"], data["reachable"], data["suppressions"]) == (10, 3, 7, 4)
    kent = next(r for r in data["regions"] if r["slug"] == "kent")
    assert kent == {
        "slug": "kent",
        "name": "Kent",
        "parent": "south-east",
        "depth": 1,
        "members": 2,
        "suppressed": 1,
        "total_members": 5,
        "total_suppressed": 2,
        "reachable": 1,
        "total_reachable": 3,
    }
    table = mailer_cli(*run, check=True).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["Region", "Members", "Suppressed", "Own", "Own", "supp."]
    kent_line = next(line for line in lines if line.strip().startswith("Kent "))
    assert kent_line.startswith("  Kent ")  # indented under South East
    assert kent_line.split()[-4:] == ["5", "2", "2", "1"]
    canterbury = next(line for line in lines if line.strip().startswith("Canterbury"))
    assert canterbury.startswith("    Canterbury")
    assert next(line for line in lines if line.startswith("(no region)")).split()[-2:] == ["2", "1"]
    assert "7 of 10 members can be mailed; 4 suppression(s) on record (1 not on the list)." in table
