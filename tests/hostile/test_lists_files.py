"""Hostile lists files: networks.toml and the senders of local groups in regions.toml go
into mail headers and footers, so they are refused, with file and line, when they carry control
characters (a CRLF that would add a header), non-addresses or absurd sizes; `mailer lists sync`
exits 2 and changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.cli_runner import MailerCli

REPO = Path(__file__).resolve().parent.parent.parent

NETWORK = '[[network]]\nslug = "kent"\nregions = ["kent"]\nfrom_address = "newsletter@example.org"\n'
CASES = {
    "header injection in the name": (NETWORK + 'name = "Kent\\r\\nBcc: victim@example.net"\n', "name holds"),
    "header injection in reply_to": (
        NETWORK + 'name = "Kent"\nreply_to = "a@example.org\\r\\nBcc: v@example.net"\n',
        "reply_to holds",
    ),
    "a display name for an address": (
        '[[network]]\nslug = "kent"\nname = "Kent"\nregions = ["kent"]\n'
        'from_address = "Kent <news@example.org>"\n',
        "is not an email address",
    ),
    "a megabyte welcome": (NETWORK + 'name = "Kent"\nwelcome = "' + "x" * 1_000_000 + '"\n', "over 2000"),
    "regions not a list": (
        '[[network]]\nslug = "kent"\nname = "Kent"\nregions = "kent"\nfrom_address = "n@example.org"\n',
        "regions must list",
    ),
    "a NUL in the slug": ('[[network]]\nslug = "ke\\u0000nt"\n', "bad network slug"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_networks_toml(case: str, mailer_cli: MailerCli, workspace: Path) -> None:
    text, expected = CASES[case]
    (workspace / "lists" / "networks.toml").write_text(text, encoding="utf-8")
    result = mailer_cli("lists", "sync")
    assert result.exit_code == 2, result.output
    assert expected in result.output and "networks.toml:" in result.output
    assert "Traceback" not in result.output


def test_a_local_group_sender_with_a_crlf_is_refused(mailer_cli: MailerCli, workspace: Path) -> None:
    regions = workspace / "lists" / "regions.toml"
    shutil.copy(REPO / "lists" / "regions.toml", regions)
    text = regions.read_text(encoding="utf-8")
    text = text.replace('from_name = "Birmingham Group"', 'from_name = "Birmingham\\nBcc: x@example.net"')
    text = text.replace('reply_to = "birmingham-group@example.org"', 'reply_to = "not-an-address"')
    regions.write_text(text, encoding="utf-8")
    result = mailer_cli("lists", "sync")
    assert result.exit_code == 2
    assert "from_name of region 'birmingham' holds control characters" in result.output
    assert "reply_to 'not-an-address' of region 'birmingham' is not an email address" in result.output
    assert "regions.toml:" in result.output


@pytest.mark.parametrize(
    ("name", "table", "header"),
    [
        ("regions.toml", "regions", "region"),
        ("interests.toml", "interests", "interest"),
        ("segments.toml", "Segment", "segment"),
    ],
)
def test_a_mistyped_table_is_refused_not_ignored(
    name: str, table: str, header: str, mailer_cli: MailerCli, workspace: Path
) -> None:
    """A volunteer who writes ``[[regions]]`` for ``[[region]]`` is told so at its line: the sync
    neither says "already in sync" nor drops what they wrote."""
    path = workspace / "lists" / name
    text = path.read_text(encoding="utf-8")
    path.write_text(text + f'\n[[{table}]]\nslug = "coventry"\nname = "Coventry"\n', encoding="utf-8")
    result = mailer_cli("lists", "sync")
    assert result.exit_code == 2, result.output
    line = len(text.splitlines()) + 2
    assert f"{name}:{line}: {table}: unknown table [[{table}]]: nothing in it is read" in result.output
    assert f"write [[{header}]] for each entry" in result.output
