"""``mailer campaigns check`` against the members: what the send would do that the editor should know
first. Members whose address mailer cannot send to (a non-ASCII local part, stored by an older
version: the import refuses them now) are named, since every send skips them; an audience that
reaches members of other networks than the one the issue speaks as (an interest-only alert in a
workspace of several networks) is warned about at the issue's ``audience:`` line.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import REPO
from sqlalchemy import select
from support.cli_runner import MailerCli
from support.hashes import address_hash

from mailer.db import Database
from mailer.models import Interest, Member, MemberInterest, Region

ALERT = "2025-11-echr-alert"  # audience: interest:mp-advocacy, network: kent


def copy_campaign(workspace: Path, slug: str) -> Path:
    target = workspace / "campaigns" / slug
    shutil.copytree(REPO / "campaigns" / slug, target)
    return target / "issue.yaml"


def add(database: Database, *members: tuple[str, str | None]) -> None:
    """Members as a database may hold them (nothing checked, as an older version stored them), each
    with the interest mp-advocacy."""
    with database.session() as session:
        regions = {r.slug: r.id for r in session.scalars(select(Region))}
        interest = session.scalar(select(Interest.id).where(Interest.slug == "mp-advocacy"))
        for email, region in members:
            member = Member(
                email=email,
                address_hash=address_hash(email),
                name="",
                region_id=regions[region] if region else None,
            )
            session.add(member)
            session.flush()
            session.add(MemberInterest(member_id=member.id, interest_id=interest))


def two_networks(workspace: Path) -> None:
    """The demo's two networks (Kent, Central England; Sussex belongs to neither) in ``workspace``."""
    shutil.copy(REPO / "lists" / "networks.toml", workspace / "lists" / "networks.toml")


def assert_quiet(mailer_cli: MailerCli) -> None:
    """``campaigns check`` of the alert passes with no error and no warning."""
    result = mailer_cli("campaigns", "check", ALERT)
    assert result.exit_code == 0 and "OK: 0 error(s), 0 warning(s)" in result.stdout, result.stdout


def line_of(path: Path, key: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(f"{key}:"))


# ---------------------------------------------------------------------------------------------
# Addresses mailer cannot send to


def test_check_names_members_whose_address_cannot_be_mailed(
    mailer_cli: MailerCli, workspace: Path, db: Database
) -> None:
    path = copy_campaign(workspace, ALERT)
    add(
        db,
        ("ok@example.org", "canterbury"),
        ("josé@example.org", "kent"),
        ("ünal@example.de", "thanet"),
        ("zoë@example.org", "ashford"),
        ("łukasz@example.pl", "dover-folkestone"),
        ("ada@bücher.example", "kent"),  # stored as IDNA by normalise, but an older row may not be
    )
    with db.session() as session:  # outside the audience: not counted
        session.add(
            Member(email="chloé@example.org", address_hash=address_hash("chloé@example.org"), name="")
        )
    result = mailer_cli("campaigns", "check", ALERT)
    assert result.exit_code == 0, result.stdout + result.stderr
    expected = (
        f"{path}:{line_of(path, 'audience')}: warning: audience: 5 members of the audience cannot be mailed "
        "and will be skipped: 'josé@example.org', 'ünal@example.de', 'zoë@example.org' and 2 more "
        "(a non-ASCII local part needs SMTPUTF8, which mailer does not use) (import an ASCII address for "
        "each, then remove the old one with `mailer members forget ADDRESS`)"
    )
    assert expected in result.stdout
    data = json.loads(mailer_cli("campaigns", "check", ALERT, "--json").stdout)
    assert [w["field"] for w in data["warnings"]] == ["audience"]
    assert data["warnings"][0]["message"].startswith("5 members of the audience cannot be mailed")


def test_check_is_quiet_when_every_address_can_be_mailed(
    mailer_cli: MailerCli, workspace: Path, db: Database
) -> None:
    copy_campaign(workspace, ALERT)
    add(db, ("ok@example.org", "canterbury"), ("anna@xn--bcher-kva.example", "kent"))
    assert_quiet(mailer_cli)


# ---------------------------------------------------------------------------------------------
# An audience that crosses networks


def test_an_interest_only_alert_reaching_two_networks_is_warned_about(
    mailer_cli: MailerCli, workspace: Path, db: Database
) -> None:
    two_networks(workspace)
    path = copy_campaign(workspace, ALERT)
    add(
        db,
        ("kent1@example.org", "canterbury"),
        ("kent2@example.org", "kent"),
        ("brum@example.org", "birmingham"),
        ("lewes@example.org", "lewes"),  # a region of no network
        ("nowhere@example.org", None),
    )
    result = mailer_cli("campaigns", "check", ALERT)
    assert result.exit_code == 0, result.stdout + result.stderr
    warning = (
        f"{path}:{line_of(path, 'audience')}: warning: audience: this audience reaches members of 2 networks "
        "(kent 2, central-england 1, no network 2) but the message speaks as Kent Network "
        "(narrow it with `and region:kent`, or name with `network:` the network it is for)"
    )
    assert warning in result.stdout

    narrowed = path.read_text(encoding="utf-8").replace(
        "audience: interest:mp-advocacy", "audience: interest:mp-advocacy and region:kent"
    )
    path.write_text(narrowed, encoding="utf-8")
    quiet = mailer_cli("campaigns", "check", ALERT)
    assert quiet.exit_code == 0 and "networks" not in quiet.stdout, quiet.stdout


def test_an_audience_within_its_network_is_not_warned_about(
    mailer_cli: MailerCli, workspace: Path, db: Database
) -> None:
    two_networks(workspace)
    copy_campaign(workspace, ALERT)
    add(db, ("kent1@example.org", "canterbury"), ("lewes@example.org", "lewes"))
    assert_quiet(mailer_cli)


def test_an_alert_speaking_as_central_england_names_its_regions(
    mailer_cli: MailerCli, workspace: Path, db: Database
) -> None:
    two_networks(workspace)
    path = copy_campaign(workspace, ALERT)
    path.write_text(
        re.sub(r"(?m)^network: kent$", "network: central-england", path.read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    add(db, ("kent1@example.org", "canterbury"), ("brum@example.org", "birmingham"))
    result = mailer_cli("campaigns", "check", ALERT)
    assert (
        "reaches members of 2 networks (kent 1, central-england 1) but the message speaks as "
        in result.stdout
    )
    assert "Central England Network (narrow it with `and region:central-england`" in result.stdout


@pytest.mark.slow
def test_a_person_confirming_a_send_sees_the_warnings_first(
    mailer_cli: MailerCli, workspace: Path, db: Database
) -> None:
    """``campaigns send`` at a terminal shows what ``check`` warns about before it asks; answering no
    sends nothing. (With --yes nobody is asked, and scripts run ``check`` themselves.) A real process
    on a pseudo-terminal, since the question is only asked at one."""
    import os
    import pty
    import subprocess
    import sys
    import time

    two_networks(workspace)
    copy_campaign(workspace, ALERT)
    add(db, ("kent1@example.org", "canterbury"), ("brum@example.org", "birmingham"))
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mailer", "campaigns", "send", ALERT],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=dict(mailer_cli.env, TERM="dumb"),
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            seen += os.read(leader, 65536)
        os.write(leader, b"n\n")
        assert process.wait(timeout=60) != 0  # aborted
    finally:
        process.kill()
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;]*m", "", seen.decode("utf-8", "replace"))
    assert "this audience reaches members of 2 networks" in text, text
    assert text.index("reaches members of 2 networks") < text.index("[y/N]")
    assert "Send to 2 member(s)?" in text, text
    with db.session() as session:
        from mailer.models import Delivery

        assert session.scalar(select(Delivery.id).limit(1)) is None
