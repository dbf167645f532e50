"""The load test: 2,000 one-click unsubscribes from 50 clients at once while a send runs.

The send runs in this process (the delivery engine, into the aiosmtpd test server, held to a rate
so that it outlasts the POSTs; it is stopped once they are done); the web app runs as a second
process (``mailer serve --no-worker``, its production setup) on the same database. Every POST
must be answered, 200, and recorded (committed before the answer: it is in the database as soon
as the answer is); no member whose unsubscribe was recorded before their batch was claimed may
receive the newsletter.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO
from sqlalchemy import select
from support.sending import SLUG, add_campaign, add_members
from support.smtp_server import SmtpTestServer

from mailer import sending as delivery
from mailer import tokens
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.models import ConsentEvent, Delivery, Member, Suppression
from mailer.settings import Settings
from mailer.transport import open_transport

MEMBERS = 5_000
POSTS = 2_000
CLIENTS = 50
BATCH = 100
RATE = 20.0  # messages a second: the send outlasts the POSTs (4 minutes at most), which then stop it
# A message already claimed when its member unsubscribes may still go out: that is the batch in
# flight. It reaches the server within seconds of the claim; anything later is a failure.
GRACE_SECONDS = 5.0

pytestmark = [pytest.mark.load, pytest.mark.slow]


def _bench_web():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_web", REPO / "bench" / "web.py")
    assert spec and spec.loader
    sys.path.insert(0, str(REPO / "bench"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_web"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_one_click_posts_during_a_send_are_all_recorded_and_honoured(
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    env: dict[str, str],
    smtp_server: SmtpTestServer,
) -> None:
    bench_web = _bench_web()
    add_campaign(workspace, audience="all")
    add_members(db, shape, tmp_path, MEMBERS)
    with db.session() as session:
        ids = list(session.scalars(select(Member.id).order_by(Member.id)))
    # Leavers spread over the later three quarters of the send, so most POSTs land before their batch.
    chosen = ids[len(ids) // 4 :: (3 * len(ids) // 4) // POSTS][:POSTS]
    assert len(chosen) == POSTS
    prepared = delivery.prepare(db, settings, shape, SLUG)
    enqueued = delivery.enqueue(db, prepared)
    token_of = {
        m: tokens.sign("unsubscribe", m, keys=settings.secrets, campaign=enqueued.campaign_id) for m in chosen
    }

    server, base = bench_web.start_server(env, "--no-worker")
    try:
        engine = delivery.Engine(db, settings, SLUG, batch_size=BATCH)

        async def run() -> None:
            async with open_transport(
                smtp_server.url, concurrency=4, timeout=10, rate_per_second=RATE
            ) as transport:
                await engine.run(transport)

        sender = threading.Thread(target=lambda: asyncio.run(run()))
        sender.start()
        deadline = time.monotonic() + 60
        while len(smtp_server.messages) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        results = bench_web.one_click(base, [token_of[m] for m in chosen], CLIENTS)
        still_sending = sender.is_alive()
        engine.stop("the POSTs are done")  # a flag, read between batches
        sender.join(120)
        assert not sender.is_alive()
    finally:
        bench_web.stop_server(server)

    assert still_sending, "the send ended before the POSTs did: the test did not overlap them"
    assert sorted(a.status for a in results) == [200] * POSTS, "every POST answered, and 200"
    done_at = {a.token: a.at for a in results}

    received_at: dict[str, float] = {}
    for message in smtp_server.messages:
        for rcpt in message.rcpt_tos:
            received_at[rcpt] = message.received_at
    with db.session() as session:
        rows = session.execute(
            select(Member.id, Member.email, Member.address_hash, Delivery.status)
            .join(Delivery, Delivery.member_id == Member.id)
            .where(Member.id.in_(chosen))
        ).all()
        suppressed = set(
            session.scalars(select(Suppression.address_hash).where(Suppression.source == "one-click"))
        )
        logged = set(
            session.scalars(
                select(ConsentEvent.member_id).where(
                    ConsentEvent.source == "one-click", ConsentEvent.campaign == SLUG
                )
            )
        )
        all_statuses = set(session.scalars(select(Delivery.status).distinct()))
    assert len(rows) == POSTS
    stopped = 0
    for member_id, email, address_hash, status in rows:
        assert address_hash in suppressed  # every POST recorded as a suppression...
        assert member_id in logged  # ...with its source and campaign in the consent log
        if status in ("suppressed", "pending"):  # skipped at its batch, or never reached: never sent
            stopped += 1
            assert email not in received_at
        else:
            assert status == "sent"
            # Claimed before the unsubscribe: it went out with the batch that was in flight.
            assert received_at[email] <= done_at[token_of[member_id]] + GRACE_SECONDS
    assert stopped > POSTS // 2, f"only {stopped} of {POSTS} unsubscribes landed before their batch"
    # pending: not reached when the send was stopped; unknown: a reply the busy relay never gave
    assert all_statuses <= {"sent", "suppressed", "pending", "unknown"}
