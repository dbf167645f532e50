"""What in an inbound mail could prove that it answers a message we sent (docs/decisions.md, VERP tags and
signed Message-IDs). Pure.

Two things can, and only where a mail system writes them, never in free text:

- **a signed VERP tag**, ``bounces+<id>-<mac>@<list domain>`` (``mailer.tokens.read_verp``): in the
  mail's own recipient headers (a bounce is sent to the envelope sender), in the fields of a
  ``message/delivery-status`` or ``message/feedback-report`` part (X-Postfix-Sender,
  Original-Mail-From), or in the headers of the returned message (its Return-Path). Only a holder of
  the key can make one, so one that verifies names the delivery by itself.
- **the returned message's Message-ID** ``<d<id>-<mac>.<slug>@<list domain>>``, in the headers of
  a ``message/rfc822`` or ``text/rfc822-headers`` part: it carries the delivery's signed VERP tag
  (``mailer.message.message_id``), which must verify (``mailer.tokens.read_verp_tag``, any of the
  keys: a key rotated out of first place still verifies). ``process`` then also checks that it is
  the Message-ID that delivery really had (its campaign's slug) and that the delivery's member is the
  recipient the report names.

  Message-IDs of the old form ``<d<id>.<slug>@<list domain>>``, written before they carried a tag,
  prove nothing: delivery ids are sequential, so anyone who knows a member's address could guess one.
  Bounces of those messages are still proved by their signed VERP envelope sender.

Whoever received one of our messages can read its tag (the member, their mail provider, anyone they
forward it to with its headers), just as they can read its unsubscribe link; nobody else can.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from dataclasses import dataclass
from email.message import Message

from mailer.inbound.parse import part_text
from mailer.tokens import read_verp, read_verp_tag

#: The mail's own headers that name where it was delivered: a bounce's say the envelope sender.
RECIPIENT_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to", "cc")
REPORT_TYPES = ("message/delivery-status", "message/feedback-report")
RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers")


@dataclass(frozen=True)
class Evidence:
    """What a mail offers as proof, unchecked against the database."""

    verp_id: int | None = None  # the delivery a VERP tag that verified names
    quoted_id: int | None = None  # the delivery the returned message's Message-ID names (tag verified)
    quoted_message_id: str = ""  # that Message-ID, lower-cased, with its angle brackets
    quoted_problem: str = ""  # why a Message-ID of ours in the returned message did not verify
    claim: str = ""  # the first VERP address found that did not verify
    problem: str = ""  # why it did not verify

    @property
    def delivery_id(self) -> int | None:
        return self.verp_id if self.verp_id is not None else self.quoted_id

    @property
    def proof(self) -> str:
        """ "verp", "message-id" (still to be checked against the delivery), or ""."""
        if self.verp_id is not None:
            return "verp"
        return "message-id" if self.quoted_id is not None else ""

    @property
    def unproven(self) -> str:
        """Why the mail proves nothing by itself ("" when its VERP tag verified)."""
        if self.verp_id is not None:
            return ""
        if self.claim:
            return f"the VERP address {self.claim} has {self.problem}"
        return "no signed VERP tag of ours"


def find_evidence(msg: Message, list_domain: str, keys: list[str]) -> Evidence:
    """The VERP tags and quoted Message-ID of ``msg``, from the places listed in the module docstring."""
    domain = re.escape(list_domain)
    verp_re = re.compile(rf"(?<![\w.+-])bounces\+[0-9a-z-]{{1,40}}@{domain}(?![\w.-])", re.IGNORECASE)
    mid_re = re.compile(rf"<d([0-9]{{1,16}}(?:-[a-z2-7]{{16}})?)\.[^@<>\s]{{1,200}}@{domain}>", re.IGNORECASE)
    values = _header_values(msg, RECIPIENT_HEADERS)
    quoted: tuple[int, str] | None = None
    quoted_problem = ""
    for part in _report_parts(msg):
        kind = part.get_content_type()
        if kind in REPORT_TYPES:
            payload = part.get_payload()
            blocks = payload if isinstance(payload, list) else []
            values.extend(v for block in blocks if isinstance(block, Message) for v in _header_values(block))
            continue
        headers = _returned_headers(part)
        if headers is None:
            continue
        values.extend(_header_values(headers))
        found = mid_re.fullmatch(" ".join(str(headers.get("message-id", "")).split()))
        if quoted is None and found:
            tag = read_verp_tag(found.group(1), list_domain, keys=keys) if keys else None
            if tag is not None and tag.verified:
                quoted = (tag.delivery_id, found.group(0).lower())
            elif not quoted_problem:
                why = tag.reason if tag is not None else "a signature no key was given to check"
                quoted_problem = f"the quoted Message-ID {found.group(0).lower()} has {why}"
    verified: int | None = None
    claim = problem = ""
    for value in values:
        for address in verp_re.findall(value):
            tag = read_verp(address, list_domain, keys=keys) if keys else None
            if tag is not None and tag.verified:
                verified = tag.delivery_id
                break
            if not claim:
                claim = address.lower()
                problem = tag.reason if tag is not None else "a signature no key was given to check"
        if verified is not None:
            break
    return Evidence(
        verp_id=verified,
        quoted_id=quoted[0] if quoted else None,
        quoted_message_id=quoted[1] if quoted else "",
        quoted_problem="" if quoted else quoted_problem,
        claim=claim if verified is None else "",
        problem=problem if verified is None else "",
    )


def _report_parts(msg: Message) -> list[Message]:
    """The report and returned-message parts of ``msg``, not looking inside a returned message."""
    out: list[Message] = []
    stack = [msg]
    while stack:
        part = stack.pop()
        kind = part.get_content_type()
        if kind in REPORT_TYPES or kind in RETURNED_TYPES:
            out.append(part)
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(p for p in reversed(payload) if isinstance(p, Message))
    return out


def _returned_headers(part: Message) -> Message | None:
    """The header block of a returned message part."""
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return None
    text = part_text(part).lstrip()
    return email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)


def _header_values(msg: Message, names: tuple[str, ...] | None = None) -> list[str]:
    if names is None:
        return [str(v) for _k, v in msg.items()]
    return [str(v) for name in names for v in msg.get_all(name, [])]
