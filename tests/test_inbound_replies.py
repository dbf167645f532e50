"""Replies asking to leave (docs/decisions.md, Replies asking to leave), on SQLite and PostgreSQL.

A member's "please unsubscribe me" with a DKIM signature that verifies (dkimpy, the key published on
a real DNS server, tests/support/dns_server.py) and aligns with its From domain unsubscribes them by
itself, with a consent-log line saying so; without one it waits in ``mailer inbound pending`` until
a person acts, and ``mailer doctor`` counts it. The words are found in English and Welsh, above
the quoted text, never in a quoted copy of our footer. The desk's side: test_inbound_replies_desk.py;
forged and malformed replies: tests/hostile/test_reply_mail.py.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import mailbox
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from support.cli_runner import MailerCli
from support.dns_server import DnsTestServer
from support.hashes import address_hash
from support.replies import Signer, reply

from mailer.audience import suppression
from mailer.chores import default_chores
from mailer.db import Database
from mailer.doctor import reply_findings
from mailer.inbound import classify, process_message
from mailer.inbound.authentic import aligned, organisational_domain
from mailer.inbound.replies import asks_to_leave
from mailer.models import ConsentEvent, Member, ReplyRequest
from mailer.sending.chores import run_due_chores
from mailer.settings import Settings

JO = "jo@members.example.net"
SIGNER = Signer("members.example.net")


def _asks(body: str, subject: str = "Re: November newsletter") -> str:
    msg = email.message_from_bytes(reply(JO, body, subject=subject), policy=email.policy.compat32)
    return asks_to_leave(msg, str(msg["subject"]))


# ---------------------------------------------------------------------------------------------
# The words (pure)


@pytest.mark.parametrize(
    "body",
    [
        "Please unsubscribe me.\n\nThanks, Jo",
        "Hi,\nCould you remove me from your mailing list?\nJo",
        "Take me off this list please",
        "I'd like to opt out.",
        "No more emails please",
        "Please stop sending me these.",
        "STOP",
        "Unsubscribe",
        "Tynnwch fi oddi ar y rhestr os gwelwch yn dda.",
        "Dad-danysgrifio",
        "Dim mwy o e-byst, diolch",
        "Stopiwch anfon negeseuon ataf",
        "Peidiwch ag anfon e-byst ataf",
        "Stopiwch",
    ],
)
def test_a_request_to_leave_is_found_in_english_and_welsh(body: str) -> None:
    assert _asks(body)


def test_the_subject_alone_can_ask() -> None:
    assert _asks("", subject="UNSUBSCRIBE") == "unsubscribe"
    assert _asks("Thanks", subject="Re: please unsubscribe me") == "unsubscribe"
    assert _asks("Thanks", subject="Ateb: Dad-danysgrifio")


@pytest.mark.parametrize(
    "body",
    [
        "Thank you for the newsletter! See you on Tuesday.",
        "We must stop the deportation flights.",  # "stop" in a sentence is no request
        "Please don't unsubscribe me, I changed address only.",
        "I do not want you to remove me, just fix my name.",
        # our own footer, quoted below the member's words
        "Great issue!\n\n> --\n> Sent by Kent Network.\n> Unsubscribe:\n> https://lists.example.org/u/abc\n",
        # an unquoted copy of the footer under a signature line
        "Great issue!\n--\nSent by Kent Network.\nUnsubscribe:\nhttps://lists.example.org/u/abc\n",
        "Looks good.\n\nOn Mon, 17 Nov 2025 Kent Network wrote:\nunsubscribe at the link below",
        "Diolch!\n\nAr 17 Tach 2025 ysgrifennodd Kent Network:\n> dad-danysgrifio",
        "Link: https://example.org/unsubscribe please",  # a line with a link is a footer's, skipped
    ],
)
def test_no_request_in_thanks_in_sentences_or_in_a_quoted_footer(body: str) -> None:
    assert _asks(body) == ""


def test_relaxed_alignment_is_by_organisational_domain() -> None:
    assert organisational_domain("mail.example.co.uk") == "example.co.uk"
    assert aligned("mail.members.example.net", "members.example.net")
    assert aligned("example.net", "members.example.net")
    assert not aligned("example.org", "example.net")
    assert not aligned("co.uk", "example.co.uk")  # a public suffix is nobody's


def test_classify_tells_a_request_from_an_auto_reply_and_a_bounce() -> None:
    c = classify(reply(JO, "Please unsubscribe me"), "lists.example.org")
    assert (c.kind, c.sender, c.asked) == ("unsubscribe-request", JO, "unsubscribe")
    assert c.addressed == ("newsletter@example.org",)
    auto = reply(JO, "I am away. To unsubscribe from my updates…", headers="Auto-Submitted: auto-replied")
    assert classify(auto, "lists.example.org").kind == "auto-reply"
    daemon = reply("MAILER-DAEMON@members.example.net", "please unsubscribe me")
    assert classify(daemon, "lists.example.org").kind == "unknown"


# ---------------------------------------------------------------------------------------------
# Acting on it, or not (both databases)


def _member(db: Database, address: str = JO) -> int:
    with db.session() as session:
        member = Member(email=address, address_hash=address_hash(address), name="Jo Bloggs")
        session.add(member)
        session.flush()
        return member.id


def _suppressed(db: Database, address: str = JO) -> bool:
    with db.session() as session:
        return suppression.is_hash_suppressed(session, address_hash(address))


def _log(db: Database) -> list[tuple[str, str, str]]:
    with db.session() as session:
        rows = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
        return [(e.action, e.source, e.detail) for e in rows]


def _requests(db: Database) -> list[tuple[str, str, str]]:
    with db.session() as session:
        rows = session.scalars(select(ReplyRequest).order_by(ReplyRequest.id))
        return [(r.state, r.decided_by, r.why) for r in rows]


@pytest.fixture
def dns(dns_server: DnsTestServer) -> DnsTestServer:
    SIGNER.publish(dns_server)
    return dns_server


def test_a_signed_aligned_reply_unsubscribes_from_the_configured_mailbox(
    db: Database, settings: Settings, dns: DnsTestServer, mailer_cli: MailerCli, tmp_path: Path
) -> None:
    _member(db)
    box = mailbox.Maildir(tmp_path / "kent-replies", create=True)
    raw = SIGNER.sign(reply(JO, "Please unsubscribe me.\n\nJo", message_id="<r1@members.example.net>"))
    box.add(raw)
    env = {"MAILER_DNS_RESOLVER": dns.address, "MAILER_REPLY_SOURCES": f"maildir:{tmp_path / 'kent-replies'}"}

    result = mailer_cli("inbound", "process", "--json", env=env, check=True)

    [report] = json.loads(result.stdout)["sources"]
    assert report["by_kind"] == {"unsubscribe-request": 1} and report["suppressed"] == 1
    assert _suppressed(db)
    action, source, detail = _log(db)[-1]
    assert (action, source) == ("unsubscribe", "mailto")
    assert detail == "reply asking to leave, DKIM-aligned, message-id <r1@members.example.net>"
    assert _requests(db)[0][:2] == ("acted", "DKIM-aligned")
    assert mailer_cli("inbound", "pending", "--json", env=env, check=True).stdout.strip() == "[]"
    # read again: nothing new, nothing twice
    again = json.loads(mailer_cli("inbound", "process", "--json", env=env, check=True).stdout)
    assert again["sources"][0]["messages"] == 0


def test_a_signature_of_a_subdomain_aligns(
    db: Database, settings: Settings, dns_server: DnsTestServer
) -> None:
    _member(db)
    signer = Signer("mail.members.example.net", "gm")
    signer.publish(dns_server)
    raw = signer.sign(reply(JO, "unsubscribe me please"))
    outcome = process_message(db, replace(settings, dns_resolver=dns_server.address), raw)
    assert outcome.suppressed and _suppressed(db)


def test_an_unsigned_reply_waits_for_a_person_who_unsubscribes_them_on_the_command_line(
    db: Database, settings: Settings, mailer_cli: MailerCli, dns: DnsTestServer
) -> None:
    member_id = _member(db)
    outcome = process_message(
        db,
        replace(settings, dns_resolver=dns.address),
        reply(JO, "Please unsubscribe me", message_id="<u1@x>"),
    )
    assert outcome.kind == "unsubscribe-request" and outcome.pending and not outcome.suppressed
    assert "no DKIM signature" in outcome.action
    assert not _suppressed(db)
    [finding] = reply_findings(db)
    assert finding.severity == "warning" and "1 reply(ies) asking to leave" in finding.message
    assert "mailer inbound pending" in finding.fix

    listed = json.loads(mailer_cli("inbound", "pending", "--json", check=True).stdout)
    assert [(r["member_id"], r["address"], r["state"], r["asked"]) for r in listed] == [
        (member_id, JO, "pending", "unsubscribe")
    ]
    human = mailer_cli("inbound", "pending", check=True).stdout
    assert f"#{listed[0]['id']}" in human and "no DKIM signature" in human

    done = mailer_cli("inbound", "pending", "unsubscribe", str(listed[0]["id"]), "--as", "Sam", check=True)
    assert "unsubscribed from all mail (by Sam)" in done.stdout
    assert _suppressed(db)
    action, source, detail = _log(db)[-1]
    assert (action, source) == ("unsubscribe", "admin")
    assert detail == "reply asking to leave, confirmed by Sam, message-id <u1@x>"
    assert _requests(db)[0][:2] == ("acted", "Sam")
    assert reply_findings(db) == []
    twice = mailer_cli("inbound", "pending", "unsubscribe", str(listed[0]["id"]))
    assert twice.exit_code != 0 and "acted already by Sam" in twice.output


def test_a_reply_from_no_member_waits_and_is_dismissed(
    db: Database, settings: Settings, mailer_cli: MailerCli, dns: DnsTestServer
) -> None:
    signed = SIGNER.sign(reply("stranger@members.example.net", "Remove me from your list"))
    outcome = process_message(db, replace(settings, dns_resolver=dns.address), signed)
    assert outcome.pending and "no member's address" in outcome.action
    [row] = json.loads(mailer_cli("inbound", "pending", "--json", check=True).stdout)
    refused = mailer_cli("inbound", "pending", "unsubscribe", str(row["id"]))
    assert refused.exit_code != 0 and f"mailer inbound pending dismiss {row['id']}" in refused.output
    mailer_cli("inbound", "pending", "dismiss", str(row["id"]), "--as", "Sam", check=True)
    assert _requests(db)[0][:2] == ("dismissed", "Sam")
    shown = json.loads(mailer_cli("inbound", "pending", "--all", "--json", check=True).stdout)
    assert [r["state"] for r in shown] == ["dismissed"]
    assert mailer_cli("inbound", "pending", "dismiss", "999").exit_code != 0


def test_the_workers_read_the_reply_mailboxes(
    db: Database, settings: Settings, dns: DnsTestServer, tmp_path: Path
) -> None:
    _member(db)
    folder = tmp_path / "replies"
    mailbox.Maildir(folder, create=True).add(SIGNER.sign(reply(JO, "STOP")))
    configured = replace(settings, dns_resolver=dns.address, reply_sources=f"maildir:{folder}")
    assert "read-replies" not in [c.name for c in default_chores(settings)]  # no mailbox named
    chores = [c for c in default_chores(configured) if c.name == "read-replies"]
    assert len(chores) == 1
    said = asyncio.run(run_due_chores(db, configured, chores, worker="w1"))
    assert said == [f"read-replies: {folder}: 1 new, 1 suppressed, 0 waiting for a person, 0 quarantined"]
    assert _suppressed(db)
    assert asyncio.run(run_due_chores(db, configured, chores, worker="w2")) == []  # not due again yet


def test_erasing_a_member_erases_their_requests(db: Database, settings: Settings) -> None:
    from mailer.audience.members import forget

    _member(db)
    assert process_message(db, settings, reply(JO, "Please unsubscribe me")).pending
    with db.session() as session:
        forget(session, JO)
    assert _requests(db) == []


def test_no_source_configured_says_how_to_name_one(mailer_cli: MailerCli) -> None:
    result = mailer_cli("inbound", "process")
    assert result.exit_code != 0 and "reply_sources" in result.output


def test_reply_sources_may_be_a_list_in_mailer_toml(workspace: Path) -> None:
    from mailer.settings import load

    toml = workspace / "mailer.toml"
    text = toml.read_text(encoding="utf-8")
    assert 'reply_sources = ""' in text  # `mailer init` writes it, with its help
    listed = 'reply_sources = ["maildir:/var/mail/kent", "mbox:replies.mbox"]'
    toml.write_text(text.replace('reply_sources = ""', listed), encoding="utf-8")
    loaded = load(workspace, env={})
    assert loaded.reply_source_list == ["maildir:/var/mail/kent", f"mbox:{workspace / 'replies.mbox'}"]
