"""Database faults are weather: ``mailer worker`` processes ride out a restart and an outage.

Three real workers reach a real PostgreSQL through a TCP proxy (tests/support/db_proxy.py) that can
cut every connection and refuse new ones. Mid-send, every worker's server connection is killed
twice (``pg_terminate_backend``, as a restart or failover does: ``AdminShutdown``) and the database
is unreachable for 15 s once. The workers wait, record what they sent meanwhile and go on: every
member gets the alert exactly once, nothing is lost, and no worker exits. A worker killed outright
shows as ``lost`` in ``mailer workers``, one stopped cleanly as ``stopped``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from support.db_proxy import DbProxy
from support.smtp_server import SmtpTestServer
from support.workers import (
    SLUG,
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
from mailer.db import is_transient, open_database
from mailer.transport import transport_for

MEMBERS = 20_000
APP = "mailer-fault-test-worker"  # the workers' application_name, to find their server connections


@pytest.fixture
def pg_workspace(pg_session_url: str, workspace: Path, tmp_path: Path) -> Iterator[PgWorkspace]:
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


def terminate_workers_backends(url: str) -> int:
    """``pg_terminate_backend`` of every server connection of the workers; how many."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :a"
                ),
                {"a": APP},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(killed)


@pytest.mark.slow
def test_three_workers_ride_out_terminated_connections_and_a_refusing_database(
    pg_workspace: PgWorkspace,
    smtp_server: SmtpTestServer,
    workers_factory: Callable[[dict[str, str]], Workers],
) -> None:
    ws = pg_workspace
    configure(ws.root, concurrency=8, batch_size=250)
    everyone = add_members(ws, MEMBERS)
    env = ws.env(smtp_server.url)
    queued = cli_json(env, "campaigns", "send", SLUG, "--yes")
    assert isinstance(queued, dict) and queued["status"] == "sending"

    with DbProxy(("127.0.0.1", 5432)) as proxy:
        through_proxy = dict(env, MAILER_DATABASE_URL=proxy.url_for(ws.url, application_name=APP))
        workers = workers_factory(through_proxy)
        workers.start("w1", "w2", "w3")

        def sent_at_least(n: int) -> None:
            wait_for(lambda: len(smtp_server.messages) >= n, 120, f"{n:,} messages")

        sent_at_least(MEMBERS // 10)
        assert terminate_workers_backends(ws.url) >= 3  # a restart, as the workers see it
        sent_at_least(MEMBERS * 3 // 10)
        assert terminate_workers_backends(ws.url) >= 3  # and a failover
        sent_at_least(MEMBERS // 2)
        proxy.refuse(15.0)  # the database unreachable: every connection cut, new ones refused
        time.sleep(3.0)  # what was on a connection finishes; then nothing more goes out
        during = len(smtp_server.messages)
        time.sleep(3.0)
        assert len(smtp_server.messages) == during, "messages went out while nothing could be recorded"
        assert all(p.poll() is None for p in workers.procs.values()), "a worker exited"

        wait_for(lambda: campaign_status(ws.db) == "sent", 150, "the campaign to be sent")
        assert all(p.poll() is None for p in workers.procs.values()), "a worker exited"
        got = received(smtp_server)
        assert set(got) == everyone and max(got.values()) == 1, [r for r, n in got.items() if n > 1][:10]
        assert statuses(ws.db) == {"sent": MEMBERS}  # nothing lost, nothing left claimed
        alive = health(env)
        assert {n for n, h in alive.items() if h["state"] == "alive"} == {"w1", "w2", "w3"}, alive

        for name in ("w1", "w2", "w3"):
            log = workers.log(name)
            away = len(re.findall(r"the database is away", log))
            assert 1 <= away <= 6, log  # said once per outage, not once per try (three outages)
            assert "the database is back after" in log
            assert "Traceback" not in log

        workers.kill("w3")  # kill -9: no goodbye
        wait_for(lambda: health(env)["w3"]["state"] == "lost", 15, "w3 to show as lost")
        summaries = workers.terminate("w1", "w2")
        assert all(s["stopped_because"] == "stopped by SIGTERM" for s in summaries.values())
        after = health(env)
        assert after["w1"]["state"] == after["w2"]["state"] == "stopped"
        assert after["w3"]["state"] == "lost"


@pytest.mark.slow
def test_a_send_from_its_own_process_rides_out_the_database_going_away(
    pg_workspace: PgWorkspace, smtp_server: SmtpTestServer
) -> None:
    """``campaigns send --in-process`` (and a send on SQLite) is the same engine, run once: it
    waits for the database, records what it sent meanwhile, and goes on to the end."""
    ws = pg_workspace
    everyone = add_members(ws, 1500)
    settings = dataclasses.replace(ws.settings, relay=smtp_server.url, batch_size=100)
    delivery.enqueue(ws.db, delivery.prepare(ws.db, settings, ws.shape, SLUG))
    lines: list[str] = []
    with DbProxy(("127.0.0.1", 5432)) as proxy:
        db = open_database(proxy.url_for(ws.url))
        faults = iter([(200, lambda: proxy.drop()), (700, lambda: proxy.refuse(2.0))])
        due = next(faults)

        def progress(summary: delivery.Summary) -> None:
            nonlocal due
            if due is not None and summary.sent >= due[0]:
                due[1]()
                due = next(faults, None)

        engine = delivery.Engine(db, settings, SLUG, progress=progress, fill_processes=0)
        engine.outage.say = lines.append
        summary = delivery.run_engine(engine, lambda: transport_for(settings), stop_on_signals=False)
        db.dispose()
    assert due is None, "the faults did not all happen"
    assert summary.sent == len(everyone) and summary.stopped_because == "", summary
    got = received(smtp_server)
    assert set(got) == everyone and max(got.values()) == 1
    assert statuses(ws.db) == {"sent": len(everyone)}
    assert campaign_status(ws.db) == "sent"
    assert sum("is away" in line for line in lines) == 2, lines  # once per outage
    assert sum("is back after" in line for line in lines) == 2, lines


def test_what_counts_as_the_database_away() -> None:
    """Weather (wait and go on) against a bug (raise): a refused connection is weather, a wrong
    statement is not, even where SQLite calls both OperationalError."""
    refused = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(OperationalError) as away:
        refused.connect()
    assert is_transient(away.value)
    sqlite = create_engine("sqlite://")
    with pytest.raises(OperationalError) as wrong, sqlite.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_transient(wrong.value)
    assert not is_transient(ValueError("not the database"))
