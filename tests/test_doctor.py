"""`mailer doctor`: a fresh workspace with placeholders is not ready, and says why with each fix; once
its settings are set, its relay answers (the aiosmtpd test server) and its DNS records are published
(a DNS server on 127.0.0.1 the test starts), it is. `campaigns check` fails where doctor does, and a
send to members is refused while a problem stands; test sends still go."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
from sqlalchemy import insert
from support.cli_runner import MailerCli
from support.dns_server import DnsTestServer
from support.smtp_server import SmtpTestServer

from mailer.db import open_database
from mailer.models import Campaign
from mailer.settings import load
from mailer.workspace import NewNetwork

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "cen-network.org.uk"
NETWORK = NewNetwork(
    name="Central England Network",
    from_address=f"news@{DOMAIN}",
    base_url=f"https://news.{DOMAIN}",
    postal_address="Central England Network, 5 Example Row, Birmingham B1 1AA",
    privacy_url=f"https://{DOMAIN}/privacy",
)

PRIVACY = ("--privacy-url", NETWORK.privacy_url)


def cli_for(tmp_path: Path, **extra: str) -> MailerCli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env["MAILER_SECRET"] = "I6yzj8FjALhZrPdPg1f7_pOKb12CJvwzrGnlnmBobdwNX_-BVeirKbBQDJRlJsrz"
    env["MAILER_WORKSPACE"] = str(tmp_path / "net")
    env.update(extra)
    return MailerCli(env)


def set_up_properly(ws: Path, relay: str) -> None:
    """What a volunteer does after `mailer doctor` names the placeholders."""
    toml = ws / "mailer.toml"
    text = toml.read_text()
    for name, value in (
        ("base_url", NETWORK.base_url),
        ("list_domain", NETWORK.domain),
        ("relay", relay),
    ):
        text, n = re.subn(rf"(?m)^{name} = .*$", f'{name} = "{value}"', text)
        assert n == 1
    toml.write_text(text)
    (ws / "lists" / "networks.toml").write_text(NETWORK.networks_toml())


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.slow
def test_doctor_fails_on_placeholders_and_passes_once_they_are_set(
    tmp_path: Path, smtp_server: SmtpTestServer, dns_server: DnsTestServer
) -> None:
    cli = cli_for(tmp_path, MAILER_DNS_RESOLVER=dns_server.address)
    ws = tmp_path / "net"
    cli("init", str(ws), "--example", check=True)  # no terminal, no flags: placeholders
    shutil.copytree(
        REPO / "tests" / "fixtures" / "campaigns" / "2025-11-kent-network", ws / "campaigns" / "k"
    )
    cli("lists", "sync", check=True)

    sick = cli("doctor")
    assert sick.exit_code == 2, sick.output
    for expected in (
        "error: base_url: base_url 'http://127.0.0.1:8000' is this machine",
        "error: list_domain: list_domain 'lists.example.org' is a placeholder",
        "error: from_address: network 'our-network' sends From newsletter@example.org",
        "error: name: network 'our-network' is still called 'Our Network'",
        "error: postal_address: network 'our-network' has no postal address",
        "error: privacy_url: network 'our-network' has no privacy notice",
        "error: relay: the relay is a Maildir outbox",
        "NOT READY to mail real people: 7 problem(s)",
    ):
        assert expected in sick.stdout, sick.stdout
    assert sick.stdout.count("  fix: ") == 7
    assert not dns_server.queries, "placeholder domains are not looked up"
    data = json.loads(cli("doctor", "--json").stdout)
    assert data["ready"] is False and {e["check"] for e in data["errors"]} == {
        "base_url",
        "list_domain",
        "from_address",
        "name",
        "postal_address",
        "privacy_url",
        "relay",
    }

    # campaigns check fails where doctor does, and never says OK after an error.
    check = cli("campaigns", "check", "k", "--no-database")
    assert check.exit_code == 2 and "NOT READY: 7 error(s)" in check.stdout, check.stdout
    assert "OK" not in check.stdout.replace("NOT READY", "")
    assert "base_url 'http://127.0.0.1:8000' is this machine" in check.stdout
    # A send to members is refused; a test send goes.
    refused = cli("campaigns", "send", "k", "--yes")
    assert refused.exit_code == 2 and "not ready to mail real people" in refused.stderr
    assert "list_domain" in refused.stderr and "--test" in refused.stderr
    cli("campaigns", "send", "k", "--test", "editor@example.org", check=True)

    set_up_properly(ws, smtp_server.url)
    dns_missing = cli("doctor")
    assert dns_missing.exit_code == 2
    assert "5 DNS record(s) missing or different: SPF lists.cen-network.org.uk" in dns_missing.stdout
    assert "[MISSING] DMARC _dmarc.cen-network.org.uk" in dns_missing.stdout
    assert '_dmarc.cen-network.org.uk. IN TXT "v=DMARC1; p=none; adkim=r; aspf=r"' in dns_missing.stdout
    assert "NOT READY to mail real people: 1 problem(s)" in dns_missing.stdout

    records = json.loads(cli("dns", "--json", check=True).stdout)
    assert [r["kind"] for r in records] == ["SPF", "MX", "DKIM", "DKIM", "DMARC"]
    assert records[1]["zone"] == f"lists.{DOMAIN}. IN MX 10 news.{DOMAIN}."
    dns_server.publish(records)
    ready = cli("doctor")
    assert ready.exit_code == 0, ready.output
    assert "READY to mail real people: 0 problem(s), 0 warning(s)" in ready.stdout
    assert f"[ok] DKIM mailer-rsa._domainkey.{DOMAIN}" in ready.stdout
    live = cli("dns", "--check", check=True).stdout
    assert live.count("[ok]") == 5
    ok = cli("campaigns", "check", "k", "--no-database", check=True)
    assert "OK: 0 error(s)" in ok.stdout

    # Now a real send goes, through the relay, speaking as the network.
    members = tmp_path / "members.csv"
    members.write_text(
        "email,name,region,consent_source,consent_date\nann@example.net,Ann,canterbury,form,2025-01-01\n"
    )
    cli("lists", "import", str(members), check=True)
    cli("campaigns", "send", "k", "--yes", check=True)
    [got] = smtp_server.messages
    message = email.message_from_bytes(got.data, policy=email.policy.default)
    assert message["From"].addresses[0].addr_spec == f"news@{DOMAIN}"
    assert f"https://news.{DOMAIN}/u/" in message["List-Unsubscribe"]
    assert "5 Example Row" in message.get_body(("plain",)).get_content()


@pytest.mark.slow
def test_a_published_key_that_is_not_ours_and_two_spf_records(
    tmp_path: Path, smtp_server: SmtpTestServer, dns_server: DnsTestServer
) -> None:
    cli = cli_for(tmp_path, MAILER_DNS_RESOLVER=dns_server.address, MAILER_RELAY=smtp_server.url)
    ws = tmp_path / "net"
    flags = ["--name", NETWORK.name, "--from", NETWORK.from_address, "--base-url", NETWORK.base_url]
    cli(
        "init",
        str(ws),
        *flags,
        "--postal-address",
        NETWORK.postal_address,
        *PRIVACY,
        "--no-input",
        check=True,
    )
    records = json.loads(cli("dns", "--json", check=True).stdout)
    for r in records:
        if r["kind"] == "DKIM" and "k=rsa" in r["value"]:
            r["value"] = r["value"][:-12] + "AAAAAAAAAAAA"
    dns_server.publish(records)
    dns_server.publish([{"name": f"lists.{DOMAIN}", "type": "TXT", "value": "v=spf1 -all"}])
    out = cli("doctor")
    assert out.exit_code == 2
    assert "2 DNS record(s) missing or different: SPF lists.cen-network.org.uk, DKIM mailer-rsa" in out.stdout
    assert "[DIFFERENT] DKIM mailer-rsa._domainkey.cen-network.org.uk" in out.stdout
    data = json.loads(cli("doctor", "--json").stdout)
    spf = next(r for r in data["dns"] if r["kind"] == "SPF")
    assert spf["status"] == "different" and "more than one SPF record" in spf["detail"]


@pytest.mark.slow
def test_without_a_resolver_the_records_are_printed_to_publish(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    """Nothing answers at the resolver (a closed port): doctor cannot look the records up, says so as a
    warning, and prints every record to publish; the settings' checks still decide."""
    closed = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    cli = cli_for(tmp_path, MAILER_DNS_RESOLVER=closed, MAILER_RELAY=smtp_server.url)
    ws = tmp_path / "net"
    flags = ["--name", NETWORK.name, "--from", NETWORK.from_address, "--base-url", NETWORK.base_url]
    cli(
        "init",
        str(ws),
        *flags,
        "--postal-address",
        NETWORK.postal_address,
        *PRIVACY,
        "--no-input",
        check=True,
    )
    out = cli("doctor")
    assert out.exit_code == 0, out.output
    assert "warning: dns: the DNS could not be checked from this machine" in out.stdout
    assert out.stdout.count("[unchecked]") == 5
    assert (
        f'_dmarc.{DOMAIN}. IN TXT "v=DMARC1' in out.stdout
        and f"mailer-ed25519._domainkey.{DOMAIN}" in out.stdout
    )
    assert "READY to mail real people: 0 problem(s), 1 warning(s)" in out.stdout
    printed = cli("dns", check=True).stdout
    assert f"lists.{DOMAIN}. IN MX 10 news.{DOMAIN}." in printed and "; SPF: the return path" in printed


def test_an_unreachable_relay_is_a_problem(tmp_path: Path) -> None:
    relay = f"smtp://127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    cli = cli_for(tmp_path, MAILER_RELAY=relay)
    ws = tmp_path / "net"
    flags = ["--name", NETWORK.name, "--from", NETWORK.from_address, "--base-url", NETWORK.base_url]
    cli(
        "init",
        str(ws),
        *flags,
        "--postal-address",
        NETWORK.postal_address,
        *PRIVACY,
        "--no-input",
        check=True,
    )
    out = cli("doctor", "--no-dns")
    assert out.exit_code == 2
    assert f"error: relay: cannot reach the relay {relay}" in out.stdout
    assert "NOT READY to mail real people: 1 problem(s)" in out.stdout


def test_the_demo_workspace_is_ready_until_campaigns_wait_for_a_dead_worker(
    mailer_cli: MailerCli, workspace: Path, database_url: str
) -> None:
    """The tests' (and `mailer demo`'s) workspace is a demo: example.org and a Maildir outbox pass."""
    ready = mailer_cli("doctor", check=True)
    assert "note: a demo workspace (demo = true)" in ready.stdout
    db = open_database(load(workspace, env={"MAILER_DATABASE_URL": database_url}))
    try:
        with db.session() as session:
            session.execute(
                insert(Campaign).values(
                    slug="queued-one",
                    kind="newsletter",
                    title="t",
                    subject="s",
                    audience="all",
                    issue_date="2025-11-01",
                    status="sending",
                )
            )
    finally:
        db.dispose()
    stuck = mailer_cli("doctor")
    assert stuck.exit_code == 2
    assert "error: workers: 1 campaign(s) wait to be sent (queued-one) and no worker is alive" in stuck.stdout
    assert "mailer worker" in stuck.stdout


def test_check_never_says_ok_after_an_error(mailer_cli: MailerCli, workspace: Path) -> None:
    """A DKIM key readable by others: `campaigns check` prints the error once, then NOT READY."""
    shutil.copytree(
        REPO / "tests" / "fixtures" / "campaigns" / "2025-11-kent-network", workspace / "campaigns" / "k"
    )
    mailer_cli("dkim", "keys", check=True)
    (workspace / ".mailer-dkim.pem").chmod(0o644)
    out = mailer_cli("campaigns", "check", "k", "--no-database")
    assert out.exit_code == 2
    assert out.stdout.count("the DKIM key file is readable by others") == 1, out.stdout
    assert "chmod 600" in out.stdout
    assert out.stdout.rstrip().endswith("NOT READY: 1 error(s), 0 warning(s)"), out.stdout
    assert "OK" not in out.stdout.replace("NOT READY", "")
    data = json.loads(mailer_cli("campaigns", "check", "k", "--no-database", "--json").stdout)
    assert data["ok"] is False
    doctor = mailer_cli("doctor")
    assert doctor.exit_code == 2 and "error: dkim: the DKIM key file is readable by others" in doctor.stdout


def test_init_asks_at_a_terminal(tmp_path: Path) -> None:
    """`mailer init DIR` at a real terminal (a pty) asks for what no flag gave, the list domain
    defaulting from the From address's domain."""
    import pty
    import subprocess
    import sys

    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    console = Path(sys.executable).with_name("mailer")
    ws = tmp_path / "asked"
    proc = subprocess.Popen(
        [str(console), "init", str(ws), "--name", "Central England Network"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    os.close(secondary)
    answers = f"news@{DOMAIN}\nhttps://news.{DOMAIN}\n\n5 Example Row, Birmingham B1 1AA\nhttps://{DOMAIN}/privacy\n"
    os.write(primary, answers.encode())
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=30) == 0, seen.decode(errors="replace")
    os.close(primary)
    transcript = seen.decode(errors="replace")
    assert "The address your mail comes From" in transcript
    assert f"[lists.{DOMAIN}]" in transcript, "the list domain's default comes from the From address"
    assert "Your network's name" not in transcript, "a flag given is not asked again"
    settings = load(ws, env={})
    assert (settings.from_address, settings.base_url, settings.list_domain) == (
        f"news@{DOMAIN}",
        f"https://news.{DOMAIN}",
        f"lists.{DOMAIN}",
    )
    networks_toml = (ws / "lists" / "networks.toml").read_text()
    assert 'postal_address = "5 Example Row, Birmingham B1 1AA"' in networks_toml
    assert "The https address of your privacy notice" in transcript
    assert f'privacy_url = "https://{DOMAIN}/privacy"' in networks_toml
