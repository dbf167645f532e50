"""Many workers, one campaign: ``mailer worker`` processes against a real PostgreSQL and aiosmtpd.

The multi-worker tests run real ``mailer worker`` subprocesses, so they are PostgreSQL-only by
nature (SQLite has no ``SKIP LOCKED``): they use the ``pg_workspace`` fixture below, which takes
PostgreSQL from the session fixture of conftest.py (under CI a missing server fails them). The
library tests at the end (times, buckets, pause/resume/cancel) run on both databases.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import REPO
from sqlalchemy import select
from support.cli_runner import MailerCli
from support.smtp_server import SmtpTestServer
from support.workers import (
    LEASE,
    SLUG,
    WINDOW,
    PgWorkspace,
    Workers,
    add_members,
    campaign_status,
    cli_json,
    configure,
    health,
    make_pg_workspace,
    received,
    statuses,
    wait_for,
)

from mailer import sending as delivery
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import DeliveryError
from mailer.models import Campaign, Delivery, Member
from mailer.sending import Worker
from mailer.settings import Settings
from mailer.transport.shared_limits import buckets_for, take_tokens


@pytest.fixture
def pg_workspace(pg_session_url: str, workspace: Path, tmp_path: Path) -> Iterator[PgWorkspace]:
    """A workspace on the session's PostgreSQL database (emptied), with the alert to everyone."""
    ws = make_pg_workspace(pg_session_url, workspace, tmp_path)
    yield ws
    ws.db.dispose()


@pytest.fixture
def workers_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Workers]]:
    made: list[Workers] = []

    def make(env: dict[str, str]) -> Workers:
        w = Workers(env, tmp_path)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop_all()


# ---------------------------------------------------------------------------------------------
# three workers, 30,000 deliveries, one of them killed


@pytest.mark.load
def test_three_workers_share_a_campaign_and_survive_a_kill(
    pg_workspace: PgWorkspace,
    smtp_server: SmtpTestServer,
    workers_factory: Callable[[dict[str, str]], Workers],
) -> None:
    ws = pg_workspace
    everyone = add_members(ws, 30_000)
    env = ws.env(smtp_server.url)

    # On PostgreSQL, `send` enqueues for the workers and says how to start them.
    queued = cli_json(env, "campaigns", "send", SLUG, "--yes")
    assert isinstance(queued, dict)
    assert queued["status"] == "sending" and queued["pending"] == len(everyone)
    assert queued["workers_alive"] == []
    human = MailerCli(env)("campaigns", "status", SLUG)
    assert "sending" in human.stdout
    assert not smtp_server.messages  # nothing is sent without a worker

    workers = workers_factory(env)
    workers.start("w1", "w2", "w3")
    wait_for(lambda: len(smtp_server.messages) >= 3000, 120, "3,000 messages")
    alive = health(env)
    assert {n for n, h in alive.items() if h["state"] == "alive"} == {"w1", "w2", "w3"}, alive

    def held_by(name: str) -> list[tuple[int, datetime]]:
        with ws.db.session() as session:
            rows = session.execute(
                select(Delivery.id, Delivery.lease_until).where(
                    Delivery.claimed_by == name, Delivery.status == "sending"
                )
            ).all()
        return [(int(i), lease) for i, lease in rows if lease is not None]

    wait_for(lambda: len(held_by("w2")) >= 50, 60, "w2 to hold a batch")
    workers.kill("w2")
    killed_at = datetime.now(UTC)
    orphans = dict(held_by("w2"))  # claimed, never recorded: the others take them when the lease ends
    assert orphans, "w2 held nothing when killed"
    assert max(orphans.values()) <= killed_at + timedelta(seconds=LEASE + 0.5)

    wait_for(lambda: campaign_status(ws.db) == "sent", 180, "the campaign to be sent")
    got = received(smtp_server)
    assert set(got) == everyone  # every member got the alert
    duplicates = sum(n - 1 for n in got.values())
    bound = WINDOW + delivery.FLUSH_RESULTS  # what the killed worker had on the wire, unrecorded
    assert duplicates <= bound, f"{duplicates} duplicates, bound {bound}"
    assert statuses(ws.db) == Counter({"sent": len(everyone)})
    with ws.db.session() as session:
        orphan_rows = session.execute(
            select(Delivery.id, Delivery.sent_at, Member.email)
            .join(Member, Member.id == Delivery.member_id)
            .where(Delivery.id.in_(list(orphans)))
        ).all()
    # The killed worker's batch was finished by the others, and only after its lease ended.
    assert all(sent_at is not None and sent_at >= orphans[i] for i, sent_at, _ in orphan_rows)
    duplicated = {r for r, n in got.items() if n > 1}
    assert duplicated <= {email for _, _, email in orphan_rows}  # only its unrecorded messages

    after = health(env)
    assert after["w2"]["state"] == "lost" and after["w2"]["holding"] == 0
    assert after["w1"]["state"] == after["w3"]["state"] == "alive"
    summaries = workers.terminate("w1", "w3")
    assert all(s["stopped_because"] == "stopped by SIGTERM" for s in summaries.values())
    shares = [int(s["sent"]) for s in summaries.values()]  # type: ignore[call-overload]
    assert all(n > 1000 for n in shares), shares  # both did their part
    assert health(env)["w1"]["state"] == "stopped"


# ---------------------------------------------------------------------------------------------
# schedule, pause, resume, cancel, the shared rate limit, SIGTERM


def london(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%d %H:%M:%S")


def sample_counts(server: SmtpTestServer, seconds: float) -> list[tuple[float, int]]:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append((time.monotonic(), len(server.messages)))
        time.sleep(0.02)
    return out


@pytest.mark.load
def test_scheduled_send_starts_on_time_and_pause_resume_act_on_every_worker(
    pg_workspace: PgWorkspace,
    smtp_server: SmtpTestServer,
    workers_factory: Callable[[dict[str, str]], Workers],
) -> None:
    ws = pg_workspace
    configure(ws.root, rate_per_second=150.0)
    everyone = add_members(ws, 1500)
    env = ws.env(smtp_server.url)
    workers = workers_factory(env)
    workers.start("a", "b", "c")
    wait_for(lambda: len([h for h in health(env).values() if h["state"] == "alive"]) == 3, 30, "workers")

    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    scheduled = cli_json(env, "campaigns", "send", SLUG, "--at", london(at), "--yes")
    assert isinstance(scheduled, dict)
    assert scheduled["status"] == "scheduled" and sorted(scheduled["workers_alive"]) == ["a", "b", "c"]
    with ws.db.session() as session:
        assert session.scalars(select(Campaign.scheduled_at)).one() == at
    wait_for(lambda: bool(smtp_server.messages), 30, "the scheduled send to start")
    started = datetime.now(UTC)
    assert at <= started <= at + timedelta(seconds=3), (at, started)

    wait_for(lambda: len(smtp_server.messages) >= 300, 30, "300 messages")
    paused = cli_json(env, "campaigns", "pause", SLUG)
    at_pause = len(smtp_server.messages)
    assert isinstance(paused, dict) and paused["was"] == "sending"
    time.sleep(2.0)  # every worker notices within STATUS_SECONDS and finishes what is on the wire
    after_pause = len(smtp_server.messages)
    assert after_pause - at_pause <= 200, "sending went on for more than a batch after the pause"
    time.sleep(1.5)
    assert len(smtp_server.messages) == after_pause  # stopped, on every worker
    counts = statuses(ws.db)
    assert counts["sending"] == 0 and counts["pending"] > 0  # what they held went back
    assert all(h["holding"] == 0 for h in health(env).values())
    assert campaign_status(ws.db) == "paused"

    resumed = cli_json(env, "campaigns", "resume", SLUG)
    assert isinstance(resumed, dict) and resumed["status"] == "sending"
    wait_for(lambda: campaign_status(ws.db) == "sent", 60, "the rest to be sent")
    got = received(smtp_server)
    assert set(got) == everyone and max(got.values()) == 1
    assert statuses(ws.db) == Counter({"sent": len(everyone)})


@pytest.mark.load
def test_cancel_stops_every_worker_and_cancels_claimed_batches(
    pg_workspace: PgWorkspace,
    smtp_server: SmtpTestServer,
    workers_factory: Callable[[dict[str, str]], Workers],
) -> None:
    ws = pg_workspace
    configure(ws.root, rate_per_second=100.0)
    add_members(ws, 1500)
    env = ws.env(smtp_server.url)
    workers = workers_factory(env)
    queued = cli_json(env, "campaigns", "send", SLUG, "--yes")
    assert isinstance(queued, dict) and queued["status"] == "sending"
    workers.start("a", "b", "c")
    wait_for(lambda: len(smtp_server.messages) >= 200, 60, "200 messages")
    with ws.db.session() as session:
        claimed = set(session.scalars(select(Delivery.id).where(Delivery.status == "sending")))
    assert claimed  # batches held by the workers at the moment of the cancel
    cancelled = cli_json(env, "campaigns", "cancel", SLUG, "--yes")
    assert isinstance(cancelled, dict) and cancelled["status"] == "cancelled"
    assert int(cancelled["changed"]) > 0  # type: ignore[call-overload]
    time.sleep(2.0)  # the workers notice and finish what is on the wire
    settled = len(smtp_server.messages)
    time.sleep(2.0)
    assert len(smtp_server.messages) == settled  # nothing is sent afterwards

    got = received(smtp_server)
    counts = statuses(ws.db)
    assert set(counts) == {"sent", "cancelled"} and counts["cancelled"] > 0
    with ws.db.session() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.status, Member.email).join(Member, Member.id == Delivery.member_id)
        ).all()
    sent = {email for _, status, email in rows if status == "sent"}
    assert set(got) == sent and max(got.values()) == 1  # every message the server took is recorded
    assert not {email for _, status, email in rows if status == "cancelled"} & set(got)
    claimed_status = Counter(status for i, status, _ in rows if i in claimed)
    assert claimed_status["cancelled"] > 0  # claimed, not yet sent: cancelled, and never sent
    refused = MailerCli(env)("campaigns", "resume", SLUG)
    assert refused.exit_code != 0 and "cancelled" in refused.stderr
    assert campaign_status(ws.db) == "cancelled"


@pytest.mark.load
def test_the_rate_limit_is_shared_by_every_worker_and_sigterm_stops_cleanly(
    pg_workspace: PgWorkspace,
    smtp_server: SmtpTestServer,
    workers_factory: Callable[[dict[str, str]], Workers],
) -> None:
    rate = 100.0
    ws = pg_workspace
    configure(ws.root, rate_per_second=rate)
    add_members(ws, 1500)
    env = ws.env(smtp_server.url)
    cli_json(env, "campaigns", "send", SLUG, "--yes")
    workers = workers_factory(env)
    workers.start("a", "b", "c")
    wait_for(lambda: len(smtp_server.messages) >= 50, 60, "the send to get going")
    samples = sample_counts(smtp_server, 4.0)
    seconds = samples[-1][0] - samples[0][0]
    count = samples[-1][1] - samples[0][1]
    # At most R per second, with slack for one block per worker and the bucket's capacity.
    block = int(rate * 0.1)
    assert count <= rate * seconds * 1.15 + 4 * block, (count, seconds)
    # Each one-second stretch too.
    for i, (t0, c0) in enumerate(samples):
        later = [(t, c) for t, c in samples[i:] if t - t0 >= 1.0]
        if later:
            assert later[0][1] - c0 <= rate * 1.3 + 4 * block, (later[0][1] - c0, later[0][0] - t0)
    assert count >= rate * seconds * 0.5, (count, seconds)  # it was sending, not stalled
    rates = [float(h["per_second"]) for h in health(env).values()]  # type: ignore[arg-type]
    assert 0 < sum(rates) <= rate * 1.5

    summaries = workers.terminate("a", "b", "c")
    assert all(s["stopped_because"] == "stopped by SIGTERM" for s in summaries.values())
    got = received(smtp_server)
    counts = statuses(ws.db)
    assert counts["sending"] == 0 and counts["pending"] > 0  # stopped cleanly, the rest put back
    assert counts["sent"] == len(got) == sum(int(s["sent"]) for s in summaries.values())  # type: ignore[call-overload]
    assert max(got.values()) == 1
    assert campaign_status(ws.db) == "sending"  # a worker stopping does not stop the campaign
    assert {h["state"] for h in health(env).values()} == {"stopped"}


# ---------------------------------------------------------------------------------------------
# the library, on both databases


def test_send_times_are_london_wall_clock() -> None:
    assert delivery.parse_send_time("2025-11-17 08:00") == datetime(2025, 11, 17, 8, 0, tzinfo=UTC)
    assert delivery.parse_send_time("2025-07-01 08:00:30") == datetime(2025, 7, 1, 7, 0, 30, tzinfo=UTC)
    with pytest.raises(DeliveryError, match="cannot read the time"):
        delivery.parse_send_time("17/11/2025 8am")


def test_buckets_keep_to_the_limits(db: Database) -> None:
    per_second, per_hour = buckets_for("smtp://relay:25", 50.0, 0), buckets_for("smtp://relay:25", 0.0, 3600)
    assert per_second[0].capacity == 5 and per_second[0].rate == 50.0
    assert per_hour[0].capacity == 60 and per_hour[0].rate * 3600 + per_hour[0].capacity == 3600
    slow = buckets_for("smtp://slow:25", 1.0, 0)  # one a second: a block of one
    assert take_tokens(db, slow, want=1) == (1, 0.0)
    granted, wait = take_tokens(db, slow, want=1)
    assert granted == 0 and 0.5 < wait <= 1.0
    assert take_tokens(db, per_second, want=5) == (5, 0.0)  # a full block, then nothing
    assert take_tokens(db, per_second, want=5, least=3)[0] == 0


def test_pause_resume_cancel_and_schedule(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path
) -> None:
    shutil.copytree(REPO / "campaigns" / SLUG, workspace / "campaigns" / SLUG)
    add_members((db, shape, tmp_path), 300)
    prepared = delivery.prepare(db, settings, shape, SLUG)
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    delivery.enqueue(db, prepared, scheduled_at=when)
    assert delivery.start_due(db) == []
    assert delivery.start_due(db, now=when) == [SLUG]
    assert delivery.sending_campaigns(db)[0][1] == SLUG
    campaign_id = delivery.sending_campaigns(db)[0][0]
    assert delivery.pause_campaign(db, SLUG).was == "sending"
    assert delivery.resume_campaign(db, SLUG).status == "sending"
    batch = delivery.claim(db, campaign_id, "some-worker", 10)
    assert len(batch) == 10
    total = sum(delivery.status_counts(db, campaign_id).values())
    assert delivery.renew_leases(db, campaign_id, "some-worker") == 10
    control = delivery.cancel_campaign(db, SLUG)
    assert control.changed == total  # the claimed ones too
    assert delivery.status_counts(db, campaign_id) == {"cancelled": total}
    assert delivery.claim(db, campaign_id, "another", 10) == []
    with pytest.raises(DeliveryError, match="only a paused campaign"):
        delivery.resume_campaign(db, SLUG)
    with pytest.raises(DeliveryError, match="cancelled"):
        delivery.start_campaign(db, SLUG)


def test_a_worker_name_is_used_once(db: Database, settings: Settings) -> None:
    first = Worker(db, settings, name="only-one")
    first._register()
    with pytest.raises(DeliveryError, match="running already"):
        Worker(db, settings, name="only-one")._register()
    if db.engine.dialect.name == "sqlite":
        with pytest.raises(DeliveryError, match="SQLite takes one worker"):
            Worker(db, settings, name="second")._register()
    else:
        Worker(db, settings, name="second")._register()  # PostgreSQL takes any number
