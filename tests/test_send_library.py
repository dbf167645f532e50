"""The send as a library call: plan_send, then send, from Python alone (no click, no subprocess).

Against the real aiosmtpd server (tests/support/smtp_server.py), on SQLite and PostgreSQL: a campaign is
sent, scheduled and test-sent through ``mailer.sending``, and a send the checks refuse raises
before anything is written or sent.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.sending import SLUG, add_campaign, add_members, expected_audience
from support.smtp_server import SmtpTestServer

from mailer import sending
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import DeliveryError
from mailer.models import Campaign, Delivery, utcnow
from mailer.settings import Settings


@pytest.fixture
def relayed(settings: Settings, smtp_server: SmtpTestServer) -> Settings:
    """The test's settings, sending to the test SMTP server."""
    return dataclasses.replace(settings, relay=smtp_server.url)


def rows(db: Database) -> tuple[int, int]:
    """(campaigns, deliveries) in the database."""
    with db.session() as session:
        campaigns = session.scalar(select(func.count()).select_from(Campaign)) or 0
        deliveries = session.scalar(select(func.count()).select_from(Delivery)) or 0
    return campaigns, deliveries


def test_a_campaign_is_sent_through_the_library(
    db: Database,
    relayed: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
    backend: str,
) -> None:
    add_campaign(workspace)
    add_members(db, shape, tmp_path, 300)
    expected = expected_audience(db, shape, "kent")

    # Without in_process, PostgreSQL leaves the send to the workers; SQLite sends from here.
    default = sending.plan_send(db, relayed, shape, SLUG)
    assert default.mode == ("queue" if backend == "postgresql" else "send")
    plan = sending.plan_send(db, relayed, shape, SLUG, in_process=True)
    assert plan.mode == "send" and not plan.resuming
    assert plan.slug == SLUG and plan.members == len(expected)
    assert sum(n for _key, _label, n in plan.prepared.by_variant()) == len(expected)
    assert rows(db) == (0, 0)  # planning writes nothing

    seen: list[tuple[int, int]] = []
    engines: list[sending.Engine] = []
    result = sending.send(
        plan, progress=lambda summary, total: seen.append((summary.sent, total)), on_engine=engines.append
    )

    assert isinstance(result, sending.Sent)
    assert result.summary.sent == len(expected) and result.summary.failed == 0
    assert result.status.status == "sent" and not result.paused
    assert result.as_dict()["status"]["counts"]["sent"] == len(expected)
    assert seen and seen[-1] == (len(expected), len(expected))
    assert len(engines) == 1 and engines[0].slug == SLUG
    received = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert set(received) == expected and max(received.values()) == 1

    # Sending it again is its next stage: everyone has had it, so nobody is added (tests/test_stages.py).
    again = sending.plan_send(db, relayed, shape, SLUG, in_process=True)
    assert again.stage is not None and again.stage.number == 2 and again.members == 0
    nothing = sending.send(again)
    assert isinstance(nothing, sending.NothingToSend) and nothing.as_dict()["added"] == 0
    assert len(smtp_server.messages) == len(expected)


def test_a_campaign_is_scheduled_through_the_library(
    db: Database,
    relayed: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
) -> None:
    add_campaign(workspace)
    add_members(db, shape, tmp_path, 200)
    expected = expected_audience(db, shape, "kent")
    at = (datetime.now(relayed.zone) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")

    plan = sending.plan_send(db, relayed, shape, SLUG, at=at)
    assert plan.mode == "schedule" and plan.at == at
    assert plan.when == sending.parse_send_time(at, relayed.zone)
    result = sending.send(plan)

    assert isinstance(result, sending.Scheduled)
    assert result.when == plan.when and result.pending == result.deliveries == len(expected)
    data = result.as_dict()
    assert data["status"] == "scheduled" and data["scheduled_at"] == plan.when.isoformat()
    assert data["workers_alive"] == []
    status = sending.campaign_status(db, shape, SLUG)
    assert status.status == "scheduled" and status.counts == {"pending": len(expected)}
    assert smtp_server.messages == []
    # A worker starts it when its time comes, not before.
    assert sending.start_due(db) == []
    assert sending.start_due(db, now=plan.when) == [SLUG]


def test_a_campaign_is_test_sent_through_the_library(
    db: Database,
    relayed: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
) -> None:
    add_campaign(workspace)
    add_members(db, shape, tmp_path, 100)
    member = sorted(expected_audience(db, shape, "kent"))[0]

    plan = sending.plan_send(db, relayed, shape, SLUG, tests=[member, "editor@example.org"])
    assert plan.mode == "test"
    result = sending.send(plan)

    assert isinstance(result, sending.TestsSent) and result.ok
    assert [t["to"] for t in result.as_dict()["tests"]] == [member, "editor@example.org"]
    got = smtp_server.messages
    assert sorted(r for m in got for r in m.rcpt_tos) == sorted([member, "editor@example.org"])
    for m in got:
        msg = email.message_from_bytes(m.data, policy=email.policy.default)
        assert str(msg["Subject"]).startswith("[TEST] ")
    assert rows(db) == (0, 0)  # nothing recorded


def test_a_send_the_checks_refuse_raises_before_any_side_effect(
    db: Database,
    relayed: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
    backend: str,
) -> None:
    add_campaign(workspace)
    add_members(db, shape, tmp_path, 50)
    tomorrow = utcnow() + timedelta(days=1)

    with pytest.raises(DeliveryError, match="has passed"):
        sending.plan_send(db, relayed, shape, SLUG, at="2020-01-01 08:00")
    # --limit caps the members a stage adds, kept with the stage: it works scheduled and for workers.
    capped = sending.plan_send(db, relayed, shape, SLUG, at=tomorrow, limit=5)
    assert capped.mode == "schedule" and capped.stage is not None and capped.members == 5
    with pytest.raises(DeliveryError, match="--new-members"):  # no earlier stage to count from
        sending.plan_send(db, relayed, shape, SLUG, new_members=True)
    with pytest.raises(DeliveryError, match="cannot read the time"):
        sending.plan_send(db, relayed, shape, SLUG, at="tomorrow morning")
    assert rows(db) == (0, 0) and smtp_server.messages == []

    # A dry run checks and plans everything, and sends and records nothing.
    dry = sending.send(sending.plan_send(db, relayed, shape, SLUG, dry_run=True))
    assert isinstance(dry, sending.DryRun) and dry.as_dict()["dry_run"] is True
    assert rows(db) == (0, 0) and smtp_server.messages == []


def test_the_snapshot_takes_members_who_joined_or_left_after_planning(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path
) -> None:
    """``enqueue`` snapshots with one INSERT … SELECT over the plan's groups; a member of a group the
    plan did not know (they joined after planning) still gets a row, with the variant composed for
    them, and a planned variant nobody is left in gets no row. Each member once, in member order."""
    from mailer.compose import compose
    from mailer.models import Member, Region
    from mailer.models import Variant as VariantRow

    add_campaign(workspace, audience="all")
    add_members(db, shape, tmp_path, 200)
    prepared = sending.prepare(db, settings, shape, SLUG)
    planned = {p.variant.key for p in prepared.plan.variants}
    with db.session() as session:
        used = {r for r in session.scalars(select(Member.region_id).distinct())}
        empty = session.scalars(select(Region).where(Region.id.not_in([r for r in used if r]))).first()
        assert empty is not None, "the demo shape has a region nobody of 200 lives in"
        session.add(
            Member(email="late@example.org", address_hash="late-hash", name="Late", region_id=empty.id)
        )
        # Everyone of one planned group leaves: its variant, if nobody else gets it, is not kept.
        smallest = min(prepared.plan.variants, key=lambda p: p.members)
        gone = [g for g in smallest.groups]
        for group in gone:
            region = session.scalars(select(Region.id).where(Region.slug == group.region)).first()
            leavers = session.scalars(select(Member).where(Member.region_id == region)).all()
            for m in leavers:
                mine = {i.slug for i in m.interests}
                if prepared.plan.variant_for(group.region, frozenset(mine)).key == smallest.variant.key:
                    session.delete(m)
    enqueued = sending.enqueue(db, prepared)
    with db.session() as session:
        rows_ = session.execute(
            select(
                Delivery.id,
                Member.id.label("member"),
                Member.email,
                Delivery.variant_id,
                Delivery.region_id,
                Member.region_id.label("home"),
            )
            .join(Member, Member.id == Delivery.member_id)
            .order_by(Delivery.id)
        ).all()
        everyone = session.scalar(select(func.count()).select_from(Member))
        variants = {v.id: v for v in session.scalars(select(VariantRow))}
        joined = next(r for r in rows_ if r.email == "late@example.org")
        want = compose(prepared.loaded.issue, shape, empty.slug, frozenset())
        assert variants[joined.variant_id].item_ids.split() == list(want.item_ids)
    assert enqueued.deliveries == len(rows_) == everyone  # audience "all": every member, once
    assert len({r.member for r in rows_}) == len(rows_)
    assert all(r.region_id == r.home for r in rows_)
    assert [r.member for r in rows_][:-1] == sorted(r.member for r in rows_ if r.email != "late@example.org")
    assert {v.key for v in variants.values()} <= planned | {want.key}
    assert all(any(r.variant_id == v for r in rows_) for v in variants)  # no variant without a row


def test_the_send_paths_tokens_are_the_tokens_of_sign_and_verp_tag() -> None:
    """``RecipientSigner`` (one per batch: key, campaign and issue time prepared once) gives the same
    strings as ``tokens.sign`` and ``tokens.verp_tag``: the format is unchanged, so links in mail
    sent before verify as they did, and these verify for their purpose only."""
    from datetime import UTC

    from mailer import tokens

    keys = ["a-strong-enough-key-for-this-test-only-0123456789abcdef", "an-older-key"]
    now = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    for campaign in (None, 1, 42, 2**40):
        signer = tokens.RecipientSigner(
            keys=keys, list_domain="Lists.Example.org", campaign=campaign, now=now
        )
        for member in (0, 1, 127, 128, 325_000, 2**53 - 1):
            unsubscribe, preferences = signer.links(member)
            assert unsubscribe == tokens.sign("unsubscribe", member, keys=keys, campaign=campaign, now=now)
            assert preferences == tokens.sign("preferences", member, keys=keys, campaign=campaign, now=now)
            assert tokens.verify(unsubscribe, "unsubscribe", keys=keys, now=now).member_id == member
            with pytest.raises(tokens.InvalidToken):
                tokens.verify(unsubscribe, "preferences", keys=keys, now=now)
            assert signer.verp_tag(member) == tokens.verp_tag(member, "Lists.Example.org", keys=keys)
