"""Bounces aimed at a real send: the fixture corpus (tests/fixtures/bounces/, see its README) and what
each fixture must be classified as (``EXPECTED``); a campaign enqueued for Kent's members (``Sent``);
``adapt``, which rewrites a fixture to a real delivery, its VERP tag under the test's key, and its
member; and the DSN a receiving MTA sends for a message our relay received (``dsn_for``)."""

from __future__ import annotations

import mailbox
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from mailer import sending as delivery
from mailer import tokens
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.models import BounceEvent, ConsentEvent, Delivery, InboundMessage, Member, Suppression
from mailer.settings import Settings
from support.sending import add_campaign, add_members

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"
SLUG = "2025-11-kent-network"
LIST_DOMAIN = "lists.example.org"
#: The key the corpus's VERP tags are signed with (see its README).
FIXTURE_KEY = "bounce-fixtures-key: not a secret, only for tests/fixtures/bounces"


@dataclass(frozen=True)
class Expect:
    kind: str
    status: str
    delivery_id: int | None  # the VERP id written in the fixture
    member: str  # the member address written in the fixture (rewritten by ``adapt``)
    reported: str = ""  # the address the report itself names, when it names one
    suppressed: bool = False  # does processing it suppress the member?


EXPECTED: dict[str, Expect] = {
    "postfix-user-unknown.eml": Expect(
        "hard-bounce", "5.1.1", 1001, "alice@example.net", "alice@example.net", suppressed=True
    ),
    "exim-mailbox-full.eml": Expect("soft-bounce", "5.2.2", 1002, "bob@example.net", "bob@example.net"),
    # A forwarded address: the report names an address the list never had; VERP finds the member.
    "exchange-recipient-not-found.eml": Expect(
        "hard-bounce", "5.1.10", 1003, "carol@example.com", "c.jones@corp.example.com", suppressed=True
    ),
    "gmail-dmarc-policy.eml": Expect("policy", "5.7.26", 1004, "dan@example.com", "dan@example.com"),
    "yahoo-no-account.eml": Expect(
        "hard-bounce", "5.1.1", 1005, "erin@example.com", "erin@example.com", suppressed=True
    ),
    "postfix-delayed.eml": Expect("delay", "4.4.1", 1006, "frank@example.net", "frank@example.net"),
    "out-of-office.eml": Expect("auto-reply", "", 1007, "grace@example.org"),
    "vacation-subject-only.eml": Expect("auto-reply", "", 1010, "judy@example.com"),
    "arf-complaint.eml": Expect(
        "complaint", "", 1008, "heidi@example.net", "heidi@example.net", suppressed=True
    ),
    "mailto-unsubscribe.eml": Expect("unsubscribe", "", None, "ivan@example.org", suppressed=True),
}


@dataclass
class Sent:
    """A campaign enqueued for Kent's members: deliveries to aim bounces at."""

    campaign_id: int
    deliveries: dict[str, int]  # member email → delivery id
    member_ids: dict[str, int]


def enqueue(db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path) -> Sent:
    add_campaign(workspace)
    add_members(db, shape, tmp_path, 150)
    enqueued = delivery.enqueue(db, delivery.prepare(db, settings, shape, SLUG))
    return sent_of(db, enqueued.campaign_id)


def sent_of(db: Database, campaign_id: int) -> Sent:
    with db.session() as session:
        rows = session.execute(
            select(Member.email, Delivery.id, Member.id)
            .join(Delivery, Delivery.member_id == Member.id)
            .where(Delivery.campaign_id == campaign_id)
            .order_by(Member.email)
        ).all()
    assert len(rows) >= 20
    return Sent(campaign_id, {e: d for e, d, _m in rows}, {e: m for e, _d, m in rows})


def verp(delivery_id: int, keys: list[str]) -> str:
    """The signed envelope sender of ``delivery_id`` (what the engine sends as MAIL FROM)."""
    return f"{tokens.VERP_PREFIX}{tokens.verp_tag(delivery_id, LIST_DOMAIN, keys=keys)}@{LIST_DOMAIN}"


def adapt(
    name: str,
    delivery_id: int,
    address: str,
    *,
    keys: list[str],
    token: str = "",
    message_id: str = "",
) -> bytes:
    """A fixture rewritten to name ``delivery_id`` (its VERP tag signed with ``keys``, in its
    envelope sender and its Message-ID) and member ``address`` (and a real token)."""
    expect = EXPECTED[name]
    raw = (CORPUS / name).read_bytes()
    if expect.delivery_id is not None:
        # The tag in the envelope sender and in the Message-ID (one string in both).
        pattern = rf"(bounces\+|<d){expect.delivery_id}-[a-z2-7]{{16}}(?=[@.])".encode()
        tag = tokens.verp_tag(delivery_id, LIST_DOMAIN, keys=keys)
        raw = re.sub(pattern, lambda m: m[1] + tag.encode(), raw)
    raw = raw.replace(expect.member.encode(), address.encode())
    if token:
        raw = raw.replace(b"unsubscribe+TOKEN@", f"unsubscribe+{token}@".encode())
    if message_id:
        head, sep, body = raw.partition(b"\n\n")
        lines = [line for line in head.split(b"\n") if not line.lower().startswith(b"message-id:")]
        raw = b"\n".join([*lines, f"Message-ID: <{message_id}>".encode()]) + sep + body
    return raw


def corpus_for(
    sent: Sent, settings: Settings, emails: list[str] | None = None
) -> dict[str, tuple[str, bytes]]:
    """Every fixture aimed at its own member of the campaign (the first of ``emails``, default all
    members in order): name → (member email, bytes)."""
    emails = emails or sorted(sent.deliveries)
    out = {}
    for i, name in enumerate(sorted(EXPECTED)):
        email = emails[i]
        token = tokens.sign(
            "unsubscribe", sent.member_ids[email], keys=settings.secrets, campaign=sent.campaign_id
        )
        out[name] = (email, adapt(name, sent.deliveries[email], email, keys=settings.secrets, token=token))
    return out


def make_maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(str(path), create=True)
    for raw in messages:
        box.add(raw)
    box.close()
    return path


def snapshot(db: Database) -> dict[str, object]:
    """Everything processing can change, to compare before and after a second run."""
    with db.session() as session:
        return {
            "suppressions": sorted(
                session.execute(select(Suppression.address_hash, Suppression.reason, Suppression.source))
            ),
            "consent": session.scalar(select(func.count()).select_from(ConsentEvent)),
            "events": sorted(session.execute(select(BounceEvent.delivery_id, BounceEvent.kind))),
            "inbound": session.scalar(select(func.count()).select_from(InboundMessage)),
        }


def header_block(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").partition(b"\n\n")[0]


def dsn_for(
    envelope_sender: str,
    returned: bytes,
    recipient: str,
    *,
    status: str = "5.1.1",
    to: str | None = None,
    number: int = 1,
) -> bytes:
    """The DSN a receiving MTA sends for ``returned`` (the message as our relay received it), to its
    envelope sender, with the returned headers as it keeps them (Return-Path added)."""
    to = to or envelope_sender
    head = (
        "Return-Path: <>\n"
        f"Delivered-To: {to}\n"
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
        f"To: {to}\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: <dsn-{number}-{abs(hash(returned)) % 10**9}@mx.example.net>\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="real-dsn"\n\n'
        "--real-dsn\nContent-Type: text/plain; charset=us-ascii\n\n"
        f"<{recipient}>: host mx.example.net said: 550 {status} sorry\n\n"
        "--real-dsn\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: no\n\n"
        "--real-dsn\nContent-Type: text/rfc822-headers\n\n"
        f"Return-Path: <{envelope_sender}>\n"
    )
    return head.encode() + header_block(returned) + b"\n\n--real-dsn--\n"
