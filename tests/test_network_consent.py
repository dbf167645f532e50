"""Unsubscribe scope members understand: one-click leaves the network the mail came from.

In the demo workspace (Kent and Central England, ``lists/networks.toml``), on SQLite and PostgreSQL,
through the real web app (Starlette's TestClient over httpx) and a real aiosmtpd server:

- a Central England member interested in MP advocacy gets the Central England newsletter and the
  Kent Network's ECHR alert (``audience: interest:mp-advocacy``, ``network: kent``): the audiences
  overlap on purpose;
- the one-click POST to the List-Unsubscribe URL of their Central England message leaves Central
  England (a ``network_leaves`` row, a ``leave-network`` line in the consent log), suppresses nothing,
  and the next Kent send still reaches them;
- their preferences page has a "Networks" fieldset: they leave Kent by unticking it, rejoin Central
  England by ticking it, and "Stop all emails" is the suppression;
- a mail to the mailto unsubscribe address follows the same rule; ``mailer members show`` lists the
  networks left; erasure removes them.

In a workspace with one network (no ``networks.toml``, or one network declared) one-click suppresses,
as before (the rest of the suite, tests/test_web.py, holds that too).

The sends record the campaign's network (``ensure_network`` checks it); the token in the message
names only the campaign, so the scope is read at unsubscribe time.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.consent import (
    BASE,
    CE_ISSUE,
    KENT_ALERT,
    MEMBER,
    TEST_SECRET,
    Demo,
    add_member,
    csrf_of,
    demo_settings,
    ensure_network,
    leaves,
    log,
    member_id,
    messages_to,
    open_demo,
    prefs_path,
    suppressed,
    unsub_path,
    unsubscribe_urls,
)
from support.smtp_server import SmtpTestServer

from mailer import tokens
from mailer.audience import consent, members
from mailer.audience.shape import load_shape, sync
from mailer.db import open_database
from mailer.errors import MailerError, UnknownName
from mailer.inbound import process_message
from mailer.models import Campaign, NetworkLeave
from mailer.web import create_app

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


# ---------------------------------------------------------------------------------------------
# The demo workspace, its database and its web app (tests/support/consent.py)


@pytest.fixture
def demo(tmp_path: Path, database_url: str, smtp_server: SmtpTestServer) -> Iterator[Demo]:
    with open_demo(tmp_path, database_url, smtp_server) as made:
        yield made


@pytest.fixture
def client(demo: Demo) -> Iterator[TestClient]:
    with TestClient(demo.app, base_url=BASE) as c:
        yield c


# ---------------------------------------------------------------------------------------------
# The acceptance: one-click from Central England leaves Kent mail unchanged


def test_one_click_from_central_england_leaves_kent_mail_unchanged(demo: Demo, client: TestClient) -> None:
    member = member_id(demo.db)
    ce = demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    ensure_network(demo.db, CE_ISSUE, "central-england")
    [ce_message] = messages_to(demo.smtp, MEMBER)
    path, _mailto = unsubscribe_urls(ce_message)

    # The page the link opens says plainly what its button does, as Central England.
    page = client.get(path)
    assert page.status_code == 200
    assert "<title>Unsubscribe – Central England Network</title>" in page.text
    assert "Stop emails from Central England Network" in page.text
    assert "You will still get Kent Network&#39;s emails if you get them now" in page.text
    assert "stop all email from us" in page.text and 'href="#preferences"' in page.text
    assert "/p/" not in page.text, "opening an unsubscribe link mints no preferences link"
    assert leaves(demo.db) == [] and suppressed(demo.db) is None

    # The mail provider's one-click POST (RFC 8058): no cookie, no second step.
    with TestClient(demo.app, base_url=BASE) as provider:
        done = provider.post(path, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
        assert not provider.cookies
    assert done.status_code == 200 and "set-cookie" not in done.headers
    assert "You will get no more emails from Central England Network" in done.text
    assert "Kent Network&#39;s emails" in done.text
    assert leaves(demo.db) == [(member, "central-england", "one-click", CE_ISSUE)]
    assert suppressed(demo.db) is None, "leaving one network is not leaving all mail"
    assert log(demo.db, member)[-1] == ("leave-network", "one-click", CE_ISSUE, "network central-england")
    with demo.db.session() as s:
        assert consent.has_left(s, member, "central-england")
        assert not consent.has_left(s, member, "kent")
    assert ce  # the campaign the token named

    # Again (providers retry): harmless, logged again, one row.
    client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert len(leaves(demo.db)) == 1
    assert [e[0] for e in log(demo.db, member)].count("leave-network") == 2

    # A Kent send still reaches them.
    demo.send(KENT_ALERT)
    ensure_network(demo.db, KENT_ALERT, "kent")
    got = messages_to(demo.smtp, MEMBER)
    assert len(got) == 2 and got[1]["Subject"] != ce_message["Subject"]
    assert suppressed(demo.db) is None


def test_the_pages_button_leaves_the_network_and_offers_all_mail(demo: Demo, client: TestClient) -> None:
    member = member_id(demo.db)
    demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    ensure_network(demo.db, CE_ISSUE, "central-england")
    path, _ = unsubscribe_urls(messages_to(demo.smtp, MEMBER)[0])
    page = client.get(path)
    done = client.post(path, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200
    assert leaves(demo.db) == [(member, "central-england", "link", CE_ISSUE)]
    assert suppressed(demo.db) is None
    # The done page confirms the scope and offers to leave all mail: a POST form with CSRF.
    assert "You have left Central England Network" in done.text
    assert f'action="{path}/all"' in done.text and "Stop all emails from us" in done.text
    assert "/p/" not in done.text
    stop = client.post(f"{path}/all", data={"csrf": csrf_of(done.text)})
    assert stop.status_code == 200 and "You are unsubscribed" in stop.text
    row = suppressed(demo.db)
    assert row is not None and row.source == "link" and row.campaign == CE_ISSUE
    assert [e[0] for e in log(demo.db, member)] == ["leave-network", "unsubscribe"]


def test_the_mailto_unsubscribe_leaves_the_network_of_its_campaign(demo: Demo) -> None:
    member = member_id(demo.db)
    demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    ensure_network(demo.db, CE_ISSUE, "central-england")
    _, mailto = unsubscribe_urls(messages_to(demo.smtp, MEMBER)[0])
    raw = (
        f"From: Bo Both <{MEMBER}>\nTo: {mailto}\nSubject: Unsubscribe\n"
        "Date: Mon, 08 Dec 2025 19:20:00 +0000\nMessage-ID: <unsub-ce-1@mail.example.org>\n"
        "MIME-Version: 1.0\nContent-Type: text/plain\n\nPlease unsubscribe me.\n"
    ).encode()
    outcome = process_message(demo.db, demo.settings, raw)
    assert outcome.action == "left network central-england", outcome
    assert not outcome.suppressed
    assert leaves(demo.db) == [(member, "central-england", "mailto", CE_ISSUE)]
    assert suppressed(demo.db) is None
    action, source, campaign, detail = log(demo.db, member)[-1]
    assert (action, source, campaign) == ("leave-network", "mailto", CE_ISSUE)
    assert detail.startswith("network central-england; mail to the unsubscribe address")


# ---------------------------------------------------------------------------------------------
# The preference page: a Networks fieldset


def test_preference_page_leaves_rejoins_and_stops_all(demo: Demo, client: TestClient) -> None:
    member = member_id(demo.db)
    ce = demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    ensure_network(demo.db, CE_ISSUE, "central-england")
    path, _ = unsubscribe_urls(messages_to(demo.smtp, MEMBER)[0])
    client.post(path, data={"List-Unsubscribe": "One-Click"})  # left Central England by one-click
    prefs = prefs_path(demo.settings, member, ce)

    page = client.get(prefs)
    assert page.status_code == 200
    assert "<title>Your preferences – Central England Network</title>" in page.text
    assert "<legend>Networks</legend>" in page.text
    assert re.search(r'id="network-kent" name="networks" value="kent" checked', page.text)
    assert re.search(r'id="network-central-england" name="networks" value="central-england">', page.text)
    assert 'value="Bo Both"' in page.text and re.search(r'value="mp-advocacy" checked', page.text)
    assert "Stop all emails" in page.text

    # Leave Kent (untick it) and rejoin Central England (tick it), in one save.
    form = {
        "csrf": csrf_of(page.text),
        "name": "Bo Both",
        "region": "birmingham",
        "interests": ["mp-advocacy", "refugees"],
        "networks_shown": "1",
        "networks": ["central-england"],
    }
    saved = client.post(prefs, data=form)
    assert saved.status_code == 200 and "Your preferences are saved" in saved.text
    assert leaves(demo.db) == [(member, "kent", "link", CE_ISSUE)]
    assert re.search(r'value="central-england" checked', saved.text)
    assert not re.search(r'value="kent" checked', saved.text)
    tail = log(demo.db, member)[-2:]
    assert ("join-network", "link", CE_ISSUE, "network central-england") in tail
    assert ("leave-network", "link", CE_ISSUE, "network kent; preferences page") in tail
    # The same form again changes nothing and logs nothing.
    count = len(log(demo.db, member))
    again = client.post(prefs, data=form)
    assert "Nothing changed" in again.text and len(log(demo.db, member)) == count
    with demo.db.session() as s:
        assert members.show(s, MEMBER).networks_left[0].network == "kent"

    # "Stop all emails": the suppression, the final word.
    stop = client.post(prefs + "/leave", data={"csrf": csrf_of(page.text)})
    assert stop.status_code == 200 and "You are unsubscribed" in stop.text
    assert "Central England Network" in stop.text
    assert suppressed(demo.db) is not None
    after = client.get(prefs)
    assert "You have unsubscribed from all emails" in after.text
    assert "<legend>Networks</legend>" not in after.text and "Save my preferences" not in after.text
    # A form from before cannot rejoin a network once they left all mail.
    before = (leaves(demo.db), len(log(demo.db, member)))
    client.post(prefs, data={**form, "networks": ["central-england", "kent"]})
    assert (leaves(demo.db), len(log(demo.db, member))) == before


def test_the_preferences_link_mail_speaks_as_the_campaigns_network(demo: Demo, client: TestClient) -> None:
    member = member_id(demo.db)
    demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    ensure_network(demo.db, CE_ISSUE, "central-england")
    path, _ = unsubscribe_urls(messages_to(demo.smtp, MEMBER)[0])
    page = client.get(path)
    sent = len(demo.smtp.messages)
    answer = client.post(f"{path}/preferences", data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert "Central England Network" in answer.text
    assert len(demo.smtp.messages) == sent + 1
    [*_, mail] = messages_to(demo.smtp, MEMBER)
    assert "Central England Network" in str(mail["Subject"])
    assert "central-england@example.org" in str(mail["From"])
    body = mail.get_body(("plain",))
    assert body is not None and "from one network or from all our emails" in body.get_content()
    assert member and leaves(demo.db) == []


def test_an_expired_preferences_link_speaks_as_its_network(demo: Demo, client: TestClient) -> None:
    from datetime import UTC, datetime, timedelta

    member = member_id(demo.db)
    ce = demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    ensure_network(demo.db, CE_ISSUE, "central-england")
    old = tokens.sign(
        "preferences",
        member,
        keys=demo.settings.secrets,
        campaign=ce,
        now=datetime.now(UTC) - timedelta(days=400),
    )
    page = client.get(f"/p/{old}")
    assert page.status_code == 410
    assert "– Central England Network</title>" in page.text
    assert "To stop emails from Central England Network" in page.text


# ---------------------------------------------------------------------------------------------
# The library: consent's rules


def test_leave_and_rejoin_rules(demo: Demo) -> None:
    member = member_id(demo.db)
    with demo.db.session() as s:
        first = consent.leave_network(s, member, "kent", source="admin", campaign_id=None, detail="by phone")
        again = consent.leave_network(s, member, "kent", source="link", campaign_id=None)
        assert first is not None and first.newly and first.network == "kent"
        assert again is not None and not again.newly
        assert consent.networks_left(s, member) == ["kent"]
        assert consent.leave_network(s, 987654, "kent", source="link", campaign_id=None) is None
        with pytest.raises(MailerError):
            consent.leave_network(s, member, "kent", source="import", campaign_id=None)
        with pytest.raises(MailerError):
            consent.leave_network(s, member, "", source="link", campaign_id=None)
        # Only the member, from their preferences page, rejoins: never an import or an admin.
        for source in ("import", "admin", "signup", "one-click"):
            with pytest.raises(MailerError):
                consent.rejoin_network(s, member, "kent", source=source, campaign_id=None)
        assert consent.rejoin_network(s, member, "central-england", source="link", campaign_id=None) is False
        assert consent.rejoin_network(s, member, "kent", source="link", campaign_id=None) is True
        assert consent.networks_left(s, member) == []
    assert [(a, src, d) for a, src, _c, d in log(demo.db, member)] == [
        ("leave-network", "admin", "network kent; by phone"),
        ("leave-network", "link", "network kent"),
        ("join-network", "link", "network kent"),
    ]


def test_the_scope_comes_from_the_campaign(demo: Demo) -> None:
    member = member_id(demo.db)
    both = ["kent", "central-england"]
    with demo.db.session() as s:
        ids = {}
        for slug, network in (("a-ce", "central-england"), ("a-default", ""), ("a-gone", "wessex")):
            row = Campaign(
                slug=slug,
                kind="alert",
                title=slug,
                subject=slug,
                audience="all",
                issue_date="2025-12-01",
                status="sent",
                network=network,
            )
            s.add(row)
            s.flush()
            ids[slug] = row.id
        assert consent.unsubscribe_scope(s, ids["a-ce"], both) == "central-england"
        assert consent.unsubscribe_scope(s, ids["a-ce"], ["central-england"]) is None  # one network
        assert consent.unsubscribe_scope(s, ids["a-default"], both) is None  # the default network
        assert consent.unsubscribe_scope(s, ids["a-gone"], both) is None  # no longer declared
        assert consent.unsubscribe_scope(s, None, both) is None  # no campaign: all mail
        assert consent.unsubscribe_scope(s, 987654, both) is None
        done = consent.unsubscribe_scoped(
            s, member, source="one-click", campaign_id=ids["a-default"], networks=both
        )
        assert done is not None and done.network is None and done.newly
    assert suppressed(demo.db) is not None and leaves(demo.db) == []


def test_members_show_lists_the_networks_left_and_forget_removes_them(demo: Demo) -> None:
    from click.testing import CliRunner

    from mailer.cli import cli

    member = member_id(demo.db)
    ce = demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    with demo.db.session() as s:
        consent.leave_network(s, member, "central-england", source="one-click", campaign_id=ce)
    env = {
        "MAILER_WORKSPACE": str(demo.root),
        "MAILER_DATABASE_URL": demo.settings.database_url,
        "MAILER_SECRET": TEST_SECRET,
    }
    runner = CliRunner()
    shown = runner.invoke(cli, ["members", "show", MEMBER], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"left:      network central-england via one-click (campaign {CE_ISSUE})" in shown.output
    assert "status:    subscribed" in shown.output
    as_json = runner.invoke(cli, ["members", "show", MEMBER, "--json"], env=env)
    assert '"networks_left"' in as_json.output and '"central-england"' in as_json.output
    # An admin, on the member's request: one network only.
    kent = runner.invoke(cli, ["members", "unsubscribe", MEMBER, "--network", "kent", "--json"], env=env)
    assert kent.exit_code == 0 and '"newly_left": true' in kent.output, kent.output
    wrong = runner.invoke(cli, ["members", "unsubscribe", MEMBER, "--network", "wessex"], env=env)
    assert wrong.exit_code == 2 and "unknown network 'wessex'" in wrong.output
    assert sorted(row[1:3] for row in leaves(demo.db)) == [
        ("central-england", "one-click"),
        ("kent", "admin"),
    ]
    assert suppressed(demo.db) is None
    with demo.db.session() as s:
        exported: dict[str, Any] = members.export(s, MEMBER)
        assert exported["member"]["networks_left"][0]["network"] == "central-england"
        members.forget(s, MEMBER)
    assert leaves(demo.db) == []


# ---------------------------------------------------------------------------------------------
# One network: leaving it is leaving all mail, as before


@pytest.mark.parametrize("declared", ["none", "one"])
def test_single_network_one_click_suppresses_as_before(
    workspace: Path, database_url: str, smtp_server: SmtpTestServer, declared: str
) -> None:
    if declared == "one":
        demo_file = Path(__file__).resolve().parent.parent / "lists" / "networks.toml"
        text = demo_file.read_text(encoding="utf-8")
        (workspace / "lists" / "networks.toml").write_text(
            text.split('[[network]]\nslug = "central-england"')[0]
        )
    settings = demo_settings(workspace, database_url, smtp_server.url)
    shape = load_shape(workspace / "lists")
    assert len(shape.networks) == (1 if declared == "one" else 0)
    db = open_database(settings)
    try:
        with db.session() as s:
            sync(s, shape)
        member = add_member(db, "solo@example.org", region="kent", interests=("refugees",))
        with db.session() as s:
            row = Campaign(
                slug="solo",
                kind="alert",
                title="Solo",
                subject="Solo",
                audience="all",
                issue_date="2025-12-01",
                status="sent",
                network="kent" if declared == "one" else "",
            )
            s.add(row)
            s.flush()
            campaign = row.id
        app = create_app(settings, shape=shape, database=db)
        with TestClient(app, base_url=BASE) as c:
            page = c.get(unsub_path(settings, member, campaign))
            assert "Unsubscribe from all emails" in page.text and "Stop emails from" not in page.text
            done = c.post(unsub_path(settings, member, campaign), data={"List-Unsubscribe": "One-Click"})
            assert done.status_code == 200 and "You are unsubscribed" in done.text
            prefs = c.get(prefs_path(settings, member, campaign))
            assert "<legend>Networks</legend>" not in prefs.text
        assert suppressed(db, "solo@example.org") is not None
        assert leaves(db) == []
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(NetworkLeave)) == 0
            with pytest.raises(UnknownName, match="single network"):
                members.leave_network(s, "solo@example.org", "kent", list(shape.networks))
    finally:
        db.dispose()


def test_a_confirmed_sign_up_to_a_network_rejoins_it_and_only_it(demo: Demo) -> None:
    """Leaving is undone only by the member: a confirmed sign-up (double opt-in) to the network they
    left rejoins that network; a network they did not sign up to stays left."""
    from datetime import timedelta

    from mailer.models import utcnow

    member = member_id(demo.db)
    with demo.db.session() as s:
        consent.leave_network(s, member, "central-england", source="link", campaign_id=None)
        consent.leave_network(s, member, "kent", source="link", campaign_id=None)
    data = consent.SignupData(
        MEMBER, "Bo Both", "birmingham", "", (), "I agree", utcnow() - timedelta(seconds=1)
    )
    with demo.db.session() as s:
        consent.confirm_signup(s, data, network="central-england")
    assert [(n, src) for _m, n, src, _c in leaves(demo.db)] == [("kent", "link")]
    action, source, _campaign, detail = log(demo.db, member)[-1]
    assert (action, source) == ("join-network", "signup")
    assert detail == "network central-england; rejoined by a confirmed sign-up to it"
