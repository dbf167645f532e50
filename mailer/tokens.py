"""Signed, purpose-bound link tokens for unsubscribe, preferences, confirmation and view links.

A token is a few packed bytes and a truncated HMAC-SHA256, written in lower-case base32 without
padding, so that it fits both a URL (``https://BASE/u/TOKEN``) and the local part of a mailto
address (``unsubscribe+TOKEN@list-domain``)::

    byte 0      format: version (2 bits, 01) | has-campaign (1 bit) | purpose code (5 bits)
    byte 1      key id: first byte of SHA-256 of the signing key (to pick the key when verifying)
    varint      member id (unsigned LEB128)
    varint      campaign id, when the has-campaign bit is set
    varint      issue time, seconds since 2024-01-01T00:00:00Z
    8 bytes     HMAC-SHA256(key, "mailer-token-v1\\0" + the bytes above), truncated to 64 bits

Sizes: a token for member 325,000 of campaign 42 issued in 2026 is 18 bytes, 29 characters; the
mailto local part ``unsubscribe+`` + token is 41 octets. The largest ids accepted (2**53 - 1 each)
give 31 bytes, 50 characters and a 62-octet local part, so a token always fits the 64 octets
RFC 5321 allows for a local part (``MAX_TOKEN_LENGTH``).

Case: base32 (RFC 4648 alphabet) is case-insensitive, and ``verify`` accepts any case, so a relay
that upper-cases a local part or a browser that lower-cases a URL does not break a token. One encoding
serves URLs and mailto addresses alike.

A token carries the member id and campaign id readable by anyone (they are signed, not encrypted);
it never carries an email address. The MAC is 64 bits: forging one takes about 2**63 tries on the
server, which rate limits and logs would notice long before.

Keys come from ``Settings.secrets`` (``MAILER_SECRET``, comma-separated, newest first): the first
signs, any verifies, so a key can be rotated by putting the new one first and dropping the old one
once its tokens no longer matter. ``TokenData.key_index`` says which key verified.

The campaign is its numeric id (the primary key of the campaign's row in the database, assigned by
the delivery engine), not its slug, to keep the token short. Unsubscribe and preferences tokens should
carry it so the unsubscribe is recorded with the campaign that prompted it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailer.errors import ConfigError, TokenError

#: Purpose names and their one-byte codes. Codes are part of the format: never reuse or renumber one.
PURPOSES: dict[str, int] = {
    "unsubscribe": 1,
    "preferences": 2,
    "confirm": 3,
    "view": 4,
    # A member's answers to the events of one campaign (the campaign is in the token; the event is in
    # the link, ``/rsvp/{event uid}/TOKEN``: docs/events.md, Tokens).
    "rsvp": 5,
    # A non-member's answer from the public event page, confirmed by the mailed link: the "member id"
    # is the answer's row (``rsvps.id``) and the "campaign" the answer (1 yes, 2 no).
    "rsvp-confirm": 6,
    # A member the desk's preview names, so that their address never sits in a URL (docs/data.md,
    # Audit); never mailed.
    "desk-member": 7,
}
_PURPOSE_NAMES = {code: name for name, code in PURPOSES.items()}

#: Paths of the web app's pages for each purpose: ``link(base_url, purpose, token)``.
LINK_PATHS: dict[str, str] = {"unsubscribe": "/u/", "preferences": "/p/", "confirm": "/c/", "view": "/v/"}

#: The mailto unsubscribe address is ``MAILTO_PREFIX + token + "@" + list_domain``.
MAILTO_PREFIX = "unsubscribe+"

#: The largest member or campaign id a token holds (so the mailto local part stays within 64 octets).
MAX_ID = 2**53 - 1
#: The longest token ``sign`` can produce: 50 characters (62 with ``unsubscribe+``).
MAX_TOKEN_LENGTH = 50

#: What an end user is told for every bad token, whatever check failed.
PUBLIC_MESSAGE = "This link is not valid. It may be incomplete, mistyped or out of date."

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_EPOCH_SECONDS = int(_EPOCH.timestamp())
_MAX_TIME = 2**35 - 1  # seconds after the epoch: beyond the year 3000
_VERSION = 0b01
_HAS_CAMPAIGN = 0b0010_0000
_MAC_SIZE = 8
_MAC_PREFIX = b"mailer-token-v1\0"
_KEY_ID_PREFIX = b"mailer-token-key-id\0"
_FUTURE_SKEW = timedelta(minutes=5)
_TOKEN_RE = re.compile(r"[A-Za-z2-7]{16,64}")


@dataclass(frozen=True)
class TokenData:
    """What a verified token says."""

    purpose: str
    member_id: int
    campaign: int | None
    issued_at: datetime  # aware, UTC, whole seconds
    key_index: int  # which of the keys verified it: 0 is the newest


class InvalidToken(TokenError):
    """A token failed verification. ``str()`` is the same for every cause; ``reason`` is for logs."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(PUBLIC_MESSAGE)


class ExpiredToken(InvalidToken):
    """A genuine token older than the ``max_age`` given to ``verify``; ``data`` is what it says (so
    the web app can offer to mail a fresh link to the member it names, and nothing more)."""

    def __init__(self, reason: str, data: TokenData) -> None:
        self.data = data
        super().__init__(reason)


def sign(
    purpose: str,
    member_id: int,
    *,
    keys: list[str],
    campaign: int | None = None,
    now: datetime | None = None,
) -> str:
    """A token for ``purpose`` (a key of ``PURPOSES``) and ``member_id``, signed with ``keys[0]``.

    ``campaign`` is the campaign's numeric id; ``now`` (aware) is the issue time, default the current time.
    """
    code = _purpose_code(purpose)
    _check_id("member_id", member_id)
    if campaign is not None:
        _check_id("campaign", campaign)
    key = _key_bytes(keys)[0]
    issued = _seconds(now or datetime.now(UTC))
    if not 0 <= issued <= _MAX_TIME:
        raise ValueError(f"issue time {now} is outside the range a token can hold (2024 to 3000)")
    payload = _payload(code, _key_id(key), member_id, campaign, issued)
    return _b32(payload + _mac(key, payload))


def verify(
    token: str,
    purpose: str,
    *,
    keys: list[str],
    max_age: timedelta | None = None,
    now: datetime | None = None,
) -> TokenData:
    """Check ``token`` and return what it says; raise ``InvalidToken`` (a ``TokenError``) if it is
    malformed, forged, truncated, signed by no key in ``keys``, for another purpose, older than
    ``max_age`` (``ExpiredToken``, which carries what the token says) or issued in the future (beyond
    five minutes of clock skew)."""
    expected_code = _purpose_code(purpose)
    key_list = _key_bytes(keys)
    raw = _unb32(token)
    if raw is None or len(raw) < 2 + 3 + _MAC_SIZE:
        raise InvalidToken("malformed: not base32 or too short")
    payload, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
    fmt, key_id = payload[0], payload[1]
    if fmt >> 6 != _VERSION:
        raise InvalidToken(f"malformed: unknown version {fmt >> 6}")
    fields, ok = _read_varints(payload, 2, 3 if fmt & _HAS_CAMPAIGN else 2)
    if not ok:
        raise InvalidToken("malformed: bad or trailing fields")
    matched = None
    for index, key in enumerate(key_list):
        if _key_id(key) == key_id and hmac.compare_digest(_mac(key, payload), mac):
            matched = index
            break
    if matched is None:
        if all(_key_id(key) != key_id for key in key_list):
            raise InvalidToken("unknown key: signed with a key not in the key list (rotated out?)")
        raise InvalidToken("bad signature")
    code = fmt & 0b1_1111
    if code != expected_code:
        raise InvalidToken(f"wrong purpose: {_PURPOSE_NAMES.get(code, code)!r}, expected {purpose!r}")
    member_id, *rest = fields
    campaign = rest[0] if len(rest) == 2 else None
    issued_at = _EPOCH + timedelta(seconds=rest[-1])
    current = now or datetime.now(UTC)
    if issued_at > current + _FUTURE_SKEW:
        raise InvalidToken(f"issued in the future: {issued_at.isoformat()}")
    data = TokenData(_PURPOSE_NAMES[code], member_id, campaign, issued_at, matched)
    if max_age is not None and current - issued_at > max_age:
        raise ExpiredToken(f"expired: issued {issued_at.isoformat()}, max age {max_age}", data)
    return data


def link(base_url: str, purpose: str, token: str) -> str:
    """The web app's URL for ``token``: e.g. ``https://BASE/u/TOKEN`` for an unsubscribe token."""
    return base_url.rstrip("/") + LINK_PATHS[purpose] + token


def mailto_address(token: str, list_domain: str) -> str:
    """The mailto unsubscribe address for ``token``: ``unsubscribe+TOKEN@list_domain``."""
    return f"{MAILTO_PREFIX}{token}@{list_domain}"


def token_from_mailto(address: str, list_domain: str) -> str | None:
    """The token in an ``unsubscribe+TOKEN@list_domain`` address (any case), or None."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if domain.lower() != list_domain.lower() or not local.lower().startswith(MAILTO_PREFIX):
        return None
    return local[len(MAILTO_PREFIX) :] or None


# -- VERP tags: the signed envelope sender of each delivery (docs/decisions.md, VERP tags and signed Message-I
#
# A delivery's envelope sender is ``bounces+<id>-<mac>@<list domain>``: the delivery id in decimal and
# an 80-bit HMAC-SHA256 of the id and the list domain under its own prefix (purpose "verp": no link
# token's MAC can serve as one, nor the reverse), in lower-case base32, 16 characters. Bounces are sent
# to the envelope sender, so a bounce names it; only a holder of the key can make one, so a bounce whose
# tag verifies answers a message we sent. Relays may change the case of a local part: any case
# verifies. The largest id (2**53 - 1) makes a 41-octet local part, within the 64 RFC 5321 allows.
# ``keys[0]`` signs; any key verifies (rotation, as for link tokens). The MAC holds no time, so a
# delivery's tag is the same at every retry (until ``keys[0]`` changes). The same tag is the delivery's
# part of its Message-ID (``mailer.message.message_id``), so a bounce that quotes the returned message's
# Message-ID proves itself the same way (``read_verp_tag``).
#
# Mail that answers no delivery (the web app's system mails, welcomes) is sent from the untagged
# ``bounce_address``: its bounces come back to mailer, and prove nothing.

#: The envelope sender is ``VERP_PREFIX + verp_tag(...) + "@" + list_domain``.
VERP_PREFIX = "bounces+"
_VERP_MAC_PREFIX = b"mailer-verp-v1\0"
_VERP_MAC_SIZE = 10  # 80 bits: 16 base32 characters
_VERP_TAG_RE = re.compile(r"([0-9]{1,16})(?:-([a-z2-7]{16}))?", re.IGNORECASE)


@dataclass(frozen=True)
class VerpTag:
    """What a VERP address says: the delivery id it names and whether its MAC verified."""

    delivery_id: int
    verified: bool
    reason: str = ""  # why it did not verify ("" when it did)


def verp_tag(delivery_id: int, list_domain: str, *, keys: list[str]) -> str:
    """The tag ``<id>-<mac>`` that follows ``bounces+`` for ``delivery_id``, signed with ``keys[0]``:
    one truncated HMAC-SHA256."""
    _check_id("delivery_id", delivery_id)
    return f"{delivery_id}-{_verp_mac(_key_bytes(keys)[0], delivery_id, list_domain)}"


def read_verp(address: str, list_domain: str, *, keys: list[str]) -> VerpTag | None:
    """What the VERP address ``bounces+<id>[-<mac>]@list_domain`` says (any case, with or without
    angle brackets); None for any other address. An address without a MAC (the unsigned form of
    earlier versions) or with a MAC no key in ``keys`` made comes back with ``verified=False``."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if domain.lower() != list_domain.lower() or local[: len(VERP_PREFIX)].lower() != VERP_PREFIX:
        return None
    return read_verp_tag(local[len(VERP_PREFIX) :], list_domain, keys=keys)


def read_verp_tag(tag: str, list_domain: str, *, keys: list[str]) -> VerpTag | None:
    """What the tag ``<id>[-<mac>]`` (of a VERP address or a Message-ID, any case) says for
    ``list_domain``; None if it is not one. Without a MAC, or with one no key in ``keys`` made, it
    comes back with ``verified=False``."""
    match = _VERP_TAG_RE.fullmatch(tag)
    if match is None:
        return None
    delivery_id, mac = int(match.group(1)), match.group(2)
    if mac is None:
        return VerpTag(delivery_id, False, "no signature (the unsigned form anyone can write)")
    if delivery_id > MAX_ID:
        return VerpTag(delivery_id, False, "a delivery id out of range")
    mac = mac.lower()
    for key in _key_bytes(keys):
        if hmac.compare_digest(_verp_mac(key, delivery_id, list_domain), mac):
            return VerpTag(delivery_id, True)
    return VerpTag(delivery_id, False, "a bad signature (not made with any of our keys)")


def bounce_address(list_domain: str) -> str:
    """The untagged bounce address ``bounces@list_domain``: the envelope sender of mail that answers
    no delivery (system mails, welcomes). A bounce sent to it names no delivery, so changes nothing."""
    return f"{VERP_PREFIX[:-1]}@{list_domain}"


def _verp_mac(key: bytes, delivery_id: int, list_domain: str) -> str:
    message = _VERP_MAC_PREFIX + f"{delivery_id}@{list_domain.lower()}".encode("ascii", "replace")
    return _b32(hmac.digest(key, message, "sha256")[:_VERP_MAC_SIZE])


# -- the tokens of many recipients (the send path) -----------------------------------------------------


class RecipientSigner:
    """The unsubscribe token, preferences token and VERP tag of one recipient after another: the same
    strings as ``sign`` and ``verp_tag`` give (same format, so every link verifies as before), with
    the per-key and per-campaign work done once (key bytes and id, campaign and issue-time varints,
    and each MAC's keyed hash state with its fixed prefix: :class:`_KeyedMac`). Each token still has
    its own MAC over its own purpose-bound payload: one HMAC-SHA256 per token.

    ``now`` (aware) is the issue time of every token it signs; without it, the issue time follows
    the clock (the current second), so one signer serves a whole send.
    """

    def __init__(
        self, *, keys: list[str], list_domain: str, campaign: int | None = None, now: datetime | None = None
    ) -> None:
        if campaign is not None:
            _check_id("campaign", campaign)
        key = _key_bytes(keys)[0]
        self._campaign = campaign
        self._fixed = now is not None
        self._issued = -1
        self._tail = b""
        self._set_issued(_seconds(now) if now is not None else int(time.time()) - _EPOCH_SECONDS, now)
        key_id = _key_id(key)
        flag = _HAS_CAMPAIGN if campaign is not None else 0
        self._unsubscribe = bytes(((_VERSION << 6) | PURPOSES["unsubscribe"] | flag, key_id))
        self._preferences = bytes(((_VERSION << 6) | PURPOSES["preferences"] | flag, key_id))
        self._unsubscribe_mac = _KeyedMac(key, _MAC_PREFIX + self._unsubscribe)
        self._preferences_mac = _KeyedMac(key, _MAC_PREFIX + self._preferences)
        self._rsvp = bytes(((_VERSION << 6) | PURPOSES["rsvp"] | flag, key_id))
        self._rsvp_mac = _KeyedMac(key, _MAC_PREFIX + self._rsvp)
        self._verp_mac = _KeyedMac(key, _VERP_MAC_PREFIX)
        self._verp_suffix = f"@{list_domain.lower()}".encode("ascii", "replace")

    def _set_issued(self, issued: int, now: datetime | None = None) -> None:
        """The issue time's varint (and the campaign's before it), made once per second."""
        if not 0 <= issued <= _MAX_TIME:
            raise ValueError(f"issue time {now} is outside the range a token can hold (2024 to 3000)")
        tail = bytearray()
        if self._campaign is not None:
            _write_varint(tail, self._campaign)
        _write_varint(tail, issued)
        self._tail = bytes(tail)
        self._issued = issued

    def links(self, member_id: int) -> tuple[str, str]:
        """(unsubscribe token, preferences token) of ``member_id``."""
        _check_id("member_id", member_id)
        if not self._fixed:
            issued = int(time.time()) - _EPOCH_SECONDS
            if issued != self._issued:
                self._set_issued(issued)
        ids = bytearray()
        _write_varint(ids, member_id)
        ids += self._tail
        return (
            _b32(self._unsubscribe + ids + self._unsubscribe_mac.mac(ids)[:_MAC_SIZE]),
            _b32(self._preferences + ids + self._preferences_mac.mac(ids)[:_MAC_SIZE]),
        )

    def rsvp(self, member_id: int) -> str:
        """The RSVP token of ``member_id`` (``sign("rsvp", member_id, campaign=…)``), issued at the
        second of the last ``links`` call: one more HMAC, made only for a message with events."""
        ids = bytearray()
        _write_varint(ids, member_id)
        ids += self._tail
        return _b32(self._rsvp + ids + self._rsvp_mac.mac(ids)[:_MAC_SIZE])

    def verp_tag(self, delivery_id: int) -> str:
        """``verp_tag(delivery_id, list_domain, keys=keys)``."""
        _check_id("delivery_id", delivery_id)
        mac = self._verp_mac.mac(b"%d" % delivery_id + self._verp_suffix)
        return f"{delivery_id}-{_b32(mac[:_VERP_MAC_SIZE])}"


# -- internals ---------------------------------------------------------------------------------------


def _purpose_code(purpose: str) -> int:
    try:
        return PURPOSES[purpose]
    except KeyError:
        raise ValueError(f"unknown token purpose {purpose!r}; known: {', '.join(PURPOSES)}") from None


def _check_id(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ValueError(f"{name} must be an int from 0 to {MAX_ID}, got {value!r}")


def _key_bytes(keys: list[str]) -> list[bytes]:
    out = [k.encode("utf-8") for k in keys if k]
    if not out:
        raise ConfigError(
            "no key for signed links",
            field="secret",
            hint="set MAILER_SECRET (several, comma-separated, newest first) or create .mailer-secret",
        )
    return out


def _key_id(key: bytes) -> int:
    return hashlib.sha256(_KEY_ID_PREFIX + key).digest()[0]


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, _MAC_PREFIX + payload, "sha256")[:_MAC_SIZE]


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return int(moment.timestamp()) - _EPOCH_SECONDS


def _payload(code: int, key_id: int, member_id: int, campaign: int | None, issued: int) -> bytes:
    fmt = (_VERSION << 6) | code | (_HAS_CAMPAIGN if campaign is not None else 0)
    out = bytearray((fmt, key_id))
    for value in (member_id, campaign, issued):
        if value is not None:
            _write_varint(out, value)
    return bytes(out)


def _write_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_varints(data: bytes, pos: int, count: int) -> tuple[list[int], bool]:
    """``count`` canonical varints from ``data[pos:]``, which must be used up exactly."""
    values: list[int] = []
    for _ in range(count):
        value = shift = 0
        while True:
            if pos >= len(data) or shift > 56:
                return values, False
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if byte == 0 and shift > 7:  # a padded (non-canonical) varint
                    return values, False
                break
        values.append(value)
    ok = pos == len(data) and values[0] <= MAX_ID and (count == 2 or values[1] <= MAX_ID)
    return values, ok and values[-1] <= _MAX_TIME


_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648's base32, lower case
_B32_PAIRS = [a + b for a in _B32_ALPHABET for b in _B32_ALPHABET]  # every 10 bits as two characters
_B32_PLANS: dict[int, tuple[int, tuple[int, ...], int]] = {}


def _b32(data: bytes) -> str:
    """``data`` in lower-case base32 without padding: what ``base64.b32encode`` gives, lower-cased and
    stripped of "=", but made of one integer and two characters per table lookup (the standard
    library's is pure Python in 3.11 and was a tenth of a send's filling time)."""
    size = len(data)
    plan = _B32_PLANS.get(size)
    if plan is None:
        chars = (size * 8 + 4) // 5
        pairs = (chars + 1) // 2
        plan = _B32_PLANS[size] = (pairs * 10 - size * 8, tuple(range(10 * (pairs - 1), -1, -10)), chars)
    pad, shifts, chars = plan
    value = int.from_bytes(data, "big") << pad
    pairs_table = _B32_PAIRS
    return "".join([pairs_table[(value >> shift) & 1023] for shift in shifts])[:chars]


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class _KeyedMac:
    """HMAC-SHA256 (RFC 2104) under one key, with the key's two padded blocks, and a fixed start of
    every message, hashed once: a MAC then costs two hash-state copies instead of four compressions
    and a key set-up. ``mac(m)`` equals ``hmac.digest(key, prefix + m, "sha256")``."""

    def __init__(self, key: bytes, prefix: bytes = b"") -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._inner.update(prefix)
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def mac(self, message: bytes | bytearray) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _unb32(token: str) -> bytes | None:
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        return None
    text = token.upper()
    if len(text) % 8 in (1, 3, 6):  # lengths no whole number of bytes encodes to
        return None
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except binascii.Error:
        return None
    # Refuse a second spelling of the same bytes (non-zero padding bits).
    return raw if _b32(raw) == text.lower() else None
