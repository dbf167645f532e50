"""Hostile replies asking to leave (tests/hostile/mail/replies/), on SQLite and PostgreSQL: a forged
From never unsubscribes anyone by itself.

The corpus's cases (each file says what it attacks and what must happen) and the cases that need a
real signature made now (dkimpy, keys published on the test DNS server): a signature by another
domain, a signature over a different From, a second From above a valid signature, a replay of a
signed mail under a new Message-ID, an oversized mail, a key that is not published. Each one is
kept for a person (``pending``) or not read as a request (``ignored``), and the member stays
subscribed; the controls (a genuine aligned signature, our own MTA's verdict on top) do act.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.dns_server import DnsTestServer
from support.hashes import address_hash
from support.replies import Signer, reply

from mailer.audience import suppression
from mailer.db import Database
from mailer.inbound import process_message
from mailer.inbound.authentic import MAX_BYTES
from mailer.models import Member, ReplyRequest
from mailer.settings import Settings

CASES = Path(__file__).resolve().parent / "mail" / "replies"
MEMBER = "jo@members.example.net"
OURS = Signer("members.example.net")
ATTACKER = Signer("attacker.example.com")
OUR_MTA = "mx.lists.example.org"


@dataclass(frozen=True)
class Case:
    name: str
    attacks: str
    expect: str  # pending or ignored
    raw: bytes


def load_case(path: Path) -> Case:
    raw = path.read_bytes().replace(b"{{MEMBER}}", MEMBER.encode())
    headers = BytesHeaderParser().parsebytes(raw)
    attacks, expect = str(headers.get("X-Hostile-Case", "")), str(headers.get("X-Hostile-Expect", ""))
    assert attacks and expect, f"{path.name} must start with X-Hostile-Case and X-Hostile-Expect"
    outcome = re.split(r"[^a-z]", expect, maxsplit=1)[0]
    assert outcome in ("pending", "ignored"), f"{path.name}: X-Hostile-Expect starts with {outcome!r}"
    return Case(path.name, attacks, outcome, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


ALL = [load_case(p) for p in sorted(CASES.glob("*.eml"))]


@pytest.fixture
def ready(db: Database, settings: Settings, dns_server: DnsTestServer) -> Settings:
    """The member, the keys published, our MTA's authserv-id trusted: the settings to process with."""
    OURS.publish(dns_server)
    ATTACKER.publish(dns_server)
    with db.session() as session:
        session.add(Member(email=MEMBER, address_hash=address_hash(MEMBER), name="Jo"))
    return replace(settings, dns_resolver=dns_server.address, trusted_authserv_id=OUR_MTA)


def _subscribed(db: Database) -> bool:
    with db.session() as session:
        return not suppression.is_hash_suppressed(session, address_hash(MEMBER))


def _pending(db: Database) -> int:
    with db.session() as session:
        where = ReplyRequest.state == "pending"
        return int(session.scalar(select(func.count()).select_from(ReplyRequest).where(where)) or 0)


def test_the_corpus_says_what_each_case_attacks() -> None:
    assert len(ALL) >= 8
    assert {c.expect for c in ALL} == {"pending", "ignored"}


def test_no_case_of_the_corpus_unsubscribes_anyone(db: Database, ready: Settings) -> None:
    for i, case in enumerate(ALL, start=1):
        outcome = process_message(db, ready, case.raw)
        if case.expect == "pending":
            assert outcome.kind == "unsubscribe-request" and outcome.pending, (case.name, outcome)
            assert _pending(db) == sum(c.expect == "pending" for c in ALL[:i]), case.name
        else:
            assert outcome.kind == "unknown", (case.name, outcome)
        assert not outcome.suppressed and _subscribed(db), case.name


def _signed_cases() -> dict[str, bytes]:
    def genuine() -> bytes:
        return reply(MEMBER, "Please unsubscribe me")

    other_from = reply("someone-else@members.example.net", "Please unsubscribe me")
    attackers_own = ATTACKER.sign(reply("me@attacker.example.com", "unsubscribe"))
    return {
        # a valid signature, but by the attacker's domain: not aligned with the member's
        "another domain's signature": ATTACKER.sign(genuine()),
        # the member's domain signed a mail from someone else there; From then changed to the member
        "a signature over a different From": OURS.sign(other_from).replace(
            b"someone-else@members.example.net", MEMBER.encode()
        ),
        # the attacker's own valid, aligned mail with the member's From added on top
        "a second From above a valid signature": f"From: {MEMBER}\r\n".encode() + attackers_own,
        # a genuine signature whose key nobody published
        "an unpublished key": Signer("members.example.net", "nokey").sign(genuine()),
        # a genuine aligned signature on a mail too large to be a request
        "an oversized mail": OURS.sign(
            reply(MEMBER, "Please unsubscribe me\n\n" + ("x" * 76 + "\n") * (MAX_BYTES // 77 + 1))
        ),
    }


def test_signed_forgeries_never_act(db: Database, ready: Settings) -> None:
    for what, raw in _signed_cases().items():
        outcome = process_message(db, ready, raw)
        assert outcome.kind == "unsubscribe-request" and outcome.pending, (what, outcome)
        assert not outcome.suppressed and _subscribed(db), what
    with db.session() as session:
        whys = [r.why for r in session.scalars(select(ReplyRequest).order_by(ReplyRequest.id))]
    assert "not aligned with members.example.net" in whys[0]
    assert "does not verify" in whys[1]
    assert "no single From address" in whys[2]
    assert "does not verify" in whys[3]
    assert "MiB, not verified" in whys[4]


def test_a_replay_acts_once(db: Database, ready: Settings) -> None:
    unsigned_id = [b"from", b"to", b"subject", b"date"]  # Message-ID left out of the signature
    raw = OURS.sign(
        reply(MEMBER, "unsubscribe me", message_id="<once@members.example.net>"), headers=unsigned_id
    )
    first = process_message(db, ready, raw)
    assert first.suppressed and not _subscribed(db)
    assert process_message(db, ready, raw).duplicate  # the same Message-ID: seen before
    replayed = raw.replace(b"<once@members.example.net>", b"<twice@members.example.net>")
    again = process_message(db, ready, replayed)
    assert again.pending and "a replay acts only by a person" in again.action


def test_our_mtas_verdict_on_top_is_trusted_and_no_one_elses(db: Database, ready: Settings) -> None:
    ours = f"Authentication-Results: {OUR_MTA}; dkim=pass header.d=members.example.net"
    outcome = process_message(db, ready, reply(MEMBER, "unsubscribe", headers=ours))
    assert outcome.suppressed, outcome
    assert process_message(
        db, replace(ready, trusted_authserv_id=""), reply(MEMBER, "unsubscribe", headers=ours)
    ).pending
