"""``mailer serve`` for real: its own sending worker, several web processes, health and metrics.

- a campaign queued with no other worker goes out with ``mailer serve --processes 2`` alone, and
  its sending shows in /healthz and /metrics (counted across both web processes);
- on SQLite the built-in worker does not start beside a live separate worker;
- /healthz is 503 and ``campaigns status`` warns, with the fix, when messages wait for a worker
  that is not there;
- /metrics is refused from elsewhere than this machine unless ``metrics_allow`` or the token opens it;
- an overloaded process answers 503 with Retry-After instead of leaving a request unanswered;
- ``log_format = "json"`` writes JSON lines, tokens cut.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from starlette.types import Receive, Scope, Send
from support.browser import free_port
from support.cli_runner import MailerCli
from support.sending import SLUG, add_campaign, add_members
from support.serving import behind_proxy, mailer_serve
from support.smtp_server import SmtpTestServer

from mailer import sending
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import ConfigError
from mailer.models import WorkerRow, utcnow
from mailer.sending import health as sending_health
from mailer.settings import Settings
from mailer.web import create_app, serving
from mailer.web.health import Guard, Metrics
from mailer.web.logs import log_config

MEMBERS = 40


def _queue(db: Database, settings: Settings, shape: Shape) -> sending.Queued:
    """The campaign queued for the workers, as the desk queues it."""
    result = sending.send(sending.plan_send(db, settings, shape, SLUG, to_workers=True))
    assert isinstance(result, sending.Queued) and result.pending > 0
    return result


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{name} not in:\n{text}"
    return float(found.group(1))


@pytest.mark.slow
def test_serve_sends_a_queued_campaign_with_no_other_worker(
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    env: dict[str, str],
    smtp_server: SmtpTestServer,
) -> None:
    add_campaign(workspace, audience="all")
    add_members(db, shape, tmp_path, MEMBERS)
    queued = _queue(db, settings, shape)
    assert sending_health.health(db, settings).problems  # due, and nobody to send it

    env = dict(env, MAILER_RELAY=smtp_server.url)
    with mailer_serve(env, "--processes", "2", log=tmp_path / "serve.log") as base:
        deadline = time.monotonic() + 60
        while len(smtp_server.messages) < queued.pending and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(smtp_server.messages) == queued.pending, (tmp_path / "serve.log").read_text()
        deadline = time.monotonic() + 30
        while (health := httpx.get(f"{base}/healthz")).json()["due"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert health.status_code == 200, health.text
        report = health.json()
        assert report["database"] == "reachable" and report["workers_alive"] == 1
        assert report["oldest_due_seconds"] is None and report["problems"] == []
        for _ in range(6):  # spread over both processes, counted together
            assert httpx.get(f"{base}/subscribe").status_code == 200
        scraped = httpx.get(f"{base}/metrics")
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert _metric(text, 'mailer_messages_total{state="sent"}') == queued.pending
    assert _metric(text, "mailer_queue_depth") == 0 and _metric(text, "mailer_workers_alive") == 1
    assert _metric(text, 'mailer_http_requests_total{route="/subscribe",status="200"}') == 6
    assert _metric(text, 'mailer_http_requests_total{route="/healthz",status="200"}') >= 1
    log = (tmp_path / "serve.log").read_text()
    assert "built-in worker" in log and "stopped with the web app" in log, log
    with db.session() as session:  # the worker said goodbye when serve stopped
        assert set(session.scalars(select(WorkerRow.state))) == {"stopped"}


def _live_worker(db: Database) -> None:
    now = utcnow()
    with db.session() as session:
        session.add(
            WorkerRow(
                name="mail-1", host="elsewhere", pid=1, concurrency=8, state="running",
                campaign="", holding=0, sent=0, rate=0.0, started_at=now, heartbeat_at=now,
            )
        )  # fmt: skip


def test_the_built_in_worker_does_not_start_beside_a_live_one_on_sqlite(
    db: Database, settings: Settings, backend: str
) -> None:
    def plan(worker: bool) -> serving.Plan:
        return serving.plan(
            db, settings, host="127.0.0.1", port=8000, processes=2, proxy=False, worker=worker
        )

    assert plan(True).worker
    off = plan(False)
    assert not off.worker and "mailer worker" in off.worker_note
    _live_worker(db)
    beside = plan(True)
    if backend == "sqlite":
        assert not beside.worker and "mail-1" in beside.worker_note and "SQLite" in beside.worker_note
    else:  # PostgreSQL: any number of workers share a campaign
        assert beside.worker


def test_a_campaign_waiting_for_no_worker_is_said_with_the_fix(
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    mailer_cli: MailerCli,
) -> None:
    add_campaign(workspace, audience="all")
    add_members(db, shape, tmp_path, 5)
    _queue(db, settings, shape)
    status = mailer_cli("campaigns", "status", SLUG, check=True)
    assert "no sending worker is running" in status.stdout and "mailer serve" in status.stdout
    as_json = json.loads(mailer_cli("campaigns", "status", SLUG, "--json", check=True).stdout)
    assert "mailer worker" in as_json["no_worker"]

    with behind_proxy(create_app(settings, shape=shape, database=db)) as base:
        health = httpx.get(f"{base}/healthz")
    assert health.status_code == 503 and health.headers["content-type"] == "application/json"
    report = health.json()
    assert report["due"] == 5 and report["oldest_due_seconds"] >= 0
    assert report["problems"] == ["5 message(s) are due and no sending worker is alive"]

    _live_worker(db)
    assert "no sending worker" not in mailer_cli("campaigns", "status", SLUG, check=True).stdout
    assert sending_health.health(db, settings).ok


def test_metrics_are_refused_from_outside_unless_allowed(
    db: Database, settings: Settings, shape: Shape
) -> None:
    outside = {"X-Forwarded-For": "203.0.113.7"}
    with behind_proxy(create_app(settings, shape=shape, database=db)) as base:
        assert httpx.get(f"{base}/metrics").status_code == 200  # this machine
        refused = httpx.get(f"{base}/metrics", headers=outside)
        assert refused.status_code == 404 and "mailer_" not in refused.text
        assert httpx.get(f"{base}/healthz", headers=outside).status_code == 200  # for a load balancer
    allowed = replace(settings, metrics_allow="10.0.0.5, 203.0.113.0/24")
    with behind_proxy(create_app(allowed, shape=shape, database=db)) as base:
        assert httpx.get(f"{base}/metrics", headers=outside).status_code == 200
        assert httpx.get(f"{base}/metrics", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 404
    token = "m" * 40
    with behind_proxy(create_app(replace(settings, metrics_token=token), shape=shape, database=db)) as base:
        opened = httpx.get(f"{base}/metrics", headers={**outside, "Authorization": f"Bearer {token}"})
        assert opened.status_code == 200 and "mailer_unsubscribes_total" in opened.text
        wrong = httpx.get(f"{base}/metrics", headers={**outside, "Authorization": "Bearer " + "x" * 40})
        assert wrong.status_code == 404
    with pytest.raises(ConfigError) as bad:
        create_app(replace(settings, metrics_allow="10.0.0.0/33"), shape=shape, database=db)
    assert bad.value.field == "metrics_allow"


def test_an_overloaded_process_answers_503_with_retry_after(db: Database, settings: Settings) -> None:
    release = asyncio.Event()
    loop: list[asyncio.AbstractEventLoop] = []

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        loop[:] = [asyncio.get_running_loop()]
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    metrics = Metrics(db, settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(Guard(slow, metrics, limit=2), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    answers: list[httpx.Response] = []

    def ask() -> None:
        answers.append(httpx.get(f"http://127.0.0.1:{port}/", timeout=30))

    try:
        askers = [threading.Thread(target=ask) for _ in range(2)]
        for a in askers:
            a.start()
        while not loop:
            time.sleep(0.02)
        time.sleep(0.3)  # both are in
        busy = [httpx.get(f"http://127.0.0.1:{port}/", timeout=30) for _ in range(3)]
        loop[0].call_soon_threadsafe(release.set)
        for a in askers:
            a.join(30)
    finally:
        server.should_exit = True
        thread.join(10)
    assert [r.status_code for r in answers] == [200, 200]
    assert {r.status_code for r in busy} == {503}
    assert all(r.headers["retry-after"] == "5" for r in busy)
    scraped = metrics.scrape().decode()
    assert _metric(scraped, 'mailer_http_requests_total{route="(overload)",status="503"}') == 3


def test_json_logs_are_one_object_a_line_with_tokens_cut(settings: Settings) -> None:
    token = "A" * 60
    config = log_config(replace(settings, log_format="json"))
    assert all(h["formatter"] == "json" for h in config["handlers"].values())
    assert all("redact" in h["filters"] for h in config["handlers"].values())
    # The configured formatter and filter, on a handler of this test's own (logging stays as it was).
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(config["formatters"]["json"]["()"]())
    redact = config["filters"]["redact"]
    handler.addFilter(redact["()"](secrets=redact["secrets"]))
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/u/{token}", "1.1", 200), None,
    )  # fmt: skip
    handler.handle(record)
    entry = json.loads(stream.getvalue().strip())
    assert entry["method"] == "POST" and entry["status"] == 200 and entry["level"] == "info"
    assert entry["path"] == "/u/AAAAAA..." and token not in stream.getvalue()
    with pytest.raises(ConfigError) as bad:
        log_config(replace(settings, log_format="xml"))
    assert bad.value.field == "log_format"
