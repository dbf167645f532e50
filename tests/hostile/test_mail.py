"""The hostile mail corpus (tests/hostile/mail/) replayed against a real database, on SQLite and
PostgreSQL, with members and a sent campaign.

Each case file starts with ``X-Hostile-Case`` (what it attacks) and ``X-Hostile-Expect`` (what must
happen: ``unverified`` or ``quarantined``, and nothing changed). The test fills its placeholders:
``{{DELIVERY}}`` a real delivery id (what an attacker guesses: ids are sequential), ``{{MEMBER}}``
that delivery's member, ``{{SLUG}}`` the campaign, ``{{N}}`` a number per copy (``X-Hostile-Repeat``
says how many copies), and ``{{PAD n}}`` n bytes of filler.

Forged mail suppresses nobody and counts no bounce; a real bounce of a message the engine sent (its
envelope sender as the test SMTP server recorded it, its Message-ID) suppresses its recipient; a poison
message between two mailed unsubscribes is quarantined while both unsubscribes take effect.
"""

from __future__ import annotations

import json
import mailbox
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.bounces import SLUG, Sent, adapt, dsn_for, enqueue, header_block, snapshot
from support.cli_runner import MailerCli
from support.sending import send
from support.smtp_server import SmtpTestServer

from mailer import tokens
from mailer.audience import suppression
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.inbound import classify, process_message, process_source
from mailer.inbound.sources import PROCESSED_FOLDER, QUARANTINE_FOLDER
from mailer.models import BounceEvent, InboundMessage, Member, Suppression
from mailer.reports import campaign_report
from mailer.settings import Settings

CASES = Path(__file__).resolve().parent / "mail"
LIST_DOMAIN = "lists.example.org"
PAD_RE = re.compile(rb"\{\{PAD (\d+)\}\}")

#: The cases mailer cannot read, so must quarantine (the poisons).
POISON_NAMES = {"unknown-charset.eml", "nested-multiparts.eml", "broken-boundary.eml", "huge-part.eml"}
#: Every case the corpus must hold: a file per case.
NAMES = {
    "forged-dsn-sequential-verp.eml",
    "forged-dsn-wrong-mac.eml",
    "forged-dsn-guessed-message-id.eml",
    "forged-dsn-message-id-wrong-mac.eml",
    "verp-only-in-body.eml",
    "dsn-address-without-verp.eml",
    "arf-original-rcpt-to-only.eml",
    "soft-bounce-series.eml",
    "mailer-daemon-text.eml",
    *POISON_NAMES,
}


@dataclass(frozen=True)
class Case:
    name: str
    attacks: str
    expect: str  # "unverified" or "quarantined"
    repeat: int
    template: bytes

    def render(self, delivery_id: int, member: str, n: int = 1) -> bytes:
        raw = (
            self.template.replace(b"{{DELIVERY}}", str(delivery_id).encode())
            .replace(b"{{MEMBER}}", member.encode())
            .replace(b"{{SLUG}}", SLUG.encode())
            .replace(b"{{N}}", str(n).encode())
        )
        return PAD_RE.sub(lambda m: (b"x" * 76 + b"\n") * (int(m.group(1)) // 77 + 1), raw)


def load_case(path: Path) -> Case:
    raw = path.read_bytes()
    headers = BytesHeaderParser().parsebytes(raw)
    attacks, expect = str(headers.get("X-Hostile-Case", "")), str(headers.get("X-Hostile-Expect", ""))
    assert attacks and expect, f"{path.name} must start with X-Hostile-Case and X-Hostile-Expect headers"
    outcome = re.split(r"[^a-z]", expect, maxsplit=1)[0]
    assert outcome in ("unverified", "quarantined"), f"{path.name}: X-Hostile-Expect starts with {outcome!r}"
    return Case(path.name, attacks, outcome, int(headers.get("X-Hostile-Repeat", "1")), raw)


ALL = [load_case(p) for p in sorted(CASES.glob("*.eml"))]
POISONS = [c for c in ALL if c.expect == "quarantined"]
FORGED = [c for c in ALL if c.expect == "unverified"]


def test_the_corpus_holds_every_case_and_says_what_each_attacks() -> None:
    assert {c.name for c in ALL} == NAMES
    assert {c.name for c in POISONS} == POISON_NAMES


def suppressed_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Suppression)) or 0)


def bounce_figures(db: Database, shape: Shape) -> tuple[int, int, int, int]:
    with db.session() as session:
        total = campaign_report(session, shape, SLUG).total
    return total.hard_bounces, total.soft_bounces, total.policy, total.complaints


def test_every_case_changes_nothing_and_is_recorded(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path
) -> None:
    sent = enqueue(db, settings, shape, workspace, tmp_path)
    members = sorted(sent.deliveries)
    consent_before = snapshot(db)["consent"]
    for i, case in enumerate(ALL):
        member = members[i]
        for n in range(1, case.repeat + 1):
            outcome = process_message(db, settings, case.render(sent.deliveries[member], member, n))
            assert outcome.kind == case.expect, (case.name, outcome)
            assert not outcome.suppressed, case.name
            assert outcome.reason and outcome.reason in outcome.action, (case.name, outcome.action)
        with db.session() as session:
            rows = session.execute(
                select(InboundMessage.kind, InboundMessage.detail).order_by(InboundMessage.id.desc())
            ).all()[: case.repeat]
        assert [kind for kind, _detail in rows] == [case.expect] * case.repeat, case.name
        assert all(detail for _kind, detail in rows), case.name  # with the reason
    assert suppressed_count(db) == 0
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(BounceEvent)) == 0
    assert snapshot(db)["consent"] == consent_before
    assert bounce_figures(db, shape) == (0, 0, 0, 0)


# -- real bounces of what the engine sent ---------------------------------------------------------------


def arf_for(envelope_sender: str, returned: bytes, recipient: str) -> bytes:
    head = (
        "From: Feedback Loop <fbl@feedback.example.net>\n"
        "To: fbl@lists.example.org\n"
        "Subject: abuse report\n"
        f"Message-ID: <arf-{abs(hash(returned)) % 10**9}@feedback.example.net>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="real-arf"\n\n'
        "--real-arf\nContent-Type: text/plain\n\nAn abuse report.\n\n"
        "--real-arf\nContent-Type: message/feedback-report\n\n"
        f"Feedback-Type: abuse\nVersion: 1\nOriginal-Mail-From: <{envelope_sender}>\n"
        f"Original-Rcpt-To: <{recipient}>\n\n"
        "--real-arf\nContent-Type: text/rfc822-headers\n\n"
        f"Return-Path: <{envelope_sender}>\n"
    )
    return head.encode() + header_block(returned) + b"\n\n--real-arf--\n"


def is_suppressed(db: Database, address: str) -> bool:
    with db.session() as session:
        return suppression.is_suppressed(session, address)


def test_forged_bounces_suppress_no_one_and_real_ones_do(
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
) -> None:
    sent = enqueue(db, settings, shape, workspace, tmp_path)
    summary = send(db, settings, smtp_server.url)
    assert summary.sent == len(sent.deliveries)
    received = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    members = sorted(sent.deliveries)

    # Every forged case, aimed at the very deliveries whose real bounces come next: nothing happens.
    for case in FORGED:
        for i in range(4):
            member = members[i]
            for n in range(1, case.repeat + 1):
                outcome = process_message(
                    db, settings, case.render(sent.deliveries[member], member, 100 * i + n)
                )
                assert outcome.kind == "unverified" and not outcome.suppressed, (case.name, outcome)
    assert suppressed_count(db) == 0 and bounce_figures(db, shape) == (0, 0, 0, 0)

    # The real thing: the envelope sender the relay saw (a signed tag) and the message's own headers.
    hard, by_message_id, complained, soft = members[:4]
    real = received[hard]
    assert re.fullmatch(rf"bounces\+{sent.deliveries[hard]}-[a-z2-7]{{16}}@{LIST_DOMAIN}", real.mail_from)
    message_id = str(BytesHeaderParser().parsebytes(real.data)["Message-ID"])
    assert (
        message_id == f"<d{real.mail_from.removeprefix('bounces+').partition('@')[0]}.{SLUG}@{LIST_DOMAIN}>"
    )
    outcome = process_message(db, settings, dsn_for(real.mail_from, real.data, hard))
    assert outcome.kind == "hard-bounce" and outcome.suppressed, outcome
    assert outcome.delivery_id == sent.deliveries[hard] and outcome.campaign == SLUG
    assert is_suppressed(db, hard)

    # A relay that lower-cases the local part, or upper-cases it: the same tag.
    again = dsn_for(real.mail_from.upper(), real.data, hard, number=2)
    assert process_message(db, settings, again).kind == "hard-bounce"

    # No VERP at all (sent to the bare bounce address), but the returned message's real Message-ID
    # (its tag signed), and the DSN names the address that delivery went to: that proves it too.
    other = received[by_message_id]
    bare = dsn_for(f"bounces@{LIST_DOMAIN}", other.data, by_message_id)
    bare = bare.replace(f"Return-Path: <bounces@{LIST_DOMAIN}>\n".encode(), b"")
    outcome = process_message(db, settings, bare)
    assert outcome.kind == "hard-bounce" and outcome.suppressed and is_suppressed(db, by_message_id)

    # A complaint about a real message, through a feedback loop.
    arf = received[complained]
    outcome = process_message(db, settings, arf_for(arf.mail_from, arf.data, complained))
    assert outcome.kind == "complaint" and outcome.suppressed and is_suppressed(db, complained)

    # Real soft bounces of one delivery, reported three times: one delivery, so one soft bounce.
    mailbox_full = received[soft]
    for n in range(3):
        raw = dsn_for(mailbox_full.mail_from, mailbox_full.data, soft, status="4.2.2", number=10 + n)
        assert process_message(db, settings, raw).action == "soft bounce 1 of 3"
    assert not is_suppressed(db, soft)

    assert suppressed_count(db) == 3
    assert bounce_figures(db, shape) == (2, 1, 0, 1)
    with db.session() as session:
        counted = set(session.scalars(select(BounceEvent.delivery_id)))
    assert counted == {sent.deliveries[m] for m in (hard, by_message_id, complained, soft)}


# -- poison between two mailed unsubscribes ---------------------------------------------------------------


def unsubscribe_mail(sent: Sent, settings: Settings, email: str) -> bytes:
    token = tokens.sign(
        "unsubscribe", sent.member_ids[email], keys=settings.secrets, campaign=sent.campaign_id
    )
    return adapt(
        "mailto-unsubscribe.eml",
        0,
        email,
        keys=settings.secrets,
        token=token,
        message_id=f"unsub-{sent.member_ids[email]}@mail.example.org",
    )


def unsubscribed(db: Database, email: str) -> bool:
    with db.session() as session:
        digest = session.scalar(select(Member.address_hash).where(Member.email == email))
        row = suppression.suppression_of(session, digest) if digest else None
    return row is not None and (row.reason, row.source) == ("unsubscribe", "mailto")


@pytest.mark.parametrize("poison", POISONS, ids=[c.name for c in POISONS])
def test_a_poison_between_two_mailed_unsubscribes_is_quarantined(
    poison: Case,
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    mailer_cli: MailerCli,
) -> None:
    sent = enqueue(db, settings, shape, workspace, tmp_path)
    first, victim, last = sorted(sent.deliveries)[:3]
    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    files = {
        "1763400001.M1P1.test": unsubscribe_mail(sent, settings, first),
        "1763400002.M2P1.test": poison.render(sent.deliveries[victim], victim),
        "1763400003.M3P1.test": unsubscribe_mail(sent, settings, last),
    }
    for name, raw in files.items():
        (maildir / "new" / name).write_bytes(raw)

    result = mailer_cli("inbound", "process", str(maildir), "--json")
    assert result.exit_code == 4, result.output  # quarantined one: documented in --help
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert (report["messages"], report["quarantined"], report["suppressed"]) == (3, 1, 2)
    assert report["by_kind"] == {"unsubscribe": 2, "quarantined": 1}
    detail = {d["key"]: d for d in report["messages_detail"]}
    assert detail["new/1763400002.M2P1.test"]["action"].startswith("set aside unread: ")

    assert unsubscribed(db, first) and unsubscribed(db, last)
    assert not is_suppressed(db, victim)
    assert [p.name.partition(":")[0] for p in (maildir / QUARANTINE_FOLDER / "cur").iterdir()] == [
        "1763400002.M2P1.test"
    ]
    assert len(list((maildir / PROCESSED_FOLDER / "cur").iterdir())) == 2
    assert not list((maildir / "new").iterdir()) and not list((maildir / "cur").iterdir())
    with db.session() as session:
        reason = session.scalars(
            select(InboundMessage.detail).where(InboundMessage.kind == "quarantined")
        ).one()
    assert reason and reason in detail["new/1763400002.M2P1.test"]["action"]

    # Again: nothing to do. The same three delivered once more: all seen before, nothing changes.
    before = snapshot(db)
    again = mailer_cli("inbound", "process", str(maildir), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["messages"] == 0
    for name, raw in files.items():
        (maildir / "new" / f"{name}.again").write_bytes(raw)
    third = process_source(db, settings, maildir)
    assert (third.messages, third.duplicates, third.quarantined, third.suppressed) == (3, 3, 0, 0)
    assert snapshot(db) == before
    assert len(list((maildir / QUARANTINE_FOLDER / "cur").iterdir())) == 2  # set aside with the first

    # The human output says so too, and classify names the reason without a traceback.
    path = tmp_path / poison.name
    path.write_bytes(files["1763400002.M2P1.test"])
    shown = mailer_cli("inbound", "classify", str(path))
    assert shown.exit_code == 0 and "quarantined" in shown.stdout and "Traceback" not in shown.output


@pytest.mark.slow
def test_an_mbox_records_its_poisons_and_goes_on(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path
) -> None:
    sent = enqueue(db, settings, shape, workspace, tmp_path)
    emails = sorted(sent.deliveries)
    path = tmp_path / "inbound.mbox"
    box = mailbox.mbox(str(path))
    box.add(unsubscribe_mail(sent, settings, emails[0]))
    for i, poison in enumerate(POISONS, start=1):
        box.add(poison.render(sent.deliveries[emails[i]], emails[i]))
    box.add(unsubscribe_mail(sent, settings, emails[-1]))
    box.close()

    first = process_source(db, settings, path)
    assert (first.messages, first.quarantined, first.suppressed) == (len(POISONS) + 2, len(POISONS), 2)
    assert unsubscribed(db, emails[0]) and unsubscribed(db, emails[-1])
    with db.session() as session:
        assert session.scalar(
            select(func.count()).select_from(InboundMessage).where(InboundMessage.kind == "quarantined")
        ) == len(POISONS)
    before = snapshot(db)
    second = process_source(db, settings, path)
    assert second.duplicates == len(POISONS) + 2 and second.quarantined == 0 and snapshot(db) == before


def test_classify_reads_every_case_without_a_traceback(tmp_path: Path, mailer_cli: MailerCli) -> None:
    for case in ALL:
        path = tmp_path / case.name
        path.write_bytes(case.render(42, "jo@example.net"))
        result = mailer_cli("inbound", "classify", str(path), "--json")
        assert result.exit_code == 0 and "Traceback" not in result.output, (case.name, result.output)
        (shown,) = json.loads(result.stdout)
        if case.expect == "quarantined":
            assert shown["kind"] == "quarantined" and shown["reason"], case.name
        else:
            assert shown["proof"] == "" and shown["delivery_id"] is None and shown["unproven"], case.name
        # The library says the same, with no key at all.
        assert classify(path.read_bytes(), LIST_DOMAIN).kind == shown["kind"]
