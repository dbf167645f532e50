"""Inbound mail: the fixture corpus classified, then processed into suppressions and bounce records,
once, from a Maildir and from an mbox file, on SQLite and PostgreSQL.

The corpus (tests/fixtures/bounces/, see its README) names deliveries 1001-1010 by signed VERP tags
(made with ``FIXTURE_KEY``) and example members; ``adapt`` rewrites a fixture to a real delivery, its
tag under the test's key, and its member (both in tests/support/bounces.py, with the table of what
each fixture must be classified as). Forged and malformed mail: tests/hostile/test_mail.py.
"""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.bounces import (
    CORPUS,
    EXPECTED,
    FIXTURE_KEY,
    LIST_DOMAIN,
    SLUG,
    Sent,
    adapt,
    corpus_for,
    enqueue,
    make_maildir,
    sent_of,
    snapshot,
    verp,
)

from mailer import sending as delivery
from mailer import tokens
from mailer.audience import suppression
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import ConfigError, MailerError
from mailer.inbound import classify, process_message, process_source
from mailer.inbound.classify import reply_status, status_kind
from mailer.inbound.sources import PROCESSED_FOLDER, open_source
from mailer.models import BounceEvent, ConsentEvent, InboundMessage, Member, Suppression
from mailer.settings import Settings


def test_the_table_covers_the_corpus() -> None:
    assert {p.name for p in CORPUS.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_is_classified(name: str) -> None:
    expect = EXPECTED[name]
    c = classify((CORPUS / name).read_bytes(), LIST_DOMAIN, keys=[FIXTURE_KEY])
    assert c.kind == expect.kind, c.reason
    assert c.status == expect.status
    assert c.delivery_id == expect.delivery_id
    assert c.proof == ("verp" if expect.delivery_id is not None else "")
    # Without the key, the same tags name nothing.
    assert classify((CORPUS / name).read_bytes(), LIST_DOMAIN, keys=["another-key"]).proof != "verp"
    reported = [f.recipient for f in c.failures] or ([c.complainant] if c.complainant else [])
    assert reported == ([expect.reported] if expect.reported else [])
    if expect.kind == "unsubscribe":
        assert c.token == "TOKEN"


def test_the_delivery_is_named_by_the_returned_message_id_without_verp() -> None:
    raw = (CORPUS / "postfix-user-unknown.eml").read_bytes()
    raw = re.sub(rb"bounces\+1001-[a-z2-7]+@lists\.example\.org", b"newsletter@example.org", raw)
    c = classify(raw, LIST_DOMAIN, keys=["a-newer-key", FIXTURE_KEY])  # rotated: the old key verifies
    # From <d1001-<mac>.…@lists.example.org> in the message/rfc822 part, its tag verified: process
    # checks it against the database.
    tag = tokens.verp_tag(1001, LIST_DOMAIN, keys=[FIXTURE_KEY])
    assert c.kind == "hard-bounce" and c.delivery_id == 1001 and c.proof == "message-id"
    assert c.quoted_message_id == f"<d{tag}.2025-11-kent-network@lists.example.org>"
    unnamed = classify(raw.replace(b"<d1001-", b"<x1001-"), LIST_DOMAIN, keys=[FIXTURE_KEY])
    assert unnamed.delivery_id is None and unnamed.proof == "" and unnamed.kind == "hard-bounce"
    # A Message-ID without a tag (the old form, which anyone can guess), with a made-up MAC, or one
    # verified by no key we have, names nothing, and says why.
    for mid, keys, why in [
        (b"<d1001.", [FIXTURE_KEY], "no signature"),
        (b"<d1001-aaaaaaaaaaaaaaaa.", [FIXTURE_KEY], "a bad signature"),
        (f"<d{tag}.".encode(), ["another-key"], "a bad signature"),
    ]:
        guessed = classify(raw.replace(f"<d{tag}.".encode(), mid), LIST_DOMAIN, keys=keys)
        assert guessed.delivery_id is None and guessed.proof == "" and guessed.kind == "hard-bounce"
        assert f"the quoted Message-ID {mid.decode()}" in guessed.unproven and why in guessed.unproven


@pytest.mark.parametrize(
    ("code", "text", "status", "kind"),
    [
        (550, "5.1.1 <jo@example.org>: Recipient address rejected: User unknown", "5.1.1", "hard"),
        (552, "5.2.2 Mailbox full", "5.2.2", "soft"),
        (554, "5.7.1 Rejected by policy", "5.7.1", "policy"),
        (450, "4.2.0 Greylisted, try again later", "4.2.0", "soft"),
        (550, "No such user here", "5.1.1", "hard"),
        (554, "Message refused", "5.0.0", "soft"),
        (None, "connection dropped", "", "soft"),
    ],
)
def test_reply_status(code: int | None, text: str, status: str, kind: str) -> None:
    assert reply_status(code, text) == status
    assert status_kind(status) == kind


def test_a_bounce_without_failed_action_is_not_a_failure() -> None:
    raw = (CORPUS / "postfix-user-unknown.eml").read_bytes().replace(b"Action: failed", b"Action: delivered")
    assert classify(raw, LIST_DOMAIN, keys=[FIXTURE_KEY]).kind != "hard-bounce"


def test_a_persons_reply_is_not_a_bounce() -> None:
    to = tokens.VERP_PREFIX + tokens.verp_tag(12, LIST_DOMAIN, keys=[FIXTURE_KEY]) + "@" + LIST_DOMAIN
    raw = (
        f"From: Jo <jo@example.org>\nTo: {to}\nSubject: Re: Kent Network newsletter\n"
        "Message-ID: <reply-1@example.org>\n\nThanks! The mailbox is full of good news. 550 5.1.1 ha.\n"
    ).encode()
    c = classify(raw, LIST_DOMAIN, keys=[FIXTURE_KEY])
    assert c.kind == "unknown" and c.delivery_id == 12 and c.proof == "verp"
    # The unsigned form of earlier versions names nothing.
    unsigned = classify(
        raw.replace(to.encode(), b"bounces+12@lists.example.org"), LIST_DOMAIN, keys=[FIXTURE_KEY]
    )
    assert unsigned.delivery_id is None and "no signature" in unsigned.unproven


def test_an_unreadable_mail_is_quarantined_unless_its_headers_say_unsubscribe() -> None:
    unsubscribe = (CORPUS / "mailto-unsubscribe.eml").read_bytes()
    head, _, _body = unsubscribe.partition(b"\n\n")
    head = b"\n".join(line for line in head.split(b"\n") if not line.lower().startswith(b"content-type"))
    poison = b'Content-Type: text/plain; charset="x-no-such-charset"\n\n\xff\xfe stop\n'
    c = classify(head + b"\n" + poison, LIST_DOMAIN)
    assert c.kind == "unsubscribe" and c.token == "TOKEN" and "x-no-such-charset" in c.reason
    other = classify(head.replace(b"unsubscribe+TOKEN@", b"someone@") + b"\n" + poison, LIST_DOMAIN)
    assert (
        other.kind == "quarantined" and other.reason == "unknown charset 'x-no-such-charset' in a text part"
    )
    assert other.message_id == "<CAF1unsub20251117192000@mail.example.org>"


def test_verp_tags_are_signed_short_and_case_insensitive() -> None:
    new, old = "a-newer-key-for-the-verp-tests", FIXTURE_KEY
    address = verp(325_000, [old])
    assert address == verp(325_000, [old]) and address != verp(325_001, [old]) != verp(325_000, [new])
    local = address.partition("@")[0]
    assert local.islower() and len(local) <= 64
    assert len(verp(tokens.MAX_ID, [old]).partition("@")[0]) == 41
    for spelling in (address, address.upper(), f"<{address.title()}>"):
        tag = tokens.read_verp(spelling, LIST_DOMAIN, keys=[new, old])  # rotated: the old key still verifies
        assert tag == tokens.VerpTag(325_000, True)
    assert tokens.read_verp(address, LIST_DOMAIN, keys=[new]) == tokens.VerpTag(
        325_000, False, "a bad signature (not made with any of our keys)"
    )
    unsigned = tokens.read_verp("bounces+325000@lists.example.org", LIST_DOMAIN, keys=[old])
    assert unsigned is not None and not unsigned.verified and "no signature" in unsigned.reason
    # Another id with the same MAC, another domain, or not a VERP address at all.
    mac = local.rpartition("-")[2]
    moved = tokens.read_verp(f"bounces+325001-{mac}@{LIST_DOMAIN}", LIST_DOMAIN, keys=[old])
    assert moved is not None and not moved.verified
    assert tokens.read_verp(address.replace(LIST_DOMAIN, "example.net"), LIST_DOMAIN, keys=[old]) is None
    assert tokens.read_verp(f"unsubscribe+{mac}@{LIST_DOMAIN}", LIST_DOMAIN, keys=[old]) is None


# -- with a database ----------------------------------------------------------------------------------


def test_processing_the_corpus_twice_changes_nothing(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path
) -> None:
    sent = enqueue(db, settings, shape, workspace, tmp_path)
    corpus = corpus_for(sent, settings)
    maildir = make_maildir(tmp_path / "Maildir", [raw for _email, raw in corpus.values()])

    first = process_source(db, settings, maildir)
    assert first.messages == len(EXPECTED) and first.duplicates == 0
    assert first.by_kind == {
        "hard-bounce": 3,
        "soft-bounce": 1,
        "policy": 1,
        "delay": 1,
        "auto-reply": 2,
        "complaint": 1,
        "unsubscribe": 1,
    }
    with db.session() as session:
        for name, (email, _raw) in corpus.items():
            assert suppression.is_suppressed(session, email) == EXPECTED[name].suppressed, name
        reasons = {
            email: session.get(
                Suppression, session.scalar(select(Member.address_hash).where(Member.email == email))
            )
            for email, _raw in corpus.values()
        }
        hard = reasons[corpus["postfix-user-unknown.eml"][0]]
        assert hard is not None and (hard.reason, hard.source, hard.campaign) == (
            "hard-bounce",
            "bounce",
            SLUG,
        )
        complaint = reasons[corpus["arf-complaint.eml"][0]]
        assert complaint is not None and (complaint.reason, complaint.campaign) == ("complaint", SLUG)
        unsub = reasons[corpus["mailto-unsubscribe.eml"][0]]
        assert unsub is not None and (unsub.reason, unsub.source, unsub.campaign) == (
            "unsubscribe",
            "mailto",
            SLUG,
        )
        kinds = dict(session.execute(select(BounceEvent.delivery_id, BounceEvent.kind)).all())
    assert kinds == {
        sent.deliveries[corpus[name][0]]: kind
        for name, kind in [
            ("postfix-user-unknown.eml", "hard"),
            ("exchange-recipient-not-found.eml", "hard"),
            ("yahoo-no-account.eml", "hard"),
            ("exim-mailbox-full.eml", "soft"),
            ("gmail-dmarc-policy.eml", "policy"),
            ("postfix-delayed.eml", "delay"),
            ("arf-complaint.eml", "complaint"),
        ]
    }
    # Processed mail was moved aside; the Maildir has nothing left to do.
    assert not list((maildir / "new").iterdir()) and not list((maildir / "cur").iterdir())
    assert len(list((maildir / PROCESSED_FOLDER / "cur").iterdir())) == len(EXPECTED)

    before = snapshot(db)
    second = process_source(db, settings, maildir)
    assert second.messages == 0
    # The same mails dropped in again (a relay delivering twice, a mailbox re-synced): all seen before.
    make_maildir(maildir, [raw for _email, raw in corpus.values()])
    third = process_source(db, settings, maildir)
    assert third.messages == len(EXPECTED) and third.duplicates == len(EXPECTED) and third.suppressed == 0
    assert snapshot(db) == before


def test_an_mbox_is_left_alone_and_processed_once(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path
) -> None:
    sent = enqueue(db, settings, shape, workspace, tmp_path)
    corpus = corpus_for(sent, settings)
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(str(path))
    for _email, raw in corpus.values():
        box.add(raw)
    box.close()
    size = path.stat().st_size

    first = process_source(db, settings, path)
    assert first.messages == len(EXPECTED) and first.duplicates == 0 and first.suppressed == 5
    before = snapshot(db)
    second = process_source(db, settings, path)
    assert second.duplicates == len(EXPECTED) and second.suppressed == 0
    assert snapshot(db) == before
    assert path.stat().st_size == size


def another_campaign(db: Database, settings: Settings, shape: Shape, workspace: Path, slug: str) -> Sent:
    """The same issue sent again as ``slug``: one more delivery to each member."""
    shutil.copytree(workspace / "campaigns" / SLUG, workspace / "campaigns" / slug)
    enqueued = delivery.enqueue(db, delivery.prepare(db, settings, shape, slug))
    return sent_of(db, enqueued.campaign_id)


def test_soft_bounces_of_distinct_deliveries_suppress_after_the_limit_within_the_window(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path
) -> None:
    assert (settings.soft_bounce_limit, settings.soft_bounce_days) == (3, 30)
    first = enqueue(db, settings, shape, workspace, tmp_path)
    more = [another_campaign(db, settings, shape, workspace, f"2025-12-kent-network-{n}") for n in (1, 2, 3)]
    email = sorted(first.deliveries)[0]
    a, b, c, d = (sent.deliveries[email] for sent in (first, *more))
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def bounce(delivery_id: int, n: int, when: datetime) -> str:
        raw = adapt(
            "exim-mailbox-full.eml",
            delivery_id,
            email,
            keys=settings.secrets,
            message_id=f"soft-{n}@example.net",
        )
        return process_message(db, settings, raw, now=when).action

    assert bounce(a, 1, start) == "soft bounce 1 of 3"
    # The same delivery bouncing again (a relay's second report) counts once.
    assert bounce(a, 2, start + timedelta(days=1)) == "soft bounce 1 of 3"
    # 40 days later the first no longer counts.
    assert bounce(b, 3, start + timedelta(days=40)) == "soft bounce 1 of 3"
    assert bounce(c, 4, start + timedelta(days=45)) == "soft bounce 2 of 3"
    with db.session() as session:
        assert not suppression.is_suppressed(session, email)
    assert bounce(d, 5, start + timedelta(days=50)) == "suppressed (3 soft bounces)"
    with db.session() as session:
        row = suppression.suppression_of(
            session, session.scalar(select(Member.address_hash).where(Member.email == email))
        )
        assert row is not None and row.reason == "hard-bounce" and row.campaign == "2025-12-kent-network-3"
        assert row.detail.startswith("3 soft bounces in 30 days; last: 5.2.2")


def test_mailed_unsubscribe_needs_a_valid_token(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path
) -> None:
    sent = enqueue(db, settings, shape, workspace, tmp_path)
    email = sorted(sent.deliveries)[3]
    member_id = sent.member_ids[email]
    keys = settings.secrets
    forged = tokens.sign("unsubscribe", member_id, keys=["another-key"], campaign=sent.campaign_id)
    wrong_purpose = tokens.sign("preferences", member_id, keys=keys, campaign=sent.campaign_id)
    for n, token in enumerate((forged, wrong_purpose)):
        raw = adapt(
            "mailto-unsubscribe.eml", 0, email, keys=keys, token=token, message_id=f"bad-{n}@example.org"
        )
        outcome = process_message(db, settings, raw)
        assert outcome.kind == "unsubscribe" and outcome.action.startswith("ignored: the unsubscribe token")
    with db.session() as session:
        assert not suppression.is_suppressed(session, email)
    # Upper-cased by a relay on the way: still the same token.
    good = tokens.sign("unsubscribe", member_id, keys=keys, campaign=sent.campaign_id).upper()
    outcome = process_message(db, settings, adapt("mailto-unsubscribe.eml", 0, email, keys=keys, token=good))
    assert outcome.action == "unsubscribed" and outcome.campaign == SLUG and outcome.member_id == member_id
    with db.session() as session:
        event = session.scalars(
            select(ConsentEvent).where(
                ConsentEvent.member_id == member_id, ConsentEvent.action == "unsubscribe"
            )
        ).one()
        assert (event.action, event.source, event.campaign) == ("unsubscribe", "mailto", SLUG)


def test_a_bounce_without_verp_acts_only_with_the_message_id_sent_to_the_address_it_names(
    db: Database, settings: Settings, shape: Shape, workspace: Path, tmp_path: Path
) -> None:
    sent = enqueue(db, settings, shape, workspace, tmp_path)
    email, other = sorted(sent.deliveries)[5:7]
    raw = adapt("postfix-user-unknown.eml", sent.deliveries[email], email, keys=settings.secrets)
    raw = re.sub(rb"bounces\+\d+-[a-z2-7]{16}@lists\.example\.org", b"newsletter@example.org", raw)
    assert b"bounces+" not in raw

    def suppressed(address: str) -> bool:
        with db.session() as session:
            return suppression.is_suppressed(session, address)

    def tagged(address: str) -> bytes:
        return f"<d{tokens.verp_tag(sent.deliveries[address], LIST_DOMAIN, keys=settings.secrets)}.".encode()

    # The Message-ID of another member's delivery, or a made-up one: unverified, nothing changes.
    wrong = raw.replace(tagged(email), tagged(other))
    outcome = process_message(db, settings, wrong.replace(b"20251117180411.3F1A", b"20251117180411.3F1C"))
    assert outcome.kind == "unverified" and outcome.claimed == "hard-bounce" and not outcome.suppressed
    assert "not a recipient this report names" in outcome.action
    made_up = raw.replace(f".{SLUG}@".encode(), b".another-slug@")
    outcome = process_message(db, settings, made_up.replace(b"20251117180411.3F1A", b"20251117180411.3F1D"))
    assert outcome.kind == "unverified" and "is not the one delivery" in outcome.action
    # The attack: the member's address and a guessed delivery id (ids are sequential) in the old
    # Message-ID form without a tag, or with a made-up MAC: names no delivery.
    delivery = sent.deliveries[email]
    for n, guess in enumerate([f"<d{delivery}.", f"<d{delivery}-aaaaaaaaaaaaaaaa."]):
        forged = raw.replace(tagged(email), guess.encode()).replace(b"180411.3F1A", b"180411.3F2%d" % n)
        outcome = process_message(db, settings, forged)
        assert outcome.kind == "unverified" and not outcome.suppressed and outcome.delivery_id is None
        assert f"the quoted Message-ID {guess}" in outcome.action
    assert not suppressed(email) and not suppressed(other)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(BounceEvent)) == 0
        kinds = set(session.scalars(select(InboundMessage.kind)))
    assert kinds == {"unverified"}

    # The Message-ID that delivery had, in the returned message, for the address the DSN names: acts.
    outcome = process_message(db, settings, raw)
    assert outcome.kind == "hard-bounce" and outcome.delivery_id == sent.deliveries[email]
    assert outcome.suppressed and outcome.campaign == SLUG
    with db.session() as session:
        row = suppression.suppression_of(
            session, session.scalar(select(Member.address_hash).where(Member.email == email))
        )
        assert row is not None and row.reason == "hard-bounce" and row.campaign == SLUG


def test_sources_refuse_what_they_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Maildir"):
        open_source(tmp_path)
    with pytest.raises(ConfigError, match="no such Maildir"):
        open_source(tmp_path / "missing")
    with pytest.raises(ConfigError, match="in clear"):
        open_source("imap://jo@imap.example.org/INBOX")
    with pytest.raises(ConfigError, match="MAILER_IMAP_PASSWORD"):
        open_source("imaps://jo@imap.example.org/INBOX", imap_password="")


# -- IMAP, against a real Dovecot on 127.0.0.1 ---------------------------------------------------------

DOVECOT = Path("/usr/sbin/dovecot")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.pem
auth_mechanisms = plain
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass
class ImapServer:
    url: str
    password: str
    maildir: Path  # the user's INBOX, to drop mail into
    uid: int
    gid: int


@pytest.fixture
def imap_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImapServer]:
    """A throwaway Dovecot (Debian's dovecot-imapd) serving one user's Maildir over IMAPS, with a
    certificate from a test CA that ``ssl.create_default_context`` trusts through SSL_CERT_FILE."""
    if not DOVECOT.exists():
        reason = f"{DOVECOT} is missing: apt-get install -y dovecot-imapd"
        if IN_CI:
            pytest.fail(f"Dovecot is required under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    import pwd

    import trustme

    root = Path(tempfile.mkdtemp(prefix="mailer-imap-"))  # short: Dovecot's sockets live below it
    root.chmod(0o755)
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(root / "ca.pem"))
    password = "imap-test-password"
    (root / "passwd").write_text(f"jo:{{PLAIN}}{password}::::::\n")
    (root / "passwd").chmod(0o644)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    else:
        uid, gid = os.geteuid(), os.getegid()
    maildir = root / "home" / "jo" / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for path in [root / "home", root / "home" / "jo", maildir, *maildir.iterdir()]:
        os.chown(path, uid, gid)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    (root / "dovecot.conf").write_text(DOVECOT_CONF.format(root=root, uid=uid, gid=gid, port=port))
    proc = subprocess.Popen([str(DOVECOT), "-F", "-c", str(root / "dovecot.conf")])
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (
                    (root / "log").read_text() if (root / "log").exists() else "no log"
                )
                assert time.monotonic() < deadline, "Dovecot did not start"
                time.sleep(0.05)
        yield ImapServer(f"imaps://jo@127.0.0.1:{port}/INBOX", password, maildir, uid, gid)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_an_imap_folder_is_processed_once_and_flagged(
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    imap_server: ImapServer,
) -> None:
    sent = enqueue(db, settings, shape, workspace, tmp_path)
    corpus = corpus_for(sent, settings)
    poison = (
        b"From: someone@example.net\nTo: bounces@lists.example.org\nSubject: poison\n"
        b"Message-ID: <poison-1@example.net>\nMIME-Version: 1.0\n"
        b'Content-Type: text/plain; charset="x-no-such-charset"\n\nhello\n'
    )
    mails = [raw for _email, raw in corpus.values()] + [poison]
    for n, raw in enumerate(mails):
        path = imap_server.maildir / "new" / f"{1763400000 + n}.M{n}P1.test"
        path.write_bytes(raw)
        os.chown(path, imap_server.uid, imap_server.gid)

    with pytest.raises(MailerError, match="cannot read"):
        process_source(db, settings, imap_server.url, imap_password="wrong")
    first = process_source(db, settings, imap_server.url, imap_password=imap_server.password)
    assert first.messages == len(mails) and first.duplicates == 0 and first.suppressed == 5
    assert first.quarantined == 1
    before = snapshot(db)
    # Flagged on the server: the second run reads nothing.
    second = process_source(db, settings, imap_server.url, imap_password=imap_server.password)
    assert second.messages == 0
    assert snapshot(db) == before
    # The messages are still there, marked read (Dovecot keeps the flags in the file names), but for
    # the quarantined one: left unread for a person, with its keyword.
    flags = [p.name.rpartition(":2,")[2] for p in (imap_server.maildir / "cur").iterdir()]
    assert len(flags) == len(mails) and sum("S" not in f for f in flags) == 1
    keywords = (imap_server.maildir / "dovecot-keywords").read_text()
    assert "$MailerQuarantined" in keywords and "$MailerProcessed" in keywords
