"""Every command of the README's "Using it" block runs, in order, as a network would type it: in a
fresh folder, against the aiosmtpd test server as the relay and a DNS server on 127.0.0.1 as the
resolver. Between commands the test does what the person does by hand (fills in the region tree,
writes the CSV exports, publishes the DNS records, fills in the issue file); `cd` and `export` act
on the commands that follow. A command exits 0 unless its comment says `exits N`."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli_runner import MailerCli
from support.dns_server import DnsTestServer
from support.smtp_server import SmtpTestServer

README = Path(__file__).resolve().parent.parent / "README.md"

REGIONS = """
[[region]]
slug = "west-midlands"
name = "West Midlands"

[[region]]
slug = "birmingham"
name = "Birmingham"
parent = "west-midlands"
contact = "Birmingham group: birmingham@cen-network.org.uk"

[[region]]
slug = "coventry"
name = "Coventry"
parent = "west-midlands"
"""

INTERESTS = """
[[interest]]
slug = "refugees"
name = "Refugee rights"

[[interest]]
slug = "climate"
name = "Climate"
"""

# A CRM's export: its own column names, and whether each may be mailed.
MEMBERS = """Email,Name,Region,Interests,Opted In
ann@example.net,Ann Smith,birmingham,refugees,Yes
bob@example.net,Bob Jones,coventry,climate,Yes
cat@example.net,Cat Brown,birmingham,climate;refugees,Yes
"""
NEW_MEMBERS = """Email,Name,Region,Opted In
dan@example.net,Dan Green,coventry,Yes
"""

ISSUE = """kind: newsletter
network: central-england-network
title: "Central England Network: December 2025"
subject: "December: what is on near you"
date: 2025-12-01
audience: all
intro: >-
  Welcome to December's newsletter.
items:
  - id: refugee-vigil
    title: "A vigil for refugees"
    highlight: "stand with refugees in Birmingham on 10 December"
    body: |
      Join the vigil at [the Council House](https://www.cen-network.org.uk/vigil).
    regions: [birmingham]
  - id: climate-talk
    title: "Climate talk"
    highlight: "a talk on the climate and human rights"
    body: |
      An evening talk, open to all: [book a place](https://www.cen-network.org.uk/talk).
    interests: [climate]
sign_off: |
  In solidarity
  The Central England Network
"""


def using_it_commands() -> list[tuple[str, str]]:
    """(command, its comment) of each line of the fenced block in "Using it", continuations joined."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the Using it section has a ```sh block"
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in block.group(1).splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):  # a comment continuing the previous command's
            continue
        command, _, comment = line.partition(" # ")
        command = pending + command.strip()
        if command.endswith("\\"):
            pending = command[:-1].strip() + " "
            continue
        pending = ""
        out.append((command, comment.strip()))
    return out


def test_the_readme_block_is_what_a_network_types() -> None:
    commands = [c for c, _ in using_it_commands()]
    assert commands[0].startswith("mailer init cen --name")
    assert commands.index("mailer doctor") < commands.index("mailer lists import members.csv --dry-run")
    assert all(c.split()[0] in ("mailer", "cd", "export") for c in commands)


@pytest.mark.slow
def test_every_command_of_using_it_runs(
    tmp_path: Path,
    smtp_server: SmtpTestServer,
    dns_server: DnsTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env["MAILER_DNS_RESOLVER"] = dns_server.address  # the machine's resolver, in a test
    cli = MailerCli(env)
    here = tmp_path
    monkeypatch.chdir(here)

    def fill_in_lists(ws: Path) -> None:
        (ws / "lists" / "regions.toml").write_text(REGIONS, encoding="utf-8")
        (ws / "lists" / "interests.toml").write_text(INTERESTS, encoding="utf-8")
        (ws / "members.csv").write_text(MEMBERS, encoding="utf-8")
        (ws / "new.csv").write_text(NEW_MEMBERS, encoding="utf-8")
        for sub in ("cur", "new", "tmp"):
            (ws / "bounces" / sub).mkdir(parents=True)

    def publish_dns(ws: Path) -> None:
        records = json.loads(cli("dns", "--json", check=True).stdout)
        dns_server.publish(records)

    def write_issue(ws: Path) -> None:
        (ws / "campaigns" / "2025-12-newsletter" / "issue.yaml").write_text(ISSUE, encoding="utf-8")

    # What the person does by hand after a command.
    after: dict[str, Callable[[Path], None]] = {
        "cd cen": fill_in_lists,
        "mailer dns": publish_dns,
        "mailer campaigns new 2025-12-newsletter": write_issue,
    }
    outputs: dict[str, list[str]] = {}
    for command, comment in using_it_commands():
        words = shlex.split(command)
        if words[0] == "cd":
            here = here / words[1]
            monkeypatch.chdir(here)
            env["MAILER_WORKSPACE"] = str(here)
        elif words[0] == "export":
            for pair in words[1:]:
                name, _, value = pair.partition("=")
                env[name] = value
            env["MAILER_RELAY"] = smtp_server.url  # the provider's relay, in a test
            env.pop("MAILER_RELAY_PASSWORD", None)
        else:
            expected = re.search(r"exits (\d+)", comment)
            result = cli(*words[1:])
            code = int(expected.group(1)) if expected else 0
            assert result.exit_code == code, f"{command} exited {result.exit_code}\n{result.output}"
            assert "Traceback" not in result.output, command
            outputs.setdefault(command, []).append(result.stdout)
        if command in after:
            after[command](here)

    first, ready = outputs["mailer doctor"]
    assert "DNS record(s) missing or different" in first and "NOT READY" in first
    assert "READY to mail real people: 0 problem(s), 0 warning(s)" in ready
    assert "OK: 0 error(s)" in outputs["mailer campaigns check 2025-12-newsletter"][0]
    received = [
        (tuple(m.rcpt_tos), email.message_from_bytes(m.data, policy=email.policy.default))
        for m in smtp_server.messages
    ]
    newsletters = sorted(to[0] for to, m in received if "December" in str(m["Subject"]))
    # The test copy, then Birmingham (ann, cat), the rest (bob), then the new member (dan).
    assert newsletters == sorted(
        ["me@example.net", "ann@example.net", "cat@example.net", "bob@example.net", "dan@example.net"]
    )
    to_ann = next(m for to, m in received if to == ("ann@example.net",) and "December" in str(m["Subject"]))
    assert to_ann["From"].addresses[0].addr_spec == "news@cen-network.org.uk"
    assert "https://news.cen-network.org.uk/u/" in to_ann["List-Unsubscribe"]
    assert "5 Example Row, Birmingham B1 1AA" in to_ann.get_body(("plain",)).get_content()
    assert any(to == ("dan@example.net",) and "Welcome" in str(m["Subject"]) for to, m in received)
