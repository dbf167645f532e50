"""The delivery engine against a real aiosmtpd server, on SQLite and PostgreSQL.

Every eligible member receives exactly their variant, once; suppressed members and members outside
the audience get nothing; faults are recorded, deferred and retried (tests/test_retries.py has the
relay's hesitations in detail); a killed send resumes without losing anyone and with duplicates
within the documented bound.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from support.cli_runner import MailerCli
from support.sending import (
    SLUG,
    Clock,
    Mailing,
    check_unsubscribe_token,
    parse,
    sent_to,
)
from support.smtp_server import SmtpTestServer

from mailer import sending as delivery
from mailer.audience import suppression
from mailer.audience.shape import Shape
from mailer.compose import compose
from mailer.db import Database
from mailer.errors import DeliveryError
from mailer.issue import Newsletter, load_campaign
from mailer.models import Campaign, Delivery, Member
from mailer.models import Variant as VariantRow
from mailer.settings import Settings
from mailer.slots import fill_slots, greeting_for
from mailer.tokens import link


def check_message(data: bytes, msg: EmailMessage) -> None:
    """The headers every mailing carries, and the limits every message keeps."""
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert data.isascii()
    for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
        assert msg[header], header
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(
        r"<https://?[^>]+/u/[a-z0-9]+>, <mailto:unsubscribe\+[a-z0-9]+@[^>]+>", msg["List-Unsubscribe"]
    ) or ("/u/" in msg["List-Unsubscribe"] and "mailto:unsubscribe+" in msg["List-Unsubscribe"])
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]


@pytest.mark.slow
def test_every_eligible_member_gets_their_variant_once(
    db: Database,
    settings: Settings,
    shape: Shape,
    smtp_server: SmtpTestServer,
    mailing: Mailing,
) -> None:
    mailing.add(600)
    with db.session() as session:
        kent = sorted(mailing.audience())
        for address in kent[:5]:
            suppression.suppress(session, address, reason="unsubscribe", source="link")
    expected = mailing.audience()
    assert len(expected) > 50

    enqueued = mailing.enqueue()
    assert enqueued.created and enqueued.deliveries == len(expected)
    summary = mailing.send(batch_size=37)
    assert summary.sent == len(expected) and summary.failed == 0

    received = smtp_server.messages
    recipients = Counter(r for m in received for r in m.rcpt_tos)
    assert set(recipients) == expected  # nobody outside the audience, nobody suppressed
    assert max(recipients.values()) == 1  # nobody twice

    loaded = load_campaign(settings.workspace, SLUG, shape)
    with db.session() as session:
        variants = {v.id: v for v in session.scalars(select(VariantRow))}
        for got in received:
            d, member = sent_to(session, got)
            # The variant is the one the rule in docs/architecture.md (Variants) gives this member...
            region = member.region.slug if member.region else None
            want = compose(loaded.issue, shape, region, frozenset(i.slug for i in member.interests))
            row = variants[d.variant_id]
            assert row.item_ids.split() == list(want.item_ids)
            # ...and the text part is that variant's, with this member's slots filled.
            msg = parse(got.data)
            check_message(got.data, msg)
            text = msg.get_body(("plain",))
            assert text is not None
            body = text.get_content().replace("\r\n", "\n")
            unsub = re.search(r"/u/([a-z0-9]+)", msg["List-Unsubscribe"])
            prefs = re.search(r"/p/([a-z0-9]+)", body)
            assert unsub and prefs
            values = {
                "greeting": greeting_for(
                    member.first_name, settings.greeting, settings.greeting_without_name
                ),
                "name": member.name or "friend",
                "email": member.email,
                "unsubscribe_url": link(settings.base_url, "unsubscribe", unsub.group(1)),
                "preferences_url": link(settings.base_url, "preferences", prefs.group(1)),
            }
            rsvp = re.search(r"/rsvp/[^/\s]+/([a-z0-9]+)", body)
            if rsvp:  # a variant with events: each event's RSVP link carries the member's token
                values["rsvp_token"] = rsvp.group(1)
            assert body == fill_slots(row.text, values, html=False)
            assert member.email in msg["To"]
    status = delivery.campaign_status(db, shape, SLUG)
    assert status.status == "sent" and status.counts == {"sent": len(expected)}
    assert sum(sum(c.values()) for _, c in status.by_region) == len(expected)


@pytest.mark.slow
def test_faults_are_retried_or_recorded_and_nothing_is_lost(
    db: Database, settings: Settings, shape: Shape, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    """5xx fail at once; 4xx defer and go out when due; a connection lost before the message went
    out is retried at once; a message sent whole and never answered is unknown and not resent."""
    mailing.add(400)
    audience = sorted(mailing.audience())
    unknown, rejected_policy, flaky = audience[0], audience[1], audience[2]
    smtp_server.reject(re.escape(unknown))  # 550 5.1.1: hard bounce, suppressed
    smtp_server.reject(
        re.escape(rejected_policy), reply="554 5.7.1 Rejected by policy"
    )  # failed, not suppressed
    smtp_server.tempfail(re.escape(flaky), times=1)  # 451 once, then accepted
    smtp_server.tempfail(nth=5, times=1)
    smtp_server.drop(nth=9, times=1, when="at-data")  # the connection drops before the message
    smtp_server.delay(2.0, nth=14, times=1)  # slower than the 1 s timeout: no reply to the dot

    mailing.enqueue()
    clock = Clock()
    first = mailing.send(batch_size=50, now=clock, timeout=1.0)
    assert first.failed == 2 and first.hard_bounces == 1
    assert first.deferred == 2 and first.unknown == 1 and first.retried >= 1
    assert delivery.campaign_status(db, shape, SLUG).status == "sending"  # two deferred left
    clock.wait(minutes=settings.retry_first_minutes)
    again = mailing.send(now=clock)
    assert (again.sent, again.failed, again.deferred, again.unknown) == (2, 0, 0, 0)

    received = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    with db.session() as session:
        rows = {
            m.email: d
            for d, m in session.execute(
                select(Delivery, Member).join(Member, Member.id == Delivery.member_id)
            )
        }
        assert rows[unknown].status == "failed" and rows[unknown].last_code == 550
        assert "5.1.1" in rows[unknown].last_error
        assert rows[rejected_policy].status == "failed" and rows[rejected_policy].last_code == 554
        assert rows[flaky].status == "sent" and rows[flaky].attempts == 2
        assert suppression.is_suppressed(session, unknown)
        assert not suppression.is_suppressed(session, rejected_policy)
        others = Counter(d.status for e, d in rows.items() if e not in (unknown, rejected_policy))
        assert others == Counter({"sent": len(audience) - 3, "unknown": 1})
        slow, row = next((e, d) for e, d in rows.items() if d.status == "unknown")
        assert row.last_code is None and "did not reply" in row.last_error
    # The slow one was never answered (the server gave up on it with the connection) and was not
    # sent again; everyone else got their message once.
    assert set(received) == set(audience) - {unknown, rejected_policy, slow}
    assert max(received.values()) == 1
    assert delivery.campaign_status(db, shape, SLUG).status == "sent"


@pytest.mark.slow
def test_too_many_errors_in_a_row_pause_the_campaign(
    db: Database, settings: Settings, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    """A relay that fails every message pauses the campaign; nobody is lost or failed for it.

    (A relay that answers 4xx to everyone does not: it is asking to wait, and every delivery is
    deferred; see tests/test_retries.py.)"""
    mailing.add(600)
    smtp_server.drop(times=None, when="at-data")  # every connection drops, every time
    mailing.enqueue()
    clock = Clock()
    summary = mailing.send(max_attempts=1, now=clock)
    assert summary.stopped_because.startswith("paused after")
    with db.session() as session:
        campaign = session.scalars(select(Campaign)).one()
        assert campaign.status == "paused" and "closed the connection" in campaign.status_reason
    counts = delivery.status_counts(db, delivery.Engine(db, settings, SLUG).campaign_id)
    assert "failed" not in counts and counts["deferred"] >= delivery.engine.CONSECUTIVE_ERRORS_TO_PAUSE
    # Mending the relay and sending again once they are due delivers everyone; nobody failed.
    smtp_server.clear_faults()
    clock.wait(minutes=settings.retry_first_minutes)
    again = mailing.send(now=clock)
    counts = delivery.status_counts(db, delivery.Engine(db, settings, SLUG).campaign_id)
    assert counts == {"sent": again.sent}
    assert len(smtp_server.messages) == again.sent


@pytest.mark.slow
def test_unsubscribe_during_a_send_stops_that_members_message(
    db: Database, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    mailing.add(600)
    audience = sorted(mailing.audience())
    mailing.enqueue()
    with db.session() as session:
        order = [
            m.email
            for m in session.scalars(
                select(Member).join(Delivery, Delivery.member_id == Member.id).order_by(Delivery.id)
            )
        ]
    late = order[-1]
    smtp_server.delay(0.01)  # slow enough that the send is still running when they leave
    done = threading.Event()
    result: list[delivery.Summary] = []

    def run() -> None:
        result.append(mailing.send(batch_size=10))
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while len(smtp_server.messages) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    with db.session() as session:  # the library call the web app makes on a one-click POST
        suppression.suppress(session, late, reason="unsubscribe", source="one-click", campaign=SLUG)
    thread.join(60)
    assert done.is_set()
    received = {r for m in smtp_server.messages for r in m.rcpt_tos}
    assert late not in received
    assert received == set(audience) - {late}
    assert result[0].suppressed == 0  # counted from the database below
    with db.session() as session:
        row = session.execute(
            select(Delivery.status).join(Member, Member.id == Delivery.member_id).where(Member.email == late)
        ).scalar_one()
        assert row == "suppressed"


def test_limit_dry_run_and_status(
    db: Database, shape: Shape, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    mailing.add(300)
    expected = mailing.audience()
    mailing.enqueue()
    first = mailing.send(limit=7, batch_size=5)
    assert first.sent == 7 and len(smtp_server.messages) == 7
    status = delivery.campaign_status(db, shape, SLUG)
    assert status.status == "paused" and status.counts["pending"] == len(expected) - 7
    rest = mailing.send()
    assert rest.sent == len(expected) - 7
    assert len({r for m in smtp_server.messages for r in m.rcpt_tos}) == len(expected)
    assert delivery.campaign_status(db, shape, SLUG).status == "sent"
    with pytest.raises(DeliveryError, match="sent already"):
        delivery.check_sendable("sent", SLUG)


def start_send(env: dict[str, str], **pipes: int) -> subprocess.Popen[str]:
    """`mailer campaigns send SLUG --in-process --yes` as a child process, to be stopped by the test."""
    return subprocess.Popen(
        [sys.executable, "-m", "mailer", "campaigns", "send", SLUG, "--in-process", "--yes"],
        env=env,
        stdin=subprocess.DEVNULL,
        text=True,
        **pipes,  # type: ignore[call-overload]
    )


def test_cli_test_send_and_dry_run_change_nothing(
    db: Database, mailer_cli: MailerCli, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    mailing.add(200)
    member = sorted(mailing.audience())[0]
    env = mailing.relay
    out = mailer_cli("campaigns", "send", SLUG, "--test", member, "--test", "editor@example.org", env=env)
    assert out.exit_code == 0, out.stderr
    got = smtp_server.messages
    assert sorted(r for m in got for r in m.rcpt_tos) == sorted([member, "editor@example.org"])
    for m in got:
        msg = parse(m.data)
        check_message(m.data, msg)
        assert msg["Subject"].startswith("[TEST] ")
    dry = mailer_cli("campaigns", "send", SLUG, "--dry-run", "--json", env=env)
    assert dry.exit_code == 0, dry.stderr
    assert '"dry_run": true' in dry.stdout
    with db.session() as session:
        assert session.scalars(select(Campaign)).first() is None
        assert session.scalars(select(Delivery)).first() is None
    refused = mailer_cli("campaigns", "send", SLUG, env=env)  # no terminal, no --yes
    assert refused.exit_code != 0 and "--yes" in refused.stderr
    assert len(smtp_server.messages) == 2


def filling_processes(workspace: Path) -> list[int]:
    """The pids of the helper processes (``python -m mailer.message.filling``) of this workspace's sends."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"mailer.message.filling" in cmdline and str(workspace).encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("helpers", [0, 2], ids=["filled-here", "filled-by-helpers"])
def test_a_killed_send_resumes_with_bounded_duplicates(
    db: Database,
    workspace: Path,
    env: dict[str, str],
    mailer_cli: MailerCli,
    smtp_server: SmtpTestServer,
    helpers: int,
    mailing: Mailing,
) -> None:
    """SIGKILL mid-send, then `send` again: everyone gets the newsletter, duplicates within the bound,
    whether the sending process fills the messages or helper processes do (they end with it).

    The size is what the bound needs: the kill comes after 600 messages (several flushes of
    ``FLUSH_RESULTS`` recorded, one pending) with 900 still to send, so the send is surely running."""
    mailing.add(1500, audience="all")
    toml = workspace / "mailer.toml"
    toml.write_text(toml.read_text().replace("fill_processes = -1", f"fill_processes = {helpers}"))
    with db.session() as session:
        everyone = set(session.scalars(select(Member.email)))
    env = dict(env, MAILER_RELAY=smtp_server.url)
    smtp_server.delay(0.002)
    proc = start_send(env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(smtp_server.messages) < 600 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, "the send finished before it could be killed"
    assert len(filling_processes(workspace)) == helpers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while filling_processes(workspace) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not filling_processes(workspace), "the helpers outlived the killed send"
    before = len(smtp_server.messages)
    assert 0 < before < len(everyone)

    smtp_server.clear_faults()
    again = mailer_cli("campaigns", "send", SLUG, "--in-process", "--yes", "--json", env=env)
    assert again.exit_code == 0, again.stderr
    received = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert set(received) == everyone  # nobody lost
    duplicates = sum(n - 1 for n in received.values())
    bound = delivery.FLUSH_RESULTS + 4 * 8  # results not yet recorded + the transport's window
    assert duplicates <= bound, f"{duplicates} duplicates, bound {bound}"
    with db.session() as session:
        statuses = Counter(session.scalars(select(Delivery.status)))
    assert statuses == Counter({"sent": len(everyone)})


@pytest.mark.slow
def test_sigterm_finishes_in_flight_and_stops(
    db: Database, env: dict[str, str], smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    mailing.add(800, audience="all")
    env = dict(env, MAILER_RELAY=smtp_server.url)
    smtp_server.delay(0.003)
    proc = start_send(env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(smtp_server.messages) < 200 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert "stopped by SIGTERM" in out, (out, err)
    received = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    with db.session() as session:
        sent = set(
            session.scalars(
                select(Member.email)
                .join(Delivery, Delivery.member_id == Member.id)
                .where(Delivery.status == "sent")
            )
        )
        assert session.scalars(select(Delivery).where(Delivery.status == "sending")).first() is None
    # Every message the server took was recorded as sent before the process stopped.
    assert sent == set(received)
    assert max(received.values()) == 1


def test_subject_access_export_lists_mailings_and_forget_unlinks_them(db: Database, mailing: Mailing) -> None:
    from mailer.audience import members

    mailing.add(150)
    someone = sorted(mailing.audience())[0]
    mailing.enqueue()
    mailing.send()
    with db.session() as session:
        mailings = members.export(session, someone)["mailings"]
    assert [(m["campaign"], m["status"]) for m in mailings] == [(SLUG, "sent")]
    with db.session() as session:
        member_id = session.scalar(select(Member.id).where(Member.email == someone))
        members.forget(session, someone)
    with db.session() as session:
        assert session.scalar(select(Delivery).where(Delivery.member_id == member_id)) is None
        assert members.export(session, someone)["mailings"] == []
        assert suppression.is_suppressed(session, someone)


@pytest.mark.slow
def test_dkim_from_settings_signs_every_message_and_the_preheader_shows_once(
    settings: Settings, shape: Shape, workspace: Path, smtp_server: SmtpTestServer, mailing: Mailing
) -> None:
    import base64
    import dataclasses

    import dkim

    key = workspace / ".mailer-dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    key.chmod(0o600)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"mail2025._domainkey.kent.example.org." else None

    signing = dataclasses.replace(settings, dkim_selector="mail2025", dkim_domain="kent.example.org")
    mailing.add(120)
    loaded = load_campaign(workspace, SLUG, shape)
    assert isinstance(loaded.issue, Newsletter) and loaded.issue.preheader
    mailing.enqueue(signing)
    mailing.send(signing)
    assert smtp_server.messages
    for got in smtp_server.messages:
        assert dkim.verify(got.data, dnsfunc=dns)
        html = parse(got.data).get_body(("html",))
        assert html is not None
        assert html.get_content().count(loaded.issue.preheader) == 1


@pytest.mark.slow
@pytest.mark.parametrize("helpers", [0, 2], ids=["filled-here", "filled-by-helpers"])
def test_signed_messages_verify_whether_filled_here_or_by_helper_processes(
    db: Database,
    settings: Settings,
    workspace: Path,
    smtp_server: SmtpTestServer,
    helpers: int,
    mailing: Mailing,
) -> None:
    """With the keys `mailer init` makes (RSA-2048 and Ed25519), both signatures of every message
    verify (dkimpy, a stub DNS), whether the sending process fills and signs or helper processes
    do; each message's links and VERP tag are its member's and its delivery's, and verify. 120
    members in claims of 40: three batches of rows for the two helpers to share."""
    from support.signatures import dns_for, verified

    from mailer.message import dkim_keys
    from mailer.workspace import write_dkim_keys

    write_dkim_keys(workspace)
    keys = dkim_keys(settings)
    assert sorted(k.algorithm for k in keys) == ["ed25519-sha256", "rsa-sha256"]
    mailing.add(120, audience="all")
    enqueued = mailing.enqueue()
    summary = mailing.send(fill_processes=helpers, batch_size=40)
    assert summary.sent == enqueued.deliveries == 120 and summary.failed == 0
    dnsfunc = dns_for(*keys)
    received = smtp_server.messages
    assert Counter(r for m in received for r in m.rcpt_tos).most_common(1)[0][1] == 1
    with db.session() as session:
        for got in received:
            assert verified(got.data, dnsfunc) == [True, True]
            d, member = sent_to(session, got, settings)
            msg = parse(got.data)
            check_message(got.data, msg)
            check_unsubscribe_token(msg, settings, d, member)
