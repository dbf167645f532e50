"""Networks: lists/networks.toml read and checked, which network a region and an issue
belong to, the sender a network or a local group speaks as, and `mailer init`'s identity flags."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support.cli_runner import MailerCli

from mailer.audience import networks
from mailer.audience.shape import load_shape
from mailer.errors import ConfigError, InvalidInput
from mailer.identity import issue_identity
from mailer.settings import Settings, load
from mailer.workspace import init_workspace

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def demo_lists(tmp_path: Path) -> Path:
    lists = tmp_path / "lists"
    shutil.copytree(REPO / "lists", lists)
    return lists


def write_networks(lists: Path, text: str) -> Path:
    path = lists / "networks.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_demo_has_two_networks_owning_their_subtrees(demo_lists: Path) -> None:
    shape = load_shape(demo_lists)
    settings = Settings(workspace=demo_lists.parent)
    assert list(shape.networks) == ["kent", "central-england"]
    ce = shape.networks["central-england"]
    assert (ce.name, ce.from_address, ce.reply_to, ce.list_slug) == (
        "Central England Network",
        "central-england@example.org",
        "ce-editor@example.org",
        "central-england",
    )
    assert ce.signing_domain == "example.org" and ce.postal_address and ce.charity
    assert networks.of_region(shape, settings, "birmingham") == ce
    assert networks.of_region(shape, settings, "central-england") == ce
    assert networks.of_region(shape, settings, "canterbury") == shape.networks["kent"]
    assert networks.of_region(shape, settings, "lewes") is None, "Sussex belongs to no demo network"
    assert networks.of_region(shape, settings, None) is None
    assert "Central England Network" in ce.welcome_text()


def test_without_networks_toml_the_workspace_is_one_network(tmp_path: Path) -> None:
    init_workspace(tmp_path / "ws", organisation="Kent Network")
    settings = load(tmp_path / "ws", env={})
    shape = load_shape(tmp_path / "ws" / "lists")
    assert shape.networks == {}
    (only,) = networks.networks_of(shape, settings)
    assert (only.slug, only.name, only.from_address, only.list_slug) == (
        "kent-network",
        "Kent Network",
        "newsletter@example.org",
        "kent-network",
    )
    assert networks.of_region(shape, settings, "birmingham") == only
    assert networks.network_for_issue(shape, settings, None, "interest:refugees") == only
    with pytest.raises(ConfigError, match="unknown network 'kent'"):
        networks.network_for_issue(shape, settings, "kent", "all")


def test_an_issue_names_its_network_or_its_audience_implies_it(demo_lists: Path) -> None:
    shape = load_shape(demo_lists)
    settings = Settings(workspace=demo_lists.parent)
    kent, ce = shape.networks["kent"], shape.networks["central-england"]
    assert networks.network_for_issue(shape, settings, None, "region:kent") == kent
    assert networks.network_for_issue(shape, settings, None, "region:birmingham and interest:refugees") == ce
    assert networks.network_for_issue(shape, settings, "kent", "interest:mp-advocacy") == kent
    # `not region:x` does not imply x's network.
    assert networks.network_for_issue(shape, settings, None, "region:derby and not region:kent") == ce
    with pytest.raises(ConfigError) as ambiguous:
        networks.network_for_issue(shape, settings, None, "region:kent or region:birmingham")
    assert "2 networks (central-england, kent)" in str(ambiguous.value)
    assert "network: <slug>" in str(ambiguous.value.problem.hint)
    with pytest.raises(ConfigError, match="names no region"):
        networks.network_for_issue(shape, settings, None, "interest:refugees")
    with pytest.raises(ConfigError) as unknown:
        networks.network_for_issue(shape, settings, "central-englnd", "all")
    assert "did you mean 'central-england'" in str(unknown.value.problem.hint)


def test_campaign_network_is_the_one_rule_for_campaigns_issues_and_members(
    demo_lists: Path, tmp_path: Path
) -> None:
    shape = load_shape(demo_lists)
    settings = Settings(workspace=demo_lists.parent)
    kent, ce = shape.networks["kent"], shape.networks["central-england"]
    rule = networks.campaign_network
    # The first name given wins (the campaign row's over the issue file's), whatever the audience.
    assert rule(shape, settings, "kent", "central-england", audience="region:birmingham") == kent
    assert rule(shape, settings, "", "central-england", audience="region:kent") == ce
    assert rule(shape, settings, None, "", audience="region:birmingham and interest:refugees") == ce
    # A name given must be a network, with the fix.
    with pytest.raises(ConfigError, match="unknown network 'central-englnd'") as unknown:
        rule(shape, settings, "central-englnd", "kent", audience="region:kent")
    assert "did you mean 'central-england'" in str(unknown.value.problem.hint)
    # No name: the audience decides; "all" (the default) names no region of two networks.
    with pytest.raises(ConfigError, match="names no region"):
        rule(shape, settings)
    with pytest.raises(ConfigError, match="2 networks"):
        rule(shape, settings, audience="region:kent or region:birmingham")
    # A member: their region's network; the organisation's outside every network.
    assert networks.member_network(shape, settings, "birmingham") == ce
    assert networks.member_network(shape, settings, "canterbury") == kent
    organisation = networks.default_network(settings)
    assert networks.member_network(shape, settings, "lewes") == organisation
    assert networks.member_network(shape, settings, None) == organisation
    assert networks.member_network(shape, settings, "atlantis") == organisation

    # Without networks.toml: one network, whatever a campaign row or issue says.
    init_workspace(tmp_path / "ws", organisation="Kent Network")
    one_settings = load(tmp_path / "ws", env={})
    one_shape = load_shape(tmp_path / "ws" / "lists")
    only = networks.default_network(one_settings)
    assert rule(one_shape, one_settings, "kent", "central-england", audience="region:kent") == only
    assert rule(one_shape, one_settings, audience="interest:refugees") == only
    assert networks.member_network(one_shape, one_settings, "birmingham") == only


def test_a_local_group_speaks_with_its_own_name_and_reply_to(demo_lists: Path) -> None:
    shape = load_shape(demo_lists)
    settings = Settings(workspace=demo_lists.parent)
    ce = shape.networks["central-england"]
    group = networks.group_sender(shape, "region:birmingham and interest:refugees")
    assert group is not None and group.slug == "birmingham"
    assert networks.group_sender(shape, "region:birmingham or region:coventry") is None
    assert networks.group_sender(shape, "region:coventry") is None, "Coventry has no sender of its own"
    as_group = networks.sender_settings(settings, ce, group)
    assert (as_group.organisation, as_group.from_address, as_group.reply_to) == (
        "Birmingham Group",
        "central-england@example.org",
        "birmingham-group@example.org",
    )
    as_network = networks.sender_settings(settings, ce)
    assert (as_network.organisation, as_network.reply_to, as_network.dkim_domain) == (
        "Central England Network",
        "ce-editor@example.org",
        "example.org",
    )


def test_a_group_of_another_network_never_lends_its_name(demo_lists: Path) -> None:
    """The rule lives in networks alone: the identity a mailing renders with asks it, never repeats it."""
    shape = load_shape(demo_lists)
    settings = Settings(workspace=demo_lists.parent)
    kent, ce = shape.networks["kent"], shape.networks["central-england"]
    assert "birmingham" in networks.regions_of(shape, ce) and "birmingham" not in networks.regions_of(
        shape, kent
    )
    birmingham = networks.group_sender(shape, "region:birmingham", ce)
    assert birmingham is not None and birmingham.slug == "birmingham"
    assert networks.group_sender(shape, "region:birmingham", kent) is None
    assert (networks.sender_name(ce, birmingham), networks.reply_to(ce, birmingham)) == (
        "Birmingham Group",
        "birmingham-group@example.org",
    )
    assert (networks.sender_name(ce), networks.reply_to(ce)) == (
        "Central England Network",
        "ce-editor@example.org",
    )
    spoken = issue_identity(shape, settings, "kent", "region:birmingham")
    assert (spoken.network, spoken.group, spoken.sender_name) == (kent, None, kent.sender_name)
    alone = issue_identity(shape, settings, None, "region:birmingham")
    assert (alone.network, alone.group, alone.sender_name, alone.reply_to) == (
        ce,
        birmingham,
        "Birmingham Group",
        "birmingham-group@example.org",
    )


BAD_NETWORKS = """\
[[network]]
slug = "kent"
name = "Kent Network"
regions = ["kent"]
from_address = "newsletter@example.org"

[[network]]
slug = "Central England"
name = ""
regions = ["central-englnd"]
from_address = "not an address"
colour = "yellow"
sender = "x"

[[network]]
slug = "canterbury-only"
name = "Canterbury"
regions = ["canterbury"]
from_address = "c@example.org"

[[network]]
slug = "kent"
name = "Kent again"
regions = ["sussex"]
from_address = "k@example.org"
"""


def test_every_problem_of_networks_toml_at_once_with_its_line(demo_lists: Path) -> None:
    path = write_networks(demo_lists, BAD_NETWORKS)
    with pytest.raises(InvalidInput) as caught:
        load_shape(demo_lists)
    found = {(p.line, p.field, p.message) for p in caught.value.problems}
    assert all(p.path == path for p in caught.value.problems)
    messages = "\n".join(f"{line} {field} {message}" for line, field, message in sorted(found, key=str))
    assert "7 slug bad network slug 'Central England'" in messages
    assert "7 name a network needs a name" in messages
    assert "7 regions unknown region 'central-englnd'" in messages
    assert "7 from_address from_address 'not an address' is not an email address" in messages
    assert "7 colour colour 'yellow' is not #rrggbb" in messages
    assert "7 sender unknown key 'sender'" in messages
    assert "region 'canterbury' of network 'canterbury-only' lies inside 'kent' of network 'kent'" in messages
    assert "duplicate network 'kent'" in messages
    hints = {p.hint for p in caught.value.problems if p.field == "regions" and "unknown" in p.message}
    assert hints == {"did you mean 'central-england'?"}


def test_a_region_claimed_twice_and_broken_toml(demo_lists: Path) -> None:
    write_networks(
        demo_lists,
        '[[network]]\nslug = "a"\nname = "A"\nregions = ["kent"]\nfrom_address = "a@example.org"\n'
        '[[network]]\nslug = "b"\nname = "B"\nregions = ["kent"]\nfrom_address = "b@example.org"\n',
    )
    with pytest.raises(InvalidInput, match="claimed by networks 'a' and 'b'"):
        load_shape(demo_lists)
    write_networks(demo_lists, '[[network]]\nslug = "a\n')
    with pytest.raises(InvalidInput) as caught:
        load_shape(demo_lists)
    assert caught.value.problems[0].line == 2 and "not valid TOML" in caught.value.problems[0].message
    write_networks(demo_lists, 'network = "kent"\n')
    with pytest.raises(InvalidInput, match=r"expected \[\[network\]\] tables"):
        load_shape(demo_lists)


def test_init_takes_the_networks_name_and_sender(tmp_path: Path) -> None:
    cli = MailerCli(os.environ)
    ws = tmp_path / "ce"
    out = cli(
        "init",
        str(ws),
        "--name",
        "Central England Network",
        "--from",
        "news@ce.example.org",
        "--base-url",
        "https://news.ce.example.org",
        "--postal-address",
        "5 Example Row, Birmingham B1 1AA",
        "--privacy-url",
        "https://ce.example.org/privacy",
        check=True,
    )
    settings = load(ws, env={})
    assert (settings.organisation, settings.from_address) == (
        "Central England Network",
        "news@ce.example.org",
    )
    assert (settings.base_url, settings.list_domain, settings.demo) == (
        "https://news.ce.example.org",
        "lists.ce.example.org",
        False,
    )
    assert "Kent" not in (ws / "mailer.toml").read_text(encoding="utf-8")
    [network] = load_shape(ws / "lists").networks.values()
    assert (network.name, network.from_address, network.postal_address, network.regions) == (
        "Central England Network",
        "news@ce.example.org",
        "5 Example Row, Birmingham B1 1AA",
        (),
    )
    assert "Note:" not in out.stdout
    bare = cli("init", str(tmp_path / "bare"), check=True)
    assert load(tmp_path / "bare", env={}).organisation == "Our Network"
    assert "left as placeholders: --name, --from, --base-url, --postal-address, --privacy-url" in bare.stdout
    refused = cli("init", str(tmp_path / "bad"), "--from", "nobody")
    assert refused.exit_code == 2 and "'nobody' is not an email address" in refused.output
    assert not (tmp_path / "bad").exists()
    scripted = cli("init", str(tmp_path / "scripted"), "--no-input", "--name", "X Network")
    assert scripted.exit_code == 2
    assert "--no-input needs --from, --base-url, --postal-address" in scripted.stderr
    assert not (tmp_path / "scripted").exists()


def test_the_demo_workspace_gets_both_networks_and_the_central_england_issue(tmp_path: Path) -> None:
    init_workspace(tmp_path / "demo", demo=True)
    shape = load_shape(tmp_path / "demo" / "lists")
    assert list(shape.networks) == ["kent", "central-england"]
    assert (tmp_path / "demo" / "campaigns" / "2025-12-central-england" / "issue.yaml").exists()
