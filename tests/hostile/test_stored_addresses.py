"""Hostile addresses already in the database (stored by an older version, or written there by hand),
shown by ``mailer campaigns check``: members whose address mailer cannot send to are named in one
warning before any send, each address escaped (``repr``) and cut at 80 characters, so that none can
move the cursor, clear the screen or reverse the text of the terminal that shows it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import REPO
from sqlalchemy import select
from support.cli_runner import MailerCli
from support.hashes import address_hash

from mailer.db import Database
from mailer.models import Interest, Member, MemberInterest

ALERT = "2025-11-echr-alert"  # audience: interest:mp-advocacy

HOSTILE = [
    # attacks: the terminal: an escape sequence that clears the screen, in a non-ASCII local part.
    "jos\u00e9\x1b[2J@example.org",
    # attacks: the terminal: a right-to-left override that shows the address reversed.
    "\u202egro.elpmaxe@live",
    # attacks: the output's length: a 300-character local part.
    "\u00e9" * 300 + "@example.org",
]


def test_hostile_stored_addresses_are_named_escaped(
    mailer_cli: MailerCli, workspace: Path, db: Database
) -> None:
    shutil.copytree(REPO / "campaigns" / ALERT, workspace / "campaigns" / ALERT)
    with db.session() as session:
        interest = session.scalar(select(Interest.id).where(Interest.slug == "mp-advocacy"))
        for email in ["ok@example.org", *HOSTILE]:
            member = Member(email=email, address_hash=address_hash(email), name="")
            session.add(member)
            session.flush()
            session.add(MemberInterest(member_id=member.id, interest_id=interest))
    result = mailer_cli("campaigns", "check", ALERT)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "3 members of the audience cannot be mailed and will be skipped: " in result.stdout
    assert (
        "'jos\u00e9\\x1b[2J@example.org', '\\u202egro.elpmaxe@live', '" + "\u00e9" * 80 + "…'"
        in result.stdout
    )
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert len(result.stdout.splitlines()) <= 6 and len(result.stdout) < 1500
