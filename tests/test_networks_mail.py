"""Every message speaks as its network: From, Reply-To, List-Id, Feedback-ID, the footer
(postal address and charity line), the sign-off, the header band and the DKIM domain.

In a demo workspace (both seed networks), a Kent issue and the Central England issue are sent in one
run to the test SMTP server, on SQLite and PostgreSQL, and every message is parsed with ``email`` and
its DKIM signatures verified with dkimpy against the records `mailer dkim dns` prints. An issue for
one local group alone is From that group; an issue whose network cannot be told is refused by
`campaigns check` and by `send`, with the fix. A workspace without lists/networks.toml is unchanged
(tests/test_render.py's golden files). The footers of both networks have golden files of their own:

    MAILER_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_networks_mail.py
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from conftest import TEST_SECRET
from sqlalchemy import func, select
from support.cli_runner import MailerCli
from support.rendering import Colours, check_golden, contrast
from support.smtp_server import SmtpTestServer

from mailer import sending
from mailer.audience.shape import Shape, load_shape
from mailer.compose import compose, compose_all
from mailer.db import Database, open_database
from mailer.errors import ConfigError
from mailer.identity import default_identity, issue_identity, text_on
from mailer.issue import load_campaign
from mailer.message import dns_records
from mailer.models import Campaign
from mailer.render import Renderer
from mailer.settings import Settings, load
from mailer.web import create_app
from mailer.workspace import init_workspace, write_dkim_keys

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8000"
GOLDEN = Path(__file__).resolve().parent / "golden" / "networks"
KENT = "2025-11-kent-network"
CE = "2025-12-central-england"
CE_POSTAL = "Central England Network, c/o 5 Example Row, Birmingham B1 1AA"
KENT_POSTAL = "Kent Network, c/o 17 Example Street, Maidstone ME14 1AA"
CHARITY = "A regional network of Example Human Rights UK, registered charity no. 1000000."


@dataclass
class Demo:
    root: Path
    settings: Settings
    shape: Shape
    db: Database
    cli: MailerCli
    smtp: SmtpTestServer

    def reload(self) -> None:
        self.shape = load_shape(self.root / "lists")


@pytest.fixture
def demo(tmp_path: Path, database_url: str, smtp_server: SmtpTestServer) -> Iterator[Demo]:
    """The demo workspace (both networks), its lists synced and members imported, DKIM keys made,
    sending to the test SMTP server."""
    root = tmp_path / "demo"
    init_workspace(root, demo=True)
    env = dict(os.environ)
    env.update(
        MAILER_WORKSPACE=str(root),
        MAILER_DATABASE_URL=database_url,
        MAILER_SECRET=TEST_SECRET,
        MAILER_RELAY=smtp_server.url,
    )
    cli = MailerCli(env)
    cli("dkim", "keys", check=True)
    cli("lists", "sync", check=True)
    cli("lists", "import", str(root / "lists" / "members.csv"), check=True)
    settings = load(root, env={k: v for k, v in env.items() if k.startswith("MAILER_")})
    db = open_database(settings)
    yield Demo(root, settings, load_shape(root / "lists"), db, cli, smtp_server)
    db.dispose()


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def published(demo: Demo) -> dict[bytes, bytes]:
    """What `mailer dkim dns --json` says to publish, as dkimpy's DNS."""
    records = json.loads(demo.cli("dkim", "dns", "--json", check=True).stdout)
    return {(r["name"] + ".").encode(): r["value"].encode() for r in records}


def verifies(raw: bytes, dns: dict[bytes, bytes]) -> list[bool]:
    checker = dkim.DKIM(raw)
    count = len(re.findall(rb"(?m)^DKIM-Signature:", raw.split(b"\r\n\r\n", 1)[0]))
    return [bool(checker.verify(idx=i, dnsfunc=lambda name, timeout=5: dns.get(name))) for i in range(count)]


def signing_domains(message: EmailMessage) -> set[str]:
    return {
        m.group(1)
        for s in message.get_all("DKIM-Signature") or []
        if (m := re.search(r"\bd=([^;\s]+)", str(s)))
    }


def send(demo: Demo, slug: str, *extra: str) -> None:
    demo.cli("campaigns", "send", slug, "--yes", "--in-process", *extra, check=True)


def write_issue(root: Path, slug: str, text: str) -> None:
    folder = root / "campaigns" / slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.yaml").write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The acceptance: two networks in one run


@pytest.mark.slow
def test_a_kent_and_a_central_england_issue_each_speak_as_their_network(demo: Demo) -> None:
    send(demo, KENT)
    send(demo, CE)
    dns = published(demo)
    by_campaign: dict[str, list[tuple[bytes, EmailMessage]]] = {KENT: [], CE: []}
    for received in demo.smtp.messages:
        message = parse(received.data)
        slug = re.search(r"\.([a-z0-9-]+)@", str(message["Message-ID"]))
        assert slug is not None
        by_campaign[slug.group(1)].append((received.data, message))
    assert by_campaign[KENT] and by_campaign[CE]
    with demo.db.session() as session:
        networks = {slug: net for slug, net in session.execute(select(Campaign.slug, Campaign.network))}
        total = session.scalar(select(func.count()).select_from(Campaign))
    assert networks == {KENT: "kent", CE: "central-england"} and total == 2

    for raw, message in by_campaign[CE]:
        assert str(message["From"]) == "Central England Network <central-england@example.org>"
        assert message["Reply-To"].addresses[0].addr_spec == "ce-editor@example.org"
        assert str(message["List-Id"]) == "Central England Network <central-england.lists.example.org>"
        assert str(message["Feedback-ID"]).strip() == f"{CE}:newsletter:central-england:example.org"
        text, html = text_of(message), html_of(message)
        for part in (text, html):
            assert "Sent by Central England Network (central-england@example.org)" in " ".join(part.split())
            assert "member of the Central England Network mailing list" in " ".join(part.split())
            assert CE_POSTAL in part and CHARITY in part
            assert "Kent" not in part
        assert signing_domains(message) == {"example.org"}
        assert verifies(raw, dns) == [True, True]
    for raw, message in by_campaign[KENT]:
        assert str(message["From"]) == "Kent Network <newsletter@example.org>"
        assert message["Reply-To"].addresses[0].addr_spec == "newsletter@example.org"
        assert str(message["List-Id"]) == "Kent Network <kent-network.lists.example.org>"
        assert str(message["Feedback-ID"]).strip() == f"{KENT}:newsletter:kent-network:example.org"
        text = " ".join(text_of(message).split())
        assert "member of the Kent Network mailing list" in text
        assert KENT_POSTAL in text and CHARITY in text and "Central England" not in text
        assert verifies(raw, dns) == [True, True]

    # The links in one message of each network open pages that speak as that network.
    with TestClient(create_app(demo.settings, shape=demo.shape, database=demo.db), base_url=BASE) as client:
        for slug, name, other in (
            (CE, "Central England Network", "Kent Network"),
            (KENT, "Kent Network", None),
        ):
            _raw, message = by_campaign[slug][0]
            text = text_of(message)
            links = {
                "browser": re.search(r"View in your browser:\s+(\S+)", text),
                "preferences": re.search(r"Update your preferences:\s+(\S+)", text),
                "unsubscribe": re.search(r"Unsubscribe:\s+(\S+)", text),
            }
            for what, found in links.items():
                assert found is not None, what
                page = client.get(found.group(1).removeprefix(BASE))
                assert page.status_code == 200, (slug, what)
                if what == "browser":  # the message itself, as a web page: its footer names the sender
                    assert f"Sent by {name}" in " ".join(page.text.split()), slug
                    continue
                title = re.search(r"<title>([^<]*)</title>", page.text)
                assert title is not None and title.group(1).endswith(f"– {name}"), (slug, what, title)
                if other is not None:
                    assert other not in title.group(1)


@pytest.mark.slow
def test_a_network_signs_with_its_own_domain_and_dkim_dns_prints_each_domain_once(demo: Demo) -> None:
    networks = demo.root / "lists" / "networks.toml"
    text = networks.read_text(encoding="utf-8")
    networks.write_text(
        text.replace(
            'reply_to = "ce-editor@example.org"',
            'reply_to = "ce-editor@example.org"\ndkim_domain = "central.example.net"',
        ),
        encoding="utf-8",
    )
    records = json.loads(demo.cli("dkim", "dns", "--json", check=True).stdout)
    assert sorted((r["domain"], r["algorithm"], tuple(r["networks"])) for r in records) == [
        ("central.example.net", "ed25519-sha256", ("central-england",)),
        ("central.example.net", "rsa-sha256", ("central-england",)),
        ("example.org", "ed25519-sha256", ("kent",)),
        ("example.org", "rsa-sha256", ("kent",)),
    ]
    human = demo.cli("dkim", "dns", check=True).stdout
    assert "mailer-rsa._domainkey.central.example.net. IN TXT" in human
    assert human.count("._domainkey.example.org. IN TXT") == 2

    send(demo, CE)
    dns = published(demo)
    for received in demo.smtp.messages:
        message = parse(received.data)
        assert signing_domains(message) == {"central.example.net"}
        assert verifies(received.data, dns) == [True, True]
    only_org = {k: v for k, v in dns.items() if k.endswith(b".example.org.")}
    assert verifies(demo.smtp.messages[0].data, only_org) == [False, False]


# ---------------------------------------------------------------------------------------------
# A local group's own sender; an issue whose network cannot be told

BIRMINGHAM_ISSUE = """\
kind: newsletter
title: Birmingham Group news
subject: "Birmingham Group: December"
date: 2025-12-01
audience: region:birmingham
intro: Our group's news for December.
items:
  - id: meeting
    title: Group meeting
    highlight: false
    body: Our monthly meeting is on Tuesday 2 December.
"""


def test_an_issue_for_one_local_group_is_from_that_group(demo: Demo) -> None:
    write_issue(demo.root, "2025-12-birmingham", BIRMINGHAM_ISSUE)
    checked = demo.cli("campaigns", "check", "2025-12-birmingham", check=True).stdout
    assert "speaks as Birmingham Group <central-england@example.org>" in checked
    send(demo, "2025-12-birmingham")
    assert demo.smtp.messages
    for received in demo.smtp.messages:
        message = parse(received.data)
        assert str(message["From"]) == "Birmingham Group <central-england@example.org>"
        assert str(message["Reply-To"]) == "Birmingham Group <birmingham-group@example.org>"
        # Its list is still the network's: one-click leaves Central England's mail.
        assert str(message["List-Id"]) == "Central England Network <central-england.lists.example.org>"
        text = " ".join(text_of(message).split())
        assert "Sent by Birmingham Group (central-england@example.org)" in text
        assert "member of the Central England Network mailing list" in text
        # No sign-off of its own: the network's.
        assert "In solidarity The Central England Network" in text
        assert "In solidarity<br />The Central England Network" in html_of(message)


AMBIGUOUS_ISSUE = """\
kind: newsletter
title: Joint news
subject: Joint news
date: 2025-12-01
audience: region:kent or region:birmingham
intro: See http://example.org/joint for more.
items:
  - id: joint
    title: A joint item
    highlight: false
    body: Both networks together.
    interests: [no-such-interest]
"""


def test_an_issue_whose_network_cannot_be_told_is_refused_with_the_fix(demo: Demo) -> None:
    write_issue(demo.root, "2025-12-joint", AMBIGUOUS_ISSUE)
    checked = demo.cli("campaigns", "check", "2025-12-joint")
    assert checked.exit_code == 2
    out = checked.stdout
    # Every problem in one pass: the network, the unknown interest, and the warning.
    assert re.search(r"issue\.yaml:5: network: which network does this issue speak as\?", out), out
    assert "add `network: <slug>` to the issue file; this workspace's networks: kent, central-england" in out
    assert "no-such-interest" in out and "insecure link http://example.org/joint" in out
    as_json = json.loads(demo.cli("campaigns", "check", "2025-12-joint", "--json").stdout)
    assert [p["field"] for p in as_json["errors"]].count("network") == 1

    # Only the network wrong: the send is refused before anything is written or sent.
    path = demo.root / "campaigns" / "2025-12-joint" / "issue.yaml"
    path.write_text(
        AMBIGUOUS_ISSUE.replace("no-such-interest", "refugees").replace("http:", "https:"), encoding="utf-8"
    )
    checked = demo.cli("campaigns", "check", "2025-12-joint")
    assert checked.exit_code == 2 and "1 error(s), 0 warning(s)" in checked.stdout
    refused = demo.cli("campaigns", "send", "2025-12-joint", "--yes", "--in-process")
    assert refused.exit_code == 2
    assert "which network does this issue speak as?" in refused.stderr
    assert "add `network: <slug>`" in refused.stderr and "issue.yaml:5" in refused.stderr
    assert demo.smtp.messages == []
    with demo.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 0
    with pytest.raises(ConfigError, match="which network") as caught:
        sending.plan_send(demo.db, demo.settings, demo.shape, "2025-12-joint")
    assert caught.value.field == "network" and caught.value.path == path

    # Naming the network fixes it; Birmingham is then outside Kent's regions: a warning.
    path.write_text("network: kent\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    checked = demo.cli("campaigns", "check", "2025-12-joint")
    assert checked.exit_code == 0, checked.output
    assert (
        "warning: audience: the audience names birmingham (Central England Network), outside this issue's "
        "network Kent Network" in checked.stdout
    )


def test_check_warns_of_items_and_events_outside_the_issues_network(demo: Demo) -> None:
    source = (demo.root / "campaigns" / CE / "issue.yaml").read_text(encoding="utf-8")
    broken = source.replace("    regions: [coventry]\n", "    regions: [coventry, canterbury]\n").replace(
        "    regions: [nottingham]\n", "    regions: [lewes]\n"
    )
    assert broken != source
    (demo.root / "campaigns" / CE / "issue.yaml").write_text(broken, encoding="utf-8")
    out = demo.cli("campaigns", "check", CE, "--no-database", check=True).stdout
    lines = [line for line in out.splitlines() if "outside this issue's network" in line]
    assert len(lines) == 2, out
    assert "items[2].regions: item 'refugee-welcome' is for canterbury (Kent Network), outside" in lines[0]
    assert "calendar[" in lines[1] and "lewes (no network)" in lines[1]
    assert "the mail speaks as Central England Network" in lines[0]


def member_in(root: Path, region: str) -> str:
    """The address of a demo member whose home region is ``region``."""
    with (root / "lists" / "members.csv").open(encoding="utf-8") as f:
        return next(row["email"] for row in csv.DictReader(f) if row["region"] == region)


def test_preview_of_a_member_of_another_network_warns(demo: Demo) -> None:
    address = member_in(demo.root, "canterbury")
    out = demo.cli("campaigns", "preview", CE, "--member", address, "-o", str(demo.root / "p"))
    assert out.exit_code == 0, out.output
    assert f"{address} is in the Kent Network (South East › Kent › Canterbury)" in out.stderr
    assert "this issue is Central England Network's" in out.stderr
    ours = member_in(demo.root, "birmingham")
    quiet = demo.cli("campaigns", "preview", CE, "--member", ours, "-o", str(demo.root / "p"))
    assert quiet.exit_code == 0 and "network" not in quiet.stderr, quiet.stderr
    html = (demo.root / "p").glob("member-*.html")
    assert all("Central England Network, c/o" in p.read_text(encoding="utf-8") for p in html)


# ---------------------------------------------------------------------------------------------
# Rendering as the network: golden footers, the band's colour, the default sign-off


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    """A copy of the demo's lists (both networks), with fixed settings for golden output."""
    root = tmp_path / "ws"
    shutil.copytree(Path(__file__).resolve().parent.parent / "lists", root / "lists")
    shutil.copytree(Path(__file__).resolve().parent.parent / "campaigns", root / "campaigns")
    (root / "templates").mkdir()
    return root


def fixed(root: Path) -> Settings:
    return Settings(workspace=root, base_url="https://news.example.org", organisation="Kent Network")


def footers(html: str, text: str) -> tuple[str, str]:
    html_footer = html[html.index('<div class="mailer-footer"') : html.index("</body>")]
    text_footer = text[text.rindex("\n--\n") + 1 :]
    return html_footer, text_footer


@pytest.mark.parametrize(("slug", "name"), [(CE, "central-england"), (KENT, "kent")])
def test_golden_footers_of_both_networks(lists: Path, slug: str, name: str) -> None:
    settings, shape = fixed(lists), load_shape(lists / "lists")
    loaded = load_campaign(lists, slug, shape)
    identity = issue_identity(shape, settings, loaded.issue.network, loaded.issue.audience)
    assert identity.network.slug == name
    rendered = Renderer(settings, identity).render(compose_all(loaded.issue), loaded)
    html_footer, text_footer = footers(rendered.html, rendered.text)
    check_golden(GOLDEN / f"{name}-footer.html", html_footer)
    check_golden(GOLDEN / f"{name}-footer.txt", text_footer)
    network = shape.networks[name]
    for part in (html_footer, " ".join(text_footer.split())):
        assert network.postal_address in part and network.charity in part
        assert f"member of the {network.name} mailing list" in part
        assert "[[mailer:unsubscribe_url]]" in part and "[[mailer:preferences_url]]" in part


def test_without_networks_the_footer_and_headers_are_as_before(lists: Path) -> None:
    (lists / "lists" / "networks.toml").unlink()
    settings, shape = fixed(lists), load_shape(lists / "lists")
    loaded = load_campaign(lists, KENT, shape)
    identity = issue_identity(shape, settings, loaded.issue.network, loaded.issue.audience)
    assert identity == default_identity(settings) and identity.list_slug is None
    variant = compose(loaded.issue, shape, "kent", frozenset())
    assert Renderer(settings, identity).render(variant, loaded) == Renderer(settings).render(variant, loaded)
    text = Renderer(settings).render(variant, loaded).text
    assert "Sent by Kent Network (newsletter@example.org)" in text and "charity" not in text
    # `network: kent` of the echr alert names nothing in a workspace of one network.
    alert = load_campaign(lists, "2025-11-echr-alert", shape)
    assert alert.issue.network == "kent"
    assert issue_identity(shape, settings, "kent", alert.issue.audience).network.slug == "kent-network"


@pytest.mark.parametrize("colour", ["#ffde00", "#1f4e9c", "#000000", "#ffffff", "#777777", "#00a651"])
def test_the_band_is_the_networks_colour_with_text_that_keeps_4_5_to_1(lists: Path, colour: str) -> None:
    path = lists / "lists" / "networks.toml"
    text = path.read_text(encoding="utf-8")
    at = text.index('slug = "central-england"')
    path.write_text(
        text[:at] + text[at:].replace('colour = "#ffde00"', f'colour = "{colour}"'), encoding="utf-8"
    )
    settings, shape = fixed(lists), load_shape(lists / "lists")
    loaded = load_campaign(lists, CE, shape)
    identity = issue_identity(shape, settings, loaded.issue.network, loaded.issue.audience)
    rendered = Renderer(settings, identity).render(compose_all(loaded.issue), loaded)
    assert f'class="mailer-band" style="background:{colour};' in rendered.html
    assert contrast(text_on(colour), colour) >= 4.5
    parser = Colours()
    parser.feed(rendered.html)
    assert (text_on(colour), colour) in parser.pairs
    for fg, bg in parser.pairs:
        assert contrast(fg, bg) >= 4.5, f"{fg} on {bg}"


def test_the_sign_off_defaults_to_the_networks(lists: Path) -> None:
    settings, shape = fixed(lists), load_shape(lists / "lists")
    path = lists / "campaigns" / CE / "issue.yaml"
    source = path.read_text(encoding="utf-8")
    path.write_text(source[: source.index("sign_off:")], encoding="utf-8")
    loaded = load_campaign(lists, CE, shape)
    assert loaded.issue.sign_off == ""
    identity = issue_identity(shape, settings, loaded.issue.network, loaded.issue.audience)
    rendered = Renderer(settings, identity).render(compose_all(loaded.issue), loaded)
    assert "In solidarity\nThe Central England Network\n\n--\n" in rendered.text
    assert "<p>In solidarity<br />The Central England Network</p>" in rendered.html
    # The Kent network's, for a Kent issue without one of its own.
    kent = replace(identity, network=shape.networks["kent"])
    assert (
        "All the best\nThe Kent Network team"
        in Renderer(settings, kent).render(compose_all(loaded.issue), loaded).text
    )


def test_a_network_postal_address_is_text_not_markup(lists: Path) -> None:
    path = lists / "lists" / "networks.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(CE_POSTAL, "CE <b onclick=x()>Net</b> & <script>alert(1)</script>"),
        encoding="utf-8",
    )
    settings, shape = fixed(lists), load_shape(lists / "lists")
    loaded = load_campaign(lists, CE, shape)
    identity = issue_identity(shape, settings, loaded.issue.network, loaded.issue.audience)
    rendered = Renderer(settings, identity).render(compose_all(loaded.issue), loaded)
    assert "<script>" not in rendered.html and "<b onclick" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "<script>alert(1)</script>" in rendered.text  # plain text is not markup


def test_dns_records_name_each_signing_domain_once(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    init_workspace(root)
    settings = load(root, env={})
    write_dkim_keys(root, settings)
    records = dns_records(settings, ["example.org", "Example.org ", "other.example.net"])
    assert [(r.domain, r.algorithm) for r in records] == [
        ("example.org", "rsa-sha256"),
        ("example.org", "ed25519-sha256"),
        ("other.example.net", "rsa-sha256"),
        ("other.example.net", "ed25519-sha256"),
    ]
    assert [r.domain for r in dns_records(settings)] == ["example.org", "example.org"]
