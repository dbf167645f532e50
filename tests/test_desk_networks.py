"""One network rule for the desk, the check and the send (``networks.campaign_network``), on both
databases: the approve page of a workspace without ``lists/networks.toml`` takes an issue's
``network:`` as ``mailer campaigns send`` does (the workspace's only network, whatever it names),
and ``campaigns check`` finds an issue's network where the send does, or refuses it where the send
does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.desk import ISSUE, Desk, clock, demo_desk, demo_workspace, form_of, sign_in

from mailer import sending
from mailer.audience.networks import default_network
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import approvals
from mailer.errors import ConfigError, InvalidInput
from mailer.issue.check import check_campaign
from mailer.models import Approval, Campaign
from mailer.settings import Settings

__all__ = ["clock", "demo_desk"]  # fixtures

PAGES = f"/desk/issues/{ISSUE}"


ONE_NETWORK = "one network"


@pytest.fixture
def workspace(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The demo workspace; without ``lists/networks.toml`` when a test asks for ``ONE_NETWORK``
    (``@pytest.mark.parametrize("workspace", [ONE_NETWORK], indirect=True)``)."""
    root = demo_workspace(tmp_path)
    if getattr(request, "param", None) == ONE_NETWORK:
        (root / "lists" / "networks.toml").unlink()
    return root


def set_issue(settings: Settings, network: str | None, audience: str, item_regions: str = "") -> None:
    """Rewrite the demo issue's ``network:`` (left out when None) and ``audience:``, and give its
    first item ``regions:`` when ``item_regions`` is given."""
    path = settings.workspace / "campaigns" / ISSUE / "issue.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        if line.startswith("network:"):
            if network is not None:
                out.append(f"network: {network}")
        elif line.startswith("audience:"):
            out.append(f"audience: {audience}")
        else:
            out.append(line)
        if item_regions and line == "  - id: peace-week":
            out.append(f"    regions: [{item_regions}]")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def send_network(db: Database, settings: Settings, shape: Shape) -> str | set[str]:
    """The network ``mailer campaigns send --dry-run`` speaks as (its name), or why it refuses (an
    unknown network fails the file's schema, an ambiguous one the network rule)."""
    try:
        plan = sending.plan_send(db, settings, shape, ISSUE, dry_run=True)
    except InvalidInput as exc:
        return {p.message for p in exc.problems if p.field == "network"}
    except ConfigError as exc:
        return {exc.message}
    return plan.prepared.identity.network.name


@pytest.mark.parametrize("workspace", [ONE_NETWORK], indirect=True)
def test_single_network_approve_accepts_any_network_as_the_send_does(demo_desk: Desk) -> None:
    """The bug: the desk's approvals used ``network_for_issue``, which refused ``network: central-
    england`` in a workspace of one network, though the send (``campaign_network``) takes it."""
    desk = demo_desk
    assert desk.shape.networks == {}
    set_issue(desk.settings, "somewhere-else", "region:central-england")
    only = default_network(desk.settings)
    assert send_network(desk.db, desk.settings, desk.shape) == only.name, "the send accepts it"
    with desk.db.session() as s:
        issue = approvals.resolve(s, desk.settings, desk.shape, ISSUE)
    assert (issue.network, issue.key) == (only, "")

    desk.add("ann@example.org", "approver")
    desk.add("ed@example.org", "editor")
    with desk.client() as ann, desk.client() as ed:
        sign_in(desk, ann, "ann@example.org")
        page = ann.get(f"{PAGES}/approve")
        assert page.status_code == 200 and "Approve this issue" in page.text, page.text
        assert only.name in page.text
        done = ann.post(f"{PAGES}/approve", data=form_of(page.text, f"{PAGES}/approve"))
        assert done.status_code == 303, done.text
        with desk.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Approval)) == 1
            assert approvals.standing(s, ISSUE, issue.fingerprint).approved

        sign_in(desk, ed, "ed@example.org")
        send_page = ed.get(f"{PAGES}/send")
        chosen = ed.post(f"{PAGES}/send", data={**form_of(send_page.text, f"{PAGES}/send"), "when": "now"})
        assert chosen.status_code == 200, chosen.text
        sent = ed.post(f"{PAGES}/send/confirm", data=form_of(chosen.text, f"{PAGES}/send/confirm"))
        assert sent.status_code == 303, sent.text
    with desk.db.session() as s:
        campaign = s.scalar(select(Campaign).where(Campaign.slug == ISSUE))
        assert campaign is not None
        assert (campaign.network, campaign.status) == ("", "sending"), "as `campaigns send` stores it"


CASES = [
    # (network:, audience, an item's regions): the send speaks as the first, or refuses.
    ("kent", "region:central-england", "lewes"),  # named: Kent, though the audience is elsewhere
    (None, "region:birmingham", "lewes"),  # implied by the audience: Central England
    (None, "region:canterbury or interest:refugees", "lewes"),  # implied: Kent
    (None, "all", ""),  # ambiguous: refused by both
    (None, "region:canterbury or region:birmingham", ""),  # two networks: refused by both
    ("nowhere", "region:birmingham", ""),  # unknown: refused by both
]


@pytest.mark.parametrize(("network", "audience", "regions"), CASES)
def test_check_and_send_agree_on_the_network(
    db: Database, settings: Settings, shape: Shape, network: str | None, audience: str, regions: str
) -> None:
    set_issue(settings, network, audience, regions)
    checked = check_campaign(settings.workspace, ISSUE, shape, db, settings)
    sent = send_network(db, settings, shape)
    refused = {p.message for p in checked.errors if p.field == "network"}
    if isinstance(sent, set):
        assert sent and refused == sent, "the check refuses what the send refuses, as it does"
        return
    assert not checked.errors, checked.errors
    hints = {p.hint for p in checked.warnings if p.hint and "the mail speaks as" in p.hint}
    assert hints == {f"check the regions, or the issue's network: the mail speaks as {sent}"}, (
        "the check's warnings name the network the send speaks as"
    )


@pytest.mark.parametrize("workspace", [ONE_NETWORK], indirect=True)
@pytest.mark.parametrize("network", ["central-england", "nowhere", None])
def test_single_network_check_and_send_agree(
    db: Database, settings: Settings, shape: Shape, network: str | None
) -> None:
    """Without ``lists/networks.toml`` both take any ``network:``: the workspace's only network."""
    assert shape.networks == {}
    set_issue(settings, network, "region:birmingham", "lewes")
    checked = check_campaign(settings.workspace, ISSUE, shape, db, settings)
    assert not checked.errors, checked.errors
    assert send_network(db, settings, shape) == default_network(settings).name
    with db.session() as s:
        assert approvals.resolve(s, settings, shape, ISSUE).network == default_network(settings)


def test_only_the_rule_itself_calls_network_for_issue() -> None:
    """Which network an issue speaks as is ``campaign_network``'s to say, everywhere (it alone knows
    that a workspace of one network takes any ``network:``): nobody calls ``network_for_issue``
    but it."""
    package = Path(__file__).resolve().parent.parent / "mailer"
    callers = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if "network_for_issue(" in path.read_text(encoding="utf-8")
    ]
    assert callers == ["audience/networks.py"]
