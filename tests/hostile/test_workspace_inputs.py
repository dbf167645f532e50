"""Hostile inputs of a workspace's first day: `mailer init`'s flags (they go into mail headers, footers
and links), edits of regions.toml and interests.toml that would orphan members, keys for signed links
of low entropy, and DNS answers `mailer doctor` reads. Each is refused with the flag, file or setting
named and the fix, exit 2, no traceback, and nothing written or changed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support.cli_runner import MailerCli
from support.dns_server import DnsTestServer

from mailer.secret_key import write_secret_file

GOOD = {
    "--name": "Central England Network",
    "--from": "news@cen-network.org.uk",
    "--base-url": "https://news.cen-network.org.uk",
    "--postal-address": "5 Example Row, Birmingham B1 1AA",
}

INIT_CASES = {
    "a base URL that is not a URL": ("--base-url", "news.cen-network.org.uk", "is not an http(s) URL"),
    "a javascript: base URL": ("--base-url", "javascript:alert(1)", "is not an http(s) URL"),
    "a base URL with a space": ("--base-url", "https://news.cen network.org", "is not an http(s) URL"),
    "a base URL without a host": ("--base-url", "https://", "is not an http(s) URL"),
    "a postal address with an escape": ("--postal-address", "5 Row\x1b[2J, Birmingham", "control characters"),
    "a postal address adding a header": ("--postal-address", "5 Row\r\nBcc: all@x.org", "control characters"),
    "a postal address with a NUL": ("--postal-address", "5 Row\x00", "control characters"),
    "a megabyte postal address": ("--postal-address", "x" * 1_000_000, "over 500 characters"),
    "a From without a domain": ("--from", "news@", "is not an email address with a domain"),
    "a From without an @": ("--from", "news", "is not an email address with a domain"),
    "a From at a dotless host": ("--from", "news@localhost", "is not an email address with a domain"),
    "a From with a display name": ("--from", "CEN <news@cen.org.uk>", "is not an email address"),
    "a From adding a header": ("--from", "news@cen.org.uk\r\nBcc: x@y.org", "is not an email address"),
    "a name adding a header": ("--name", "CEN\r\nBcc: x@y.org", "control characters"),
    "an empty name": ("--name", "   ", "the network needs a name"),
    "a list domain that is not one": ("--list-domain", "-lists-.cen..org", "is not a domain name"),
    "a list domain with a path": ("--list-domain", "lists.cen.org/x", "is not a domain name"),
    "a javascript: privacy notice": ("--privacy-url", "javascript:alert(1)", "is not an https:// address"),
    "an http privacy notice": ("--privacy-url", "http://cen.org.uk/privacy", "is not an https:// address"),
    "a privacy notice closing its attribute": (
        "--privacy-url",
        'https://cen.org.uk/"onmouseover="x',
        "is not an https:// address",
    ),
}


def clean_cli() -> MailerCli:
    return MailerCli({k: v for k, v in os.environ.items() if not k.startswith("MAILER_")})


@pytest.mark.parametrize("case", sorted(INIT_CASES))
def test_hostile_init_flags(case: str, tmp_path: Path) -> None:
    flag, value, expected = INIT_CASES[case]
    values = dict(GOOD, **{flag: value})
    args = [part for pair in values.items() for part in pair]
    out = clean_cli()("init", str(tmp_path / "net"), *args, "--no-input")
    assert out.exit_code == 2, out.output
    assert f"{flag}: " in out.stderr and expected in out.stderr, out.stderr
    assert "Traceback" not in out.output
    assert not (tmp_path / "net").exists(), "nothing is written before every value is checked"


LISTS_CASES = {
    "renamed from a slug still in the file": (
        "regions.toml",
        '[[region]]\nslug = "kent"\nname = "Kent"\n\n[[region]]\nslug = "kent-2"\nname = "K"\n'
        'renamed_from = "kent"\n',
        "regions.toml:5: renamed_from: 'kent-2' is renamed from 'kent', which is still in the file",
    ),
    "two regions renamed from one": (
        "regions.toml",
        '[[region]]\nslug = "a"\nname = "A"\nrenamed_from = "kent"\n\n'
        '[[region]]\nslug = "b"\nname = "B"\nrenamed_from = "kent"\n',
        "'b' and 'a' are both renamed from 'kent'",
    ),
    "renamed from a path": (
        "regions.toml",
        '[[region]]\nslug = "a"\nname = "A"\nrenamed_from = "../kent"\n',
        "renamed_from: bad slug '../kent'",
    ),
    "renamed from a number": (
        "interests.toml",
        '[[interest]]\nslug = "a"\nname = "A"\nrenamed_from = 7\n',
        "renamed_from: expected text, got 7",
    ),
}


@pytest.mark.parametrize("case", sorted(LISTS_CASES))
def test_hostile_renames(case: str, mailer_cli: MailerCli, workspace: Path) -> None:
    name, text, expected = LISTS_CASES[case]
    (workspace / "lists" / name).write_text(text, encoding="utf-8")
    out = mailer_cli("lists", "sync")
    assert out.exit_code == 2 and expected in out.stderr, out.stderr
    assert "Traceback" not in out.output


def test_edits_that_would_orphan_members_change_nothing(mailer_cli: MailerCli, workspace: Path) -> None:
    """The demo tree without Kent's subtree, while members live there: refused, naming each region
    and its members, with the fix; a --move that is not OLD=NEW, or names nothing that goes, too."""
    csv = workspace.parent / "members.csv"
    csv.write_text(
        "email,name,region,consent_source,consent_date\n"
        "a@example.net,A,canterbury,form,2025-01-01\nb@example.net,B,canterbury,form,2025-01-01\n"
        "c@example.net,C,kent,form,2025-01-01\n"
    )
    mailer_cli("lists", "import", str(csv), check=True)
    before = mailer_cli("lists", "count", "region:kent", check=True).stdout
    assert before.startswith("3")
    regions = workspace / "lists" / "regions.toml"
    text = regions.read_text(encoding="utf-8")
    blocks = text.split("[[region]]")
    kept = [b for b in blocks[1:] if not re.search(r'parent = "kent"|slug = "kent"', b)]
    regions.write_text(blocks[0] + "".join("[[region]]" + b for b in kept), encoding="utf-8")
    (workspace / "lists" / "networks.toml").unlink(missing_ok=True)
    areas = workspace / "lists" / "postcode_areas.csv"
    areas.write_text("area,region\n", encoding="utf-8")
    out = mailer_cli("lists", "sync")
    assert out.exit_code == 2
    assert "region 'canterbury' (Canterbury) is not in regions.toml but 2 member(s) live in it" in out.stderr
    assert "region 'kent' (Kent) is not in regions.toml but 1 member(s) live in it" in out.stderr
    assert "--move canterbury=OTHER-REGION" in out.stderr and "Traceback" not in out.output
    for bad, expected in (
        ("canterbury", "is not OLD=NEW"),
        ("=sussex", "is not OLD=NEW"),
        ("sussex=kent", "'sussex' is not a region or interest that this sync removes"),
    ):
        refused = mailer_cli("lists", "sync", "--move", bad)
        assert refused.exit_code == 2 and expected in refused.stderr, refused.stderr
    regions.write_text(text, encoding="utf-8")
    assert mailer_cli("lists", "count", "region:kent").stdout == before


WEAK_SECRETS = {
    "the issue's hex run": "0123456789abcdef0123456789abcdef",
    "the alphabet": "abcdefghijklmnopqrstuvwxyz0123456789",
    "a repeated chunk": "Xq7#pL2!" * 6,
    "one character": "a" * 64,
    "two characters": "ab" * 32,
    "short": "Xq7#pL2!vB",
    "a phrase": "correct horse battery staple of the night",
    "a keyboard walk": "qwertyuiopasdfghjklzxcvbnm1234567890QWERTY",
}


@pytest.mark.parametrize("case", sorted(WEAK_SECRETS))
def test_secrets_of_low_entropy_are_refused(case: str, mailer_cli: MailerCli, workspace: Path) -> None:
    key = WEAK_SECRETS[case]
    out = mailer_cli("lists", "count", "all", env={"MAILER_SECRET": key})
    assert out.exit_code == 2, f"{case}: {out.output}"
    assert "MAILER_SECRET: the key for signed links is too weak" in out.stderr
    assert "mailer secret new" in out.stderr and key not in out.output
    env = {k: v for k, v in mailer_cli.env.items() if k != "MAILER_SECRET"}
    write_secret_file(workspace / ".mailer-secret", [key])
    from_file = MailerCli(env)("doctor", "--no-dns")
    assert from_file.exit_code == 2 and "too weak" in from_file.stderr and key not in from_file.output


DNS_ANSWERS = {
    "a DKIM record with no key": '"v=DKIM1; k=rsa; p="',
    "binary bytes": '"\\255\\000\\001v=DKIM1; p=\\255"',
    "many strings": " ".join(['"v=DKIM1; "'] + ['"x"'] * 200),
    "tags without values": '"v=DKIM1;;;=;p;k"',
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(DNS_ANSWERS))
def test_hostile_dns_answers(case: str, tmp_path: Path, dns_server: DnsTestServer) -> None:
    cli = MailerCli(
        {
            **{k: v for k, v in os.environ.items() if not k.startswith("MAILER_")},
            "MAILER_WORKSPACE": str(tmp_path / "net"),
            "MAILER_DNS_RESOLVER": dns_server.address,
            "MAILER_RELAY": "smtp://127.0.0.1:9",
        }
    )
    args = [part for pair in GOOD.items() for part in pair]
    cli("init", str(tmp_path / "net"), *args, "--no-input", check=True)
    for name in ("mailer-rsa", "mailer-ed25519"):
        dns_server.zone[(f"{name}._domainkey.cen-network.org.uk", "TXT")] = [DNS_ANSWERS[case]]
    out = cli("doctor", "--json")
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert '"status": "different"' in out.stdout or '"status": "missing"' in out.stdout
