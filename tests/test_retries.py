"""A relay's hesitations, on SQLite and PostgreSQL: retryable means retried, unknown is never resent.

A 4xx at any stage, or a connection lost before the whole message went out, defers a delivery; it
is tried again when due, after waits that grow, until the queue lifetime is spent. A message sent
whole and never answered (dropped, garbled, hung) is ``unknown``: recorded once, shown in status
and report with the command that resends it, and resent only when asked. The clock of next attempts
is the test's own (``Clock``), so "ten minutes later" takes no time; the relay is the real test
server, told to misbehave.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Row, select, update
from support.cli_runner import MailerCli
from support.sending import SLUG, Clock, Mailing
from support.smtp_server import SmtpTestServer

from mailer import sending
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.models import Delivery, Member, utcnow
from mailer.settings import Settings
from mailer.transport import open_transport

GREYLISTED = "451 4.7.1 Greylisted, please try again later"


def statuses(db: Database) -> dict[str, Row[Any]]:
    """Each member's delivery: status, last_code, last_error, attempts, next_attempt_at."""
    with db.session() as session:
        rows = session.execute(
            select(
                Member.email,
                Delivery.status,
                Delivery.last_code,
                Delivery.last_error,
                Delivery.attempts,
                Delivery.next_attempt_at,
            ).join(Member, Member.id == Delivery.member_id)
        ).all()
    return {row.email: row for row in rows}


def received(server: SmtpTestServer) -> Counter[str]:
    """How many times each recipient's message reached the server whole (answered or not)."""
    return Counter(r for m in [*server.messages, *server.unanswered] for r in m.rcpt_tos)


@pytest.mark.slow
def test_a_relay_answering_451_for_ten_minutes_then_250_delivers_everyone_once(
    db: Database, shape: Shape, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    audience = mailing.enqueue_kent(200)
    clock = Clock()
    mended = clock() + timedelta(minutes=10)
    smtp_server.tempfail(stage="rcpt", reply=GREYLISTED, until=lambda: clock() >= mended)

    first = mailing.send(now=clock)
    assert (first.sent, first.failed, first.deferred) == (0, 0, len(audience))  # 4xx pause nothing
    assert first.stopped_because.startswith("waiting: ") and first.deferred_left == len(audience)
    assert first.next_attempt_at == clock() + timedelta(minutes=5)
    status = sending.campaign_status(db, shape, SLUG)
    assert status.status == "sending" and status.waiting and status.counts == {"deferred": len(audience)}
    assert f"`mailer campaigns send {SLUG}`" in status.next_steps()[0]

    mails = [c for c in smtp_server.commands if c[1] == "MAIL"]
    too_soon = mailing.send(now=clock)  # sending again before they are due
    assert too_soon.sent == too_soon.deferred == 0 and too_soon.stopped_because.startswith("waiting: ")
    assert [c for c in smtp_server.commands if c[1] == "MAIL"] == mails  # the relay got no message
    clock.wait(minutes=5)
    second = mailing.send(now=clock)  # still greylisted: waits longer
    assert (second.sent, second.deferred) == (0, len(audience))
    assert second.next_attempt_at == clock() + timedelta(minutes=10)
    clock.wait(minutes=10)
    third = mailing.send(now=clock)
    assert (third.sent, third.failed, third.deferred, third.unknown) == (len(audience), 0, 0, 0)

    assert Counter(r for m in smtp_server.messages for r in m.rcpt_tos) == Counter(audience)
    rows = statuses(db)
    assert {d.status for d in rows.values()} == {"sent"}
    assert {d.attempts for d in rows.values()} == {3} and all(
        d.next_attempt_at is None for d in rows.values()
    )
    status = sending.campaign_status(db, shape, SLUG)
    assert status.status == "sent" and status.next_steps() == []


def test_a_4xx_at_every_stage_defers_and_nothing_is_resent_twice(
    db: Database, shape: Shape, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    audience = mailing.enqueue_kent(120)
    clock = Clock()
    at_mail, at_rcpt, at_data, at_dot, dropped = audience[:5]
    with db.session() as session:  # MAIL is refused by its sender: the VERP address of the delivery
        mail_id = session.scalar(
            select(Delivery.id).join(Member, Member.id == Delivery.member_id).where(Member.email == at_mail)
        )
    smtp_server.tempfail(rf"^bounces\+{mail_id}\b", stage="mail", times=1, reply="421 4.3.2 Not now")
    smtp_server.tempfail(re.escape(at_rcpt), stage="rcpt", times=1, reply="450 4.2.1 Mailbox busy")
    smtp_server.tempfail(re.escape(at_data), stage="data", times=1, reply="452 4.3.1 Out of memory")
    smtp_server.tempfail(re.escape(at_dot), times=1, reply="451 4.3.0 Queue file write error")
    smtp_server.drop(re.escape(dropped), when="at-data", times=2)  # three tries in a go: fine on the third

    first = mailing.send(now=clock)
    rows = statuses(db)
    deferred = {e: d for e, d in rows.items() if d.status == "deferred"}
    assert set(deferred) == {at_mail, at_rcpt, at_data, at_dot}
    assert {e: d.last_code for e, d in deferred.items()} == {
        at_mail: 421,
        at_rcpt: 450,
        at_data: 452,
        at_dot: 451,
    }
    assert rows[dropped].status == "sent" and first.retried >= 2  # retried at once: it never went out
    assert first.failed == first.unknown == 0

    clock.wait(minutes=5)
    again = mailing.send(now=clock)
    assert again.sent == 4
    assert received(smtp_server) == Counter(audience)
    assert sending.campaign_status(db, shape, SLUG).status == "sent"


@pytest.mark.slow
def test_a_relay_that_drops_after_the_final_dot_leaves_unknown_deliveries_sent_once(
    db: Database,
    shape: Shape,
    env: dict[str, str],
    mailer_cli: MailerCli,
    smtp_server: SmtpTestServer,
    mailing: Mailing,
) -> None:
    audience = mailing.enqueue_kent(120)
    affected = audience[3:6]
    smtp_server.drop("|".join(map(re.escape, affected)), when="after-dot", times=None)
    relay = mailing.relay

    sent = mailer_cli("campaigns", "send", SLUG, "--in-process", "--yes", "--json", env=relay)
    assert sent.exit_code == 0, sent.stderr
    data = json.loads(sent.stdout)
    assert (data["sent"], data["unknown"], data["failed"]) == (len(audience) - 3, 3, 0)
    assert data["status"]["status"] == "sent"  # unknown ones do not hold the campaign open
    rows = statuses(db)
    assert {e for e, d in rows.items() if d.status == "unknown"} == set(affected)
    assert all(
        rows[e].last_code is None and "may have been delivered" in rows[e].last_error for e in affected
    )
    assert Counter(r for m in smtp_server.unanswered for r in m.rcpt_tos) == Counter(affected)
    assert received(smtp_server) == Counter(audience)  # each once: nothing resent by itself

    again = mailer_cli("campaigns", "send", SLUG, "--in-process", "--yes", env=relay)
    # Sending again is a next stage: everyone has a delivery, so nobody is added and the
    # unknown ones are not resent by it.
    assert again.exit_code == 0 and "nobody to add" in again.stdout, again.stderr
    assert received(smtp_server) == Counter(audience)
    command = f"mailer campaigns retry {SLUG} --unknown"
    status = mailer_cli("campaigns", "status", SLUG, check=True).stdout
    assert "unknown 3" in status and command in status
    status_json = json.loads(mailer_cli("campaigns", "status", SLUG, "--json", check=True).stdout)
    assert status_json["counts"]["unknown"] == 3 and any(command in s for s in status_json["next_steps"])
    report = mailer_cli("campaigns", "report", SLUG, check=True).stdout
    assert re.search(r"Outcome unknown\s+3\b", report) and command in report
    report_json = json.loads(mailer_cli("campaigns", "report", SLUG, "--json", check=True).stdout)
    assert report_json["total"]["unknown"] == 3 and report_json["total"]["sent"] == len(audience) - 3
    assert any(command in s for s in report_json["next_steps"])

    retry_help = mailer_cli("campaigns", "retry", "--help", check=True).stdout
    assert "--unknown" in retry_help and "twice" in retry_help
    nothing = mailer_cli("campaigns", "retry", SLUG, "--yes", env=relay)  # without --unknown
    assert nothing.exit_code != 0 and "nothing to retry" in nothing.stderr and "--unknown" in nothing.stderr
    assert received(smtp_server) == Counter(audience)

    smtp_server.clear_faults()
    retried = mailer_cli(
        "campaigns", "retry", SLUG, "--unknown", "--in-process", "--yes", "--json", env=relay
    )
    assert retried.exit_code == 0, retried.stderr
    assert json.loads(retried.stdout)["sent"] == 3
    assert Counter(r for m in smtp_server.messages for r in m.rcpt_tos) == Counter(audience)
    assert {d.status for d in statuses(db).values()} == {"sent"}
    assert sending.campaign_status(db, shape, SLUG).status == "sent"


@pytest.mark.slow
def test_garbage_and_silence_after_the_final_dot_are_unknown_and_sent_once(
    db: Database, shape: Shape, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    audience = mailing.enqueue_kent(120)
    garbled, silent, odd, busy = audience[:4]
    smtp_server.garbage(re.escape(garbled))
    smtp_server.hang(re.escape(silent))
    smtp_server.garbage(re.escape(odd), reply="354 Go on then")  # a reply, but no answer to a message
    smtp_server.tempfail(re.escape(busy), stage="rcpt", times=1)  # keeps the campaign sending
    clock = Clock()

    first = mailing.send(now=clock, timeout=1.0)
    assert (first.unknown, first.deferred, first.failed) == (3, 1, 0)
    rows = statuses(db)
    assert {e for e, d in rows.items() if d.status == "unknown"} == {garbled, silent, odd}
    assert "malformed reply" in rows[garbled].last_error
    assert "did not reply within 1 s" in rows[silent].last_error
    assert "354" in rows[odd].last_error
    assert sending.campaign_status(db, shape, SLUG).status == "sending"  # for the deferred one

    clock.wait(days=4)  # however long: an unknown outcome is never resent by itself
    later = mailing.send(now=clock)
    assert (later.sent, later.unknown) == (1, 0)
    assert sending.campaign_status(db, shape, SLUG).status == "sent"
    assert received(smtp_server) == Counter(audience)
    assert Counter(r for m in smtp_server.unanswered for r in m.rcpt_tos) == Counter([garbled, silent, odd])


def test_backoff_grows_and_the_queue_lifetime_turns_deferred_into_failed(
    db: Database,
    settings: Settings,
    shape: Shape,
    env: dict[str, str],
    mailer_cli: MailerCli,
    smtp_server: SmtpTestServer,
    mailing: Mailing,
) -> None:
    short = dataclasses.replace(
        settings, retry_first_minutes=5.0, retry_max_hours=0.5, queue_lifetime_hours=1.0
    )
    audience = mailing.enqueue_kent(60, short)
    smtp_server.tempfail(stage="rcpt", reply=GREYLISTED)  # for ever
    clock = Clock()
    waits = []
    for _ in range(10):
        summary = mailing.send(short, now=clock)
        if summary.failed:
            break
        assert summary.deferred == len(audience) and summary.next_attempt_at is not None
        waits.append(summary.next_attempt_at - clock())
        clock.at = summary.next_attempt_at
    assert [w / timedelta(minutes=1) for w in waits] == [5, 10, 20, 30]  # doubling, then at most 30
    assert summary.failed == len(audience) and summary.deferred == 0
    rows = statuses(db)
    assert {d.status for d in rows.values()} == {"failed"}
    assert {d.last_error for d in rows.values()} == {
        f"gave up after 1 hour of temporary failures: {GREYLISTED}"
    }
    assert {d.attempts for d in rows.values()} == {5}
    status = sending.campaign_status(db, shape, SLUG)
    assert status.status == "sent" and status.retryable == len(audience)
    assert f"`mailer campaigns retry {SLUG}`" in status.next_steps()[0]
    assert not any(suppressed for suppressed in [_suppressed(db, e) for e in audience])

    # The relay is mended: `campaigns retry` sends them now; nobody got a message before.
    smtp_server.clear_faults()
    assert smtp_server.messages == []
    out = mailer_cli("campaigns", "retry", SLUG, "--in-process", "--yes", env=mailing.relay)
    assert out.exit_code == 0, out.stderr
    assert f"sent {len(audience)}," in out.stdout and "campaign is sent" in out.stdout
    assert Counter(r for m in smtp_server.messages for r in m.rcpt_tos) == Counter(audience)


def _suppressed(db: Database, email: str) -> bool:
    from mailer.audience import suppression

    with db.session() as session:
        return suppression.is_suppressed(session, email)


def test_the_default_backoff_runs_from_minutes_to_hours_for_three_days() -> None:
    backoff = sending.Backoff.from_settings(Settings())
    assert [backoff.wait(n) / timedelta(minutes=1) for n in range(1, 8)] == [5, 10, 20, 40, 80, 120, 120]
    assert backoff.lifetime_text == "3 days"
    last = next(n for n in range(1, 100) if backoff.next_wait(n) is None)
    assert backoff.waited(last) >= timedelta(days=3) > backoff.waited(last - 1)


@pytest.mark.slow
def test_send_says_when_the_next_attempt_is_due_and_a_worker_sends_it_then(
    db: Database,
    settings: Settings,
    shape: Shape,
    env: dict[str, str],
    mailer_cli: MailerCli,
    smtp_server: SmtpTestServer,
    mailing: Mailing,
) -> None:
    """In real time: `send` stops while only deferred deliveries wait, and says until when; a
    running `mailer worker` sends them once they are due, and the campaign ends sent."""
    audience = mailing.enqueue_kent(60)
    smtp_server.tempfail(stage="rcpt", reply=GREYLISTED, times=len(audience))  # once each
    relay = mailing.relay
    out = mailer_cli("campaigns", "send", SLUG, "--in-process", "--yes", env=relay)
    assert out.exit_code == 0, out.stderr
    assert f"deferred {len(audience)}," in out.stdout and "campaign is sending" in out.stdout
    assert re.search(r"the next attempt is due at \d{4}-\d\d-\d\d \d\d:\d\d \(.+\), in 5 minute", out.stdout)
    assert f"`mailer campaigns send {SLUG}`" in out.stdout and "mailer worker" in out.stdout
    assert smtp_server.messages == []

    # A worker on the same database sends them when they are due: in a second, not five minutes.
    quick = dataclasses.replace(settings, heartbeat_seconds=0.5, lease_seconds=5.0)
    with db.session() as session:
        session.execute(update(Delivery).values(next_attempt_at=utcnow() + timedelta(seconds=1)))

    async def main() -> None:
        worker = sending.Worker(
            db, quick, transport=open_transport(smtp_server.url, concurrency=2, timeout=2.0), poll=0.2
        )
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 30
        while sending.campaign_status(db, shape, SLUG).status != "sent" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        worker.stop("test done")
        await task

    asyncio.run(main())
    assert sending.campaign_status(db, shape, SLUG).status == "sent"
    assert Counter(r for m in smtp_server.messages for r in m.rcpt_tos) == Counter(audience)


def test_retry_sends_now_what_a_relay_deferred_and_says_how_many(
    db: Database, shape: Shape, smtp_server: SmtpTestServer, mailing: Mailing, mailer_cli: MailerCli
) -> None:
    audience = mailing.enqueue_kent(40)
    mended = False
    smtp_server.tempfail(stage="rcpt", reply=GREYLISTED, until=lambda: mended)
    first = mailing.send()
    assert (first.sent, first.deferred) == (0, len(audience))  # next attempt in 5 minutes
    status = sending.campaign_status(db, shape, SLUG)
    assert status.waiting and f"`mailer campaigns retry {SLUG}`" in status.next_steps()[0]

    plan = sending.plan_retry(db, mailing.settings, shape, SLUG, in_process=True)
    assert (plan.deferred, plan.failed, plan.unknown, plan.count) == (len(audience), 0, 0, len(audience))
    mended = True
    out = mailer_cli("campaigns", "retry", SLUG, "--in-process", "--yes", env=mailing.relay)
    assert out.exit_code == 0, out.stderr
    assert f"{len(audience)} deferred message(s), made due now" in out.stdout
    assert received(smtp_server) == Counter(audience)  # each once, now, not in 5 minutes
    rows = statuses(db)
    assert {d.status for d in rows.values()} == {"sent"}
    assert {d.attempts for d in rows.values()} == {2}  # the deferred attempt counts
    assert sending.campaign_status(db, shape, SLUG).status == "sent"
    nothing = mailer_cli("campaigns", "retry", SLUG, "--yes", env=mailing.relay)
    assert nothing.exit_code != 0 and "nothing to retry" in nothing.stderr


@pytest.mark.parametrize("backend", ["postgresql"])  # the workers share a campaign on PostgreSQL only
def test_retry_leaves_deferred_deliveries_to_the_workers_on_postgresql(
    db: Database, shape: Shape, smtp_server: SmtpTestServer, mailing: Mailing, mailer_cli: MailerCli
) -> None:
    audience = mailing.enqueue_kent(12)
    smtp_server.tempfail(stage="rcpt", reply=GREYLISTED, times=len(audience))
    assert mailing.send().deferred == len(audience)
    before = utcnow()
    out = mailer_cli("campaigns", "retry", SLUG, "--yes", "--json", env=mailing.relay)
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["changed"] == len(audience)
    rows = statuses(db)
    assert {d.status for d in rows.values()} == {"deferred"}
    assert all(before <= d.next_attempt_at <= utcnow() for d in rows.values())  # due now
    assert sending.campaign_status(db, shape, SLUG).status == "sending"


def test_a_dry_run_says_how_many_deliveries_it_would_add(
    db: Database, shape: Shape, smtp_server: SmtpTestServer, mailing: Mailing, mailer_cli: MailerCli
) -> None:
    mailing.add(30)
    kent = mailing.audience()
    first = mailer_cli("campaigns", "send", SLUG, "--dry-run", check=True).stdout
    assert f"dry run: would add {len(kent)} deliveries; nothing sent, nothing recorded" in first
    limited = json.loads(
        mailer_cli("campaigns", "send", SLUG, "--dry-run", "--limit", "7", "--json", check=True).stdout
    )
    assert (limited["audience"], limited["deliveries_added"]) == (len(kent), 7)
    out = mailer_cli("campaigns", "send", SLUG, "--limit", "7", "--in-process", "--yes", env=mailing.relay)
    assert out.exit_code == 0, out.stderr
    again = json.loads(mailer_cli("campaigns", "send", SLUG, "--dry-run", "--json", check=True).stdout)
    assert (again["audience"], again["deliveries_added"]) == (len(kent), len(kent) - 7)  # not the audience
    assert len(smtp_server.messages) == 7
