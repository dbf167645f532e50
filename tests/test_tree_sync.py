"""`mailer lists sync` applies any edit of the region tree and interests: added, renamed (name, or slug
with `renamed_from`), moved, removed, or replaced wholesale, on SQLite and PostgreSQL; refused with
the fix only when members would lose their region, and then nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from support.cli_runner import MailerCli

from mailer.db import open_database
from mailer.models import Interest, Member, MemberInterest, Region
from mailer.settings import load

FIRST = """
[[region]]
slug = "west"
name = "West"

[[region]]
slug = "bristol"
name = "Bristol"
parent = "west"

[[region]]
slug = "bath"
name = "Bath"
parent = "west"

[[region]]
slug = "north"
name = "North"

[[region]]
slug = "leeds"
name = "Leeds"
parent = "north"
"""

INTERESTS = """
[[interest]]
slug = "refugees"
name = "Refugees"

[[interest]]
slug = "climate"
name = "Climate"
"""

# Bristol's slug changes (its members follow), Bath moves under North, Leeds goes (no members), the
# tree gains a region, North is renamed; an interest's slug changes.
EDITED = """
[[region]]
slug = "west"
name = "West Country"

[[region]]
slug = "bristol-city"
name = "Bristol City"
parent = "west"
renamed_from = "bristol"

[[region]]
slug = "north"
name = "The North"

[[region]]
slug = "bath"
name = "Bath"
parent = "north"

[[region]]
slug = "york"
name = "York"
parent = "north"
"""

EDITED_INTERESTS = """
[[interest]]
slug = "refugee-rights"
name = "Refugee rights"
renamed_from = "refugees"

[[interest]]
slug = "climate"
name = "Climate"
"""

OTHER_TREE = """
[[region]]
slug = "fens"
name = "Fens"

[[region]]
slug = "wisbech"
name = "Wisbech"
parent = "fens"
"""


def fresh(tmp_path: Path, cli: MailerCli, *flags: str) -> list[str]:
    ws = tmp_path / "net"
    cli(
        "init",
        str(ws),
        "--no-input",
        "--name",
        "West Network",
        "--from",
        "news@west.test",
        "--base-url",
        "https://news.west.test",
        "--postal-address",
        "1 High Street, Bristol BS1 1AA",
        *flags,
        check=True,
    )
    return ["-w", str(ws)]


def regions(mailer_cli: MailerCli, run: list[str], database_url: str) -> dict[str, tuple[str, str]]:
    settings = load(Path(run[1]), env={"MAILER_DATABASE_URL": database_url})
    db = open_database(settings)
    try:
        with db.session() as session:
            return {r.slug: (r.name, r.path) for r in session.scalars(select(Region))}
    finally:
        db.dispose()


def members_by_region(run: list[str], database_url: str) -> dict[str, str | None]:
    settings = load(Path(run[1]), env={"MAILER_DATABASE_URL": database_url})
    db = open_database(settings)
    try:
        with db.session() as session:
            rows = session.execute(
                select(Member.email, Region.slug).outerjoin(Region, Region.id == Member.region_id)
            )
            return {email: slug for email, slug in rows}
    finally:
        db.dispose()


def test_a_fresh_workspace_takes_any_edit_of_its_tree(
    tmp_path: Path, mailer_cli: MailerCli, database_url: str
) -> None:
    run = fresh(tmp_path, mailer_cli)
    lists = Path(run[1]) / "lists"
    text = (lists / "regions.toml").read_text()
    assert "# [[region]]" in text and not any(line.startswith("[[") for line in text.splitlines())
    first = json.loads(mailer_cli(*run, "lists", "sync", "--json", check=True).stdout)
    assert first["regions_added"] == 0, "a new workspace's tree is empty until the network fills it in"

    (lists / "regions.toml").write_text(FIRST)
    (lists / "interests.toml").write_text(INTERESTS)
    mailer_cli(*run, "lists", "sync", check=True)
    csv = tmp_path / "members.csv"
    csv.write_text(
        "email,name,region,interests,consent_source,consent_date\n"
        "ann@example.net,Ann,bristol,refugees,form,2025-01-01\n"
        "bob@example.net,Bob,bath,climate,form,2025-01-01\n"
    )
    mailer_cli(*run, "lists", "import", str(csv), check=True)

    (lists / "regions.toml").write_text(EDITED)
    (lists / "interests.toml").write_text(EDITED_INTERESTS)
    report = json.loads(mailer_cli(*run, "lists", "sync", "--json", check=True).stdout)
    assert report["regions_renamed"] == 1 and report["regions_removed"] == 1  # leeds
    assert report["regions_added"] == 1 and report["interests_renamed"] == 1
    assert regions(mailer_cli, run, database_url) == {
        "west": ("West Country", "/west/"),
        "bristol-city": ("Bristol City", "/west/bristol-city/"),
        "north": ("The North", "/north/"),
        "bath": ("Bath", "/north/bath/"),
        "york": ("York", "/north/york/"),
    }
    assert members_by_region(run, database_url) == {
        "ann@example.net": "bristol-city",
        "bob@example.net": "bath",
    }
    again = mailer_cli(*run, "lists", "sync", check=True)
    assert "already in sync" in again.stdout

    # Replaced wholesale: refused while members live in regions that go, naming each and the fix.
    (lists / "regions.toml").write_text(OTHER_TREE)
    refused = mailer_cli(*run, "lists", "sync")
    assert refused.exit_code == 2, refused.output
    assert "region 'bristol-city' (Bristol City) is not in regions.toml but 1 member(s) live in it" in (
        refused.stderr
    )
    assert "region 'bath' (Bath)" in refused.stderr
    assert "renamed_from" in refused.stderr and "--move bath=OTHER-REGION" in refused.stderr
    assert "IntegrityError" not in refused.output and "Traceback" not in refused.output
    assert set(regions(mailer_cli, run, database_url)) == {"west", "bristol-city", "north", "bath", "york"}

    bad = mailer_cli(*run, "lists", "sync", "--move", "bath=nowhere", "--move", "bristol-city=wisbech")
    assert bad.exit_code == 2 and "there is no region 'nowhere'" in bad.stderr
    moved = mailer_cli(
        *run, "lists", "sync", "--move", "bath=wisbech", "--move", "bristol-city=fens", "--json"
    )
    done = json.loads(moved.check().stdout)
    assert done["members_moved"] == 2 and done["regions_removed"] == 5 and done["regions_added"] == 2
    assert members_by_region(run, database_url) == {"ann@example.net": "fens", "bob@example.net": "wisbech"}

    # An interest members chose cannot simply go; --move merges their choices into another.
    (lists / "interests.toml").write_text('[[interest]]\nslug = "climate"\nname = "Climate"\n')
    refused = mailer_cli(*run, "lists", "sync")
    assert refused.exit_code == 2 and "interest 'refugee-rights'" in refused.stderr
    mailer_cli(*run, "lists", "sync", "--move", "refugee-rights=climate", check=True)
    settings = load(Path(run[1]), env={"MAILER_DATABASE_URL": database_url})
    db = open_database(settings)
    try:
        with db.session() as session:
            chosen = session.execute(
                select(Member.email, Interest.slug)
                .join(MemberInterest, MemberInterest.member_id == Member.id)
                .join(Interest, Interest.id == MemberInterest.interest_id)
            ).all()
    finally:
        db.dispose()
    assert sorted(chosen) == [("ann@example.net", "climate"), ("bob@example.net", "climate")]


def test_the_example_tree_can_be_replaced_wholesale_after_the_first_sync(
    tmp_path: Path, mailer_cli: MailerCli, database_url: str
) -> None:
    """The first day's crash: `init --example`, `lists sync`, then the network's own tree."""
    run = fresh(tmp_path, mailer_cli, "--example")
    lists = Path(run[1]) / "lists"
    assert "kent" in (lists / "regions.toml").read_text()
    mailer_cli(*run, "lists", "sync", check=True)
    (lists / "regions.toml").write_text(OTHER_TREE)
    (lists / "postcode_areas.csv").write_text("area,region\nPE,wisbech\n")
    (lists / "segments.toml").write_text("")
    out = mailer_cli(*run, "lists", "sync", check=True)
    assert "regions removed: 45" in out.stdout and "regions added: 2" in out.stdout
    assert set(regions(mailer_cli, run, database_url)) == {"fens", "wisbech"}
