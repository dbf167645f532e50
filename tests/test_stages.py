"""Staged and top-up sends: a campaign goes out in stages, and nobody ever gets it twice.

Through the real command line (``mailer_cli``) and the library, on SQLite and PostgreSQL, sending
over SMTP to the aiosmtpd server of tests/support/smtp_server.py and reading what arrived: a first stage to
one region, a second to the rest, ten members imported and a ``--new-members`` stage; a stage capped
with ``--limit`` and then the rest; an interrupted stage resumed (never widened) and then topped
up; stages that add nobody; an issue changed between stages; members who left the campaign's
network.
"""

from __future__ import annotations

import csv
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import func, select
from support.cli_runner import CliResult, MailerCli
from support.sending import SLUG, Mailing, delivery_id_of, parse, sent_to
from support.smtp_server import SmtpTestServer

from mailer import sending
from mailer.audience.shape import Shape
from mailer.compose import compose
from mailer.db import Database
from mailer.issue import load_campaign
from mailer.models import Campaign, CampaignStage, Delivery, Member, NetworkLeave
from mailer.models import Variant as VariantRow
from mailer.settings import Settings


class SendCli(Protocol):
    def __call__(self, *args: str, check: bool = True) -> CliResult: ...


@pytest.fixture
def send_cli(mailer_cli: MailerCli, mailing: Mailing) -> SendCli:
    """``mailer campaigns send SLUG --in-process --yes ARGS…`` to the test server (both databases)."""

    def run(*args: str, check: bool = True) -> CliResult:
        return mailer_cli(
            "campaigns", "send", SLUG, "--in-process", "--yes", *args, env=mailing.relay, check=check
        )

    return run


def received(server: SmtpTestServer) -> Counter[str]:
    return Counter(r for m in server.messages for r in m.rcpt_tos)


def kent_and_canterbury(mailing: Mailing, members: int) -> tuple[set[str], set[str]]:
    """The Kent newsletter with ``members`` synthetic members: its audience, and Canterbury's part."""
    mailing.add(members)
    return mailing.audience("kent"), mailing.audience("canterbury")


def enqueue_stage(mailing: Mailing, segment: str) -> sending.Enqueued:
    """A stage to ``segment`` prepared and enqueued by the library, not sent yet."""
    prepared = sending.prepare(mailing.db, mailing.settings, mailing.shape, SLUG, segment=segment)
    return sending.enqueue(mailing.db, prepared, stage=sending.StageRequest(segment=segment))


def stages(mailer_cli: MailerCli) -> list[dict[str, object]]:
    data = json.loads(mailer_cli("campaigns", "status", SLUG, "--json", check=True).stdout)
    return list(data["stages"])


def write_members(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["email", "name", "region", "interests"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def check_variants(mailing: Mailing) -> None:
    """Every message that arrived is the member's own delivery, with the variant the rule gives them."""
    db, shape, server = mailing.db, mailing.shape, mailing.smtp
    loaded = load_campaign(mailing.settings.workspace, SLUG, shape)
    with db.session() as session:
        variants = {v.id: v for v in session.scalars(select(VariantRow))}
        assert len({v.key for v in variants.values()}) == len(variants)
        for got in server.messages:
            d, member = sent_to(session, got)
            region = member.region.slug if member.region else None
            want = compose(loaded.issue, shape, region, frozenset(i.slug for i in member.interests))
            assert variants[d.variant_id].item_ids.split() == list(want.item_ids)


@pytest.mark.slow
def test_a_region_then_the_rest_then_new_members(
    tmp_path: Path, mailer_cli: MailerCli, send_cli: SendCli, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    kent, canterbury = kent_and_canterbury(mailing, 400)
    assert 0 < len(canterbury) < len(kent)

    first = json.loads(send_cli("--to-segment", "region:canterbury", "--json").stdout)
    assert first["stage"]["number"] == 1 and first["stage"]["recipients"] == len(canterbury)
    assert first["stage"]["segment"] == "region:canterbury"
    assert set(received(smtp_server)) == canterbury

    # The campaign is sent (to Canterbury); sending it again is stage 2: the rest of Kent.
    dry = json.loads(mailer_cli("campaigns", "send", SLUG, "--dry-run", "--json", check=True).stdout)
    assert dry["stage"]["number"] == 2 and dry["members"] == len(kent) - len(canterbury)
    second = send_cli()
    assert "stage 2 (everyone not yet sent it)" in second.stdout
    assert f"{len(kent) - len(canterbury)} member(s) added" in second.stdout
    assert received(smtp_server) == Counter(kent)

    # Ten members join through an import; --new-members reaches exactly them.
    regions = ["canterbury", "maidstone-medway-swale", "thanet", "ashford", "tunbridge-wells"]
    rows = [
        {"email": f"new.member.{n}@example.org", "name": f"New Member {n}", "region": regions[n % 5]}
        for n in range(10)
    ]
    rows[0]["interests"] = "refugees"
    csv_path = write_members(tmp_path / "new.csv", rows)
    imported = json.loads(
        mailer_cli(
            "lists", "import", str(csv_path), "--consent", "joined at a stall", "--json", check=True
        ).stdout
    )
    assert imported["added"] == 10 and imported["rejected"] == 0
    newcomers = {r["email"] for r in rows}
    assert newcomers <= mailing.audience("kent")
    third = json.loads(send_cli("--new-members", "--json").stdout)
    assert third["stage"] == {**third["stage"], "number": 3, "new_members": True, "recipients": 10}
    assert third["sent"] == 10

    got = received(smtp_server)
    assert got == Counter(kent | newcomers)  # each member exactly once
    assert max(got.values()) == 1 and newcomers <= set(got)
    check_variants(mailing)

    listed = stages(mailer_cli)
    assert [(s["number"], s["recipients"]) for s in listed] == [
        (1, len(canterbury)),
        (2, len(kent) - len(canterbury)),
        (3, 10),
    ]
    assert [s["segment"] for s in listed] == ["region:canterbury", "", ""]
    assert [s["new_members"] for s in listed] == [False, False, True]
    text = mailer_cli("campaigns", "status", SLUG, check=True).stdout
    assert "stage 1, " in text and "region:canterbury" in text and "stage 3, " in text
    assert "new members: 10 member(s)" in text
    report = json.loads(mailer_cli("campaigns", "report", SLUG, "--json", check=True).stdout)
    assert [s["number"] for s in report["stages"]] == [1, 2, 3]
    assert "Stages:" in mailer_cli("campaigns", "report", SLUG, check=True).stdout

    # Once more with --new-members: nobody has joined since, so nobody is added and nothing recorded.
    again = send_cli("--new-members")
    assert "nobody to add" in again.stdout and "joined since the previous stage" in again.stdout
    assert len(stages(mailer_cli)) == 3 and received(smtp_server) == got


@pytest.mark.slow
def test_a_capped_stage_then_the_rest(
    db: Database, mailer_cli: MailerCli, send_cli: SendCli, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    mailing.add(300)
    kent = mailing.audience("kent")

    capped = json.loads(send_cli("--limit", "20", "--json").stdout)
    assert capped["sent"] == 20 and capped["status"]["status"] == "sent"
    assert capped["stage"]["limit"] == 20 and capped["stage"]["recipients"] == 20
    with db.session() as session:  # the longest-standing members first
        first_20 = set(
            session.scalars(select(Member.email).where(Member.email.in_(kent)).order_by(Member.id).limit(20))
        )
    assert set(received(smtp_server)) == first_20

    # A capped stage narrowed too: at most 5 more, in Canterbury, none of whom had it.
    narrowed = json.loads(send_cli("--limit", "5", "--to-segment", "region:canterbury", "--json").stdout)
    assert narrowed["stage"]["recipients"] == 5
    got = received(smtp_server)
    assert len(got) == 25 and max(got.values()) == 1

    rest = json.loads(send_cli("--json").stdout)
    assert rest["stage"]["number"] == 3 and rest["sent"] == len(kent) - 25
    assert received(smtp_server) == Counter(kent)
    assert [(s["limit"], s["recipients"]) for s in stages(mailer_cli)] == [
        (20, 20),
        (5, 5),
        (None, len(kent) - 25),
    ]

    # Whatever is asked now, everyone has had it: a stage that adds nobody says so, exit 0.
    for args in ((), ("--limit", "3"), ("--to-segment", "region:canterbury")):
        nothing = send_cli(*args, "--json")
        data = json.loads(nothing.stdout)
        assert data["added"] == 0 and "nobody to add" in data["message"]
        assert data["status"] == "sent"
    assert (
        "every member of the audience in region:canterbury has had it"
        in send_cli("--to-segment", "region:canterbury").stdout
    )
    assert len(stages(mailer_cli)) == 3 and received(smtp_server) == Counter(kent)


@pytest.mark.slow
def test_an_interrupted_stage_resumes_without_widening_then_tops_up(
    db: Database,
    shape: Shape,
    mailer_cli: MailerCli,
    send_cli: SendCli,
    smtp_server: SmtpTestServer,
    mailing: Mailing,
) -> None:
    kent, canterbury = kent_and_canterbury(mailing, 400)

    # Stage 1 to Canterbury, stopped after 5 messages (paused, the rest pending).
    enqueued = enqueue_stage(mailing, "region:canterbury")
    assert enqueued.created and enqueued.stage is not None and enqueued.stage.number == 1
    mailing.send(limit=5, batch_size=5)
    assert sending.campaign_status(db, shape, SLUG).status == "paused"
    assert len(received(smtp_server)) == 5

    # A plain send resumes it: Canterbury only, nobody else added.
    resumed = send_cli()
    assert f"resuming {SLUG} (was paused): {len(canterbury) - 5} message(s) still to send" in resumed.stdout
    assert f"{len(kent) - len(canterbury)} member(s) of the audience have not had it" in resumed.stdout
    assert received(smtp_server) == Counter(canterbury)
    assert len(stages(mailer_cli)) == 1

    # Sending again, with nothing left of stage 1, adds the rest.
    send_cli()
    assert received(smtp_server) == Counter(kent)
    assert [s["number"] for s in stages(mailer_cli)] == [1, 2]
    check_variants(mailing)


def test_top_up_sends_what_was_left_along_with_a_new_stage(
    mailer_cli: MailerCli, send_cli: SendCli, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    kent, canterbury = kent_and_canterbury(mailing, 300)
    enqueue_stage(mailing, "region:canterbury")
    mailing.send(limit=3, batch_size=3)

    topped = json.loads(send_cli("--top-up", "--json").stdout)
    assert topped["stage"]["number"] == 2 and topped["stage"]["recipients"] == len(kent) - len(canterbury)
    assert topped["sent"] == len(kent) - 3  # the rest of stage 1 and all of stage 2, in one go
    assert received(smtp_server) == Counter(kent)
    assert topped["status"]["status"] == "sent"


def test_a_changed_issue_is_refused_unless_allowed(
    db: Database, workspace: Path, send_cli: SendCli, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    mailing.add(300)
    kent = mailing.audience("kent")
    send_cli("--to-segment", "region:canterbury")
    sent_first = len(smtp_server.messages)
    with db.session() as session:
        before = set(session.scalars(select(VariantRow.id)))

    path = workspace / "campaigns" / SLUG / "issue.yaml"
    text = path.read_text(encoding="utf-8")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith("intro:"))
    path.write_text(text.replace("intro: ", "intro: CHANGED AFTER STAGE ONE. ", 1), encoding="utf-8")

    refused = send_cli(check=False)
    assert refused.exit_code != 0
    assert f"issue.yaml:{line}" in refused.stderr and "changed since" in refused.stderr
    assert "--allow-changed" in refused.stderr
    assert len(smtp_server.messages) == sent_first  # nothing sent, nothing added
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(CampaignStage)) == 1

    send_cli("--allow-changed")
    assert received(smtp_server) == Counter(kent)
    new_variant_seen = False
    with db.session() as session:
        for got in smtp_server.messages[sent_first:]:
            d = session.get(Delivery, delivery_id_of(got.mail_from))
            assert d is not None
            body = parse(got.data).get_body(("plain",))
            assert body is not None
            changed = "CHANGED AFTER STAGE ONE" in body.get_content()
            # A variant sent before goes out as it was sent; a new one from the file as it is now.
            assert changed == (d.variant_id not in before)
            new_variant_seen |= changed
        campaign = session.scalars(select(Campaign)).one()
        assert "CHANGED" not in campaign.source  # the issue as first sent is kept
    assert new_variant_seen


def test_members_who_left_the_network_get_no_delivery(
    db: Database,
    settings: Settings,
    shape: Shape,
    mailer_cli: MailerCli,
    send_cli: SendCli,
    smtp_server: SmtpTestServer,
    mailing: Mailing,
) -> None:
    kent, canterbury = kent_and_canterbury(mailing, 300)
    rest = sorted(kent - canterbury)
    left_before, other_network, left_during = rest[0:3], rest[3:6], rest[6]
    left_later = sorted(canterbury)[0]  # leaves before the stage that would reach them
    with db.session() as session:
        ids: dict[str, int] = {e: i for e, i in session.execute(select(Member.email, Member.id))}
        for email in left_before:
            session.add(NetworkLeave(member_id=ids[email], network="kent", source="one-click"))
        for email in other_network:  # leaving another network changes nothing for this one
            session.add(NetworkLeave(member_id=ids[email], network="central-england", source="link"))

    prepared = sending.prepare(db, settings, shape, SLUG, segment="not region:canterbury")
    prepared.network = "kent"
    stage = sending.plan_stage(db, prepared, sending.StageRequest(segment="not region:canterbury"))
    enqueued = sending.enqueue(db, prepared, stage=stage.request)
    assert enqueued.stage is not None and enqueued.stage.recipients == stage.members
    with db.session() as session:
        queued = set(session.scalars(select(Member.email).join(Delivery, Delivery.member_id == Member.id)))
        assert session.scalars(select(Campaign.network)).one() == "kent"
    assert not queued & set(left_before) and set(other_network) <= queued
    # One leaves after the snapshot: their batch skips them, as it does a suppression.
    assert left_during in queued
    with db.session() as session:
        session.add(NetworkLeave(member_id=ids[left_during], network="kent", source="one-click"))
    mailing.send()
    got = received(smtp_server)
    assert left_during not in got and not set(left_before) & set(got)
    with db.session() as session:
        status, error = session.execute(
            select(Delivery.status, Delivery.last_error).where(Delivery.member_id == ids[left_during])
        ).one()
        assert status == "suppressed" and "left" in error

    # The next stage (the rest of Kent, from the command line) skips every leaver too.
    assert left_later not in got
    with db.session() as session:
        session.add(NetworkLeave(member_id=ids[left_later], network="kent", source="link"))
    send_cli()
    got = received(smtp_server)
    leavers = {*left_before, left_during, left_later}
    assert set(got) == kent - leavers and max(got.values()) == 1
    assert set(other_network) <= set(got)


def test_two_stages_at_once_give_nobody_the_campaign_twice(
    db: Database, settings: Settings, shape: Shape, mailing: Mailing
) -> None:
    """Two editors top up the same campaign at the same moment: the campaign's row lock orders
    them, the second adds only whom the first did not (``NOT EXISTS``), and neither fails."""
    mailing.add(300)
    kent = mailing.audience("kent")
    enqueue_stage(mailing, "region:canterbury")
    prepared = [sending.prepare(db, settings, shape, SLUG) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[sending.Enqueued] = []
    errors: list[BaseException] = []

    def top_up(p: sending.Prepared) -> None:
        start.wait()
        try:
            results.append(sending.enqueue(db, p, stage=sending.StageRequest()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=top_up, args=(p,)) for p in prepared]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    added = sorted(r.stage.recipients for r in results if r.stage is not None)
    canterbury = mailing.audience("canterbury")
    assert added == [0, len(kent) - len(canterbury)]
    with db.session() as session:
        members = list(session.scalars(select(Delivery.member_id)))
        stage_rows = session.scalars(select(CampaignStage.number).order_by(CampaignStage.number)).all()
    assert len(members) == len(set(members)) == len(kent)
    assert list(stage_rows) == [1, 2]  # the one that added nobody recorded nothing
