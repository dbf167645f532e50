"""A message template's inputs and the checks of what it fills: the seed variant's parts (every slot
kind and the awkward lines), 240 recipients with hostile names and addresses, the settings and list
arguments, and the wire format (ASCII, CRLF, line lengths, dot-stuffing)."""

from __future__ import annotations

import email
import email.policy
import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TypedDict

from mailer import tokens
from mailer.message import MessageParts, Recipient
from mailer.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "campaigns" / "2025-11-kent-network" / "issue.yaml"  # the seed issue's text
KEYS = ["test-key"]
DATE = datetime(2025, 11, 17, 9, 30, tzinfo=UTC)
SETTINGS = Settings(
    organisation="Amnesty International UK, Kent Network",
    from_address="newsletter@kent.example.org",
    reply_to="kent@example.org",
    list_domain="lists.example.org",
    base_url="https://news.example.org/",
    secret=",".join(KEYS),
)


class ListArgs(TypedDict):
    campaign_slug: str
    kind: str
    list_name: str
    default_name: str


LIST: ListArgs = {
    "campaign_slug": "kent-2025-11",
    "kind": "newsletter",
    "list_name": "Kent Network newsletter",
    "default_name": "friend",
}

NAMES = [
    "Jane Smith",
    "Zoë Ó Briain",
    "李小龍",
    'Jane "JJ" Smith',
    "Smith, John",
    "Dr. Who",
    "O'Brien",
    "",
    ".dot at the start",
    "From Mars",
    "Émile Zola-Dupont",
    "😀 Emoji Person",
    "Back\\slash",
    "Ångström (Lab) <x@y>",
    "=?utf-8?q?not_decoded?=",
    "trailing space ",
    "multiple    spaces\tand tab",
    "A very long ASCII name that goes on and on, well past what fits on one header line",
    "Ünïcödé " * 12,
    "Evil\r\nBcc: victim@example.org",
    "Evil\nX-Injected: yes",
    "Nul\x00byte",
    "Wąsowski-Żółć",
    "Σωκράτης",
    "Мария Иванова",
    "محمد",
]
ADDRESSES = [
    "jane@example.org",
    "jo+news@example.org",
    "jo+tag.more@sub.example.co.uk",
    '"john smith"@example.org',
    '"quote\\"d,here"@example.org',
    "o'brien@example.ie",
    "user@xn--bcher-kva.example",
    "very.long.local.part.that.is.quite.long.indeed.x@a-rather-long-domain-name.example.org",
    "UPPER.Case@Example.ORG",
]


def seed_parts(subject: str = "Kent Network newsletter: November 2025") -> MessageParts:
    """A ~60 KB variant made of the seed issue's text, with every slot and the awkward cases."""
    paragraphs = [p for p in SEED.read_text(encoding="utf-8").splitlines() if p.strip()]
    text_lines = ["[[mailer:greeting]]", "", *paragraphs, ""]
    text_lines += [
        ".a line starting with a dot",
        "..two dots",
        ".",
        "From the editor: a line that mbox would mangle",
        "trailing spaces   ",
        "tab\tinside and at the end\t",
        "equals = sign and =?utf-8?q?x?= lookalike",
        "x" * 1500,
        "Sent to [[mailer:email]]. [[mailer:name]], you can [[mailer:name]]",
        "Unsubscribe: [[mailer:unsubscribe_url]]",
        "Preferences: [[mailer:preferences_url]]",
        "[[mailer:unsubscribe_url]]",
    ]
    text = "\n".join(text_lines)
    html_body = "".join(f"<p>{p}</p>\n" for p in paragraphs)
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>News</title></head>\n'
        '<body style="margin:0">\n<p>[[mailer:greeting]]</p>\n'
        + html_body * 2
        + "<p>"
        + "Long line with no breaks. " * 80
        + "</p>\n"
        + ".starts with a dot\n"
        + '<p>Sent to [[mailer:email]]. <a href="[[mailer:unsubscribe_url]]">Unsubscribe</a> or '
        + '<a href="[[mailer:preferences_url]]">change what you get</a>.</p>\n</body></html>'
    )
    return MessageParts(subject=subject, text=text, html=html, preheader="Highlights: Write for Rights")


def recipients(count: int = 240) -> list[Recipient]:
    pairs = itertools.islice(itertools.product(NAMES, ADDRESSES), count)
    out = []
    for i, (name, address) in enumerate(pairs):
        delivery, member = 1000 + i, 500_000 + 7 * i
        out.append(
            Recipient(
                delivery_id=delivery,
                member_id=member,
                email=address,
                name=name,
                first_name=name.split()[0] if name.split() else "",
                unsubscribe_token=tokens.sign("unsubscribe", member, keys=KEYS, campaign=42, now=DATE),
                preferences_token=tokens.sign("preferences", member, keys=KEYS, campaign=42, now=DATE),
            )
        )
    return out


def dot_stuff(message: bytes) -> bytes:
    """SMTP DATA the plain way (RFC 5321 4.5.2): double a leading dot, end with CRLF . CRLF."""
    lines = message.split(b"\r\n")
    assert lines[-1] == b""
    return (
        b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines[:-1]) + b".\r\n"
    )


def check_wire_format(raw: bytes, address: str = "") -> None:
    """ASCII, CRLF only, no line over 998 octets, and header lines within 78 except for a long address."""
    assert raw.isascii()
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    long = [line for line in header_block.split(b"\r\n") if len(line) > 78]
    assert all(address and address.encode() in line for line in long), long


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg
