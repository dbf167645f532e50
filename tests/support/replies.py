"""Replies asking to leave, as members' mail systems send them: a plain reply (``reply``), signed with
DKIM by dkimpy under a key the test publishes on the test DNS server (``Signer``), the way Gmail or
Outlook would sign it.

``Signer(domain, selector)`` makes an RSA-2048 key once per test session (``KEYS``: cached by
domain and selector); ``publish(dns_server)`` puts its public half at ``SELECTOR._domainkey.DOMAIN``;
``sign(raw)`` prepends a ``DKIM-Signature`` covering From, To, Subject, Date and Message-ID.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from support.dns_server import DnsTestServer

SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


@functools.cache
def _key(domain: str, selector: str) -> tuple[bytes, str]:
    """An RSA-2048 private key (PEM) and its DKIM TXT record, made once per test session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"


@dataclass(frozen=True)
class Signer:
    """A domain's DKIM key: published on a test DNS server, signing replies."""

    domain: str
    selector: str = "s1"

    def publish(self, server: DnsTestServer) -> None:
        record = _key(self.domain, self.selector)[1]
        text = " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))
        server.zone.setdefault((f"{self.selector}._domainkey.{self.domain}", "TXT"), []).append(text)

    def sign(self, raw: bytes, *, headers: list[bytes] | None = None, **options: object) -> bytes:
        pem = _key(self.domain, self.selector)[0]
        signature = dkim.sign(
            raw,
            self.selector.encode(),
            self.domain.encode(),
            pem,
            include_headers=headers or SIGNED_HEADERS,
            **options,  # type: ignore[arg-type]
        )
        return signature + raw


def reply(
    sender: str,
    body: str,
    *,
    to: str = "newsletter@example.org",
    subject: str = "Re: Kent Network newsletter: November 2025",
    message_id: str | None = None,
    headers: str = "",
) -> bytes:
    """A member's plain-text reply, CRLF line ends, as a mail client sends it."""
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {message_id or make_msgid(domain=sender.rpartition('@')[2])}",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit",
    ]
    top = headers.strip("\n")
    text = ((top + "\n") if top else "") + "\n".join(lines) + "\n\n" + body
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
