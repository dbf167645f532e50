"""Reading an inbound mail defensively: anyone can write one, so nothing in it may stop a run.

``parse(raw)`` returns the parsed message, or raises ``Unparseable`` with the reason in a few words
when the mail is one mailer will not classify (``process`` then quarantines it):

- **too large**: over ``MAX_MESSAGE_BYTES`` (25 MiB, more than relays accept: no bounce, report or
  unsubscribe is that big). Sources read at most that much plus one byte of each mail.
- **too deeply nested**: more than ``MAX_CONTAINERS`` multipart or message parts declared, or a
  structure deeper than ``MAX_DEPTH``. Counted in the bytes before parsing, because Python's parser
  recurses once per level (2,000 nested multiparts raise RecursionError).
- **broken MIME**: a multipart whose boundary is missing or never appears (the structure cannot be
  known). A missing closing boundary alone is tolerated: relays truncate returned messages.
- **unknown charset** in a text part (LookupError when decoding). ``unknown-8bit`` and its kin, which
  mail systems write for "some 8-bit text", are read as Latin-1.

Text is read from at most ``MAX_TEXT_BYTES`` of each part (``part_text``), so a huge part costs no
more than a small one to the checks that scan text. Header values with raw 8-bit bytes are read as
UTF-8 (invalid bytes replaced), so every header value is a string.
"""

from __future__ import annotations

import codecs
import email
import email.errors
import email.parser
import email.policy
import re
from collections.abc import Iterator
from email.message import Message
from typing import Final

MAX_MESSAGE_BYTES: Final = 25 * 1024 * 1024
MAX_CONTAINERS: Final = 100
MAX_DEPTH: Final = 16
MAX_TEXT_BYTES: Final = 256 * 1024

#: Charsets mail systems write for text of no known charset; read as Latin-1 (every byte is a character).
EIGHT_BIT_CHARSETS: Final = frozenset({"unknown-8bit", "x-unknown", "unknown", "8bit", "x-user-defined"})

_CONTAINER_RE = re.compile(rb"content-type:[ \t]*(?:\r?\n[ \t]+)*(?:multipart|message)/", re.IGNORECASE)
_BROKEN_DEFECTS: Final = (
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.MultipartInvariantViolationDefect,
)


class Unparseable(Exception):
    """A mail mailer will not classify; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def parse(raw: bytes) -> Message:
    """The parsed message; ``Unparseable`` if it is too large, too deeply nested, has broken MIME
    or a text part in an unknown charset."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Unparseable(f"too large: over {MAX_MESSAGE_BYTES // (1024 * 1024)} MiB")
    containers = len(_CONTAINER_RE.findall(raw))
    if containers > MAX_CONTAINERS:
        raise Unparseable(
            f"too deeply nested: {containers} multipart or message parts (the limit is {MAX_CONTAINERS})"
        )
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        raise Unparseable("too deeply nested: the MIME parser ran out of stack") from None
    for part, depth in walk(msg):
        _readable_headers(part)
        if depth > MAX_DEPTH:
            raise Unparseable(f"too deeply nested: more than {MAX_DEPTH} levels of MIME parts")
        broken = next((d for d in part.defects if isinstance(d, _BROKEN_DEFECTS)), None)
        if broken is not None:
            what = type(broken).__name__.removesuffix("Defect")
            raise Unparseable(f"broken MIME: {part.get_content_type()} part ({what})")
        if part.get_content_maintype() == "text":
            charset = charset_of(part)
            try:
                codecs.lookup(charset)
            except LookupError:
                raise Unparseable(f"unknown charset {charset[:60]!r} in a text part") from None
    return msg


def _readable_headers(part: Message) -> None:
    """Header values with raw 8-bit bytes (undeclared, often UTF-8) as text: otherwise the parser hands
    them out as ``Header`` objects, which code expecting strings (flufl.bounce's) trips over."""
    items = list(part.raw_items())
    if all(value.isascii() for _name, value in items):
        return
    for name in {name.lower() for name, _value in items}:
        del part[name]
    for name, value in items:
        part.set_raw(name, value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def parse_headers(raw: bytes) -> Message:
    """Only the header block of ``raw`` (the body is not parsed): safe on any mail."""
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw[:MAX_TEXT_BYTES])


def walk(msg: Message) -> Iterator[tuple[Message, int]]:
    """Every part with its depth (the message is 0), in order, without recursion."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        yield part, depth
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((p, depth + 1) for p in reversed(payload) if isinstance(p, Message))


def charset_of(part: Message) -> str:
    """The part's charset, lower-case (``us-ascii`` when it names none)."""
    charset = part.get_content_charset() or "us-ascii"
    return "latin-1" if charset in EIGHT_BIT_CHARSETS else charset


def part_text(part: Message) -> str:
    """The decoded text of a text part, from at most ``MAX_TEXT_BYTES`` of it."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload[:MAX_TEXT_BYTES].decode(charset_of(part), "replace")
    except LookupError:  # parse() refuses these; a part built otherwise still reads as Latin-1
        return payload[:MAX_TEXT_BYTES].decode("latin-1")
