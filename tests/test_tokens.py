"""Signed link tokens: round trips, key rotation, and every way a token can be bad."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from mailer import tokens
from mailer.errors import ConfigError, TokenError
from mailer.settings import Settings
from mailer.tokens import MAILTO_PREFIX, MAX_ID, PUBLIC_MESSAGE, InvalidToken, sign, verify

KEYS = ["new-key-2025", "old-key-2024"]
NOW = datetime(2025, 11, 17, 9, 30, tzinfo=UTC)


def reason_of(token: str, purpose: str = "unsubscribe", **kw: object) -> str:
    with pytest.raises(TokenError) as info:
        verify(token, purpose, **{"keys": KEYS, "now": NOW, **kw})  # type: ignore[arg-type]
    exc = info.value
    assert isinstance(exc, InvalidToken)
    assert str(exc) == PUBLIC_MESSAGE  # the same words whatever failed
    return exc.reason


@pytest.mark.parametrize("purpose", sorted(tokens.PURPOSES))
@pytest.mark.parametrize("campaign", [None, 0, 42, 70_000])
def test_round_trip(purpose: str, campaign: int | None) -> None:
    token = sign(purpose, 325_000, keys=KEYS, campaign=campaign, now=NOW)
    data = verify(token, purpose, keys=KEYS, now=NOW + timedelta(days=400))
    assert data == tokens.TokenData(purpose, 325_000, campaign, NOW, 0)


def test_tokens_are_url_safe_and_case_insensitive() -> None:
    token = sign("unsubscribe", 7, keys=KEYS, campaign=3, now=NOW)
    assert token == token.lower() and token.isalnum() and token.isascii()
    assert "=" not in token
    assert verify(token.upper(), "unsubscribe", keys=KEYS, now=NOW).member_id == 7
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(token))
    assert verify(mixed, "unsubscribe", keys=KEYS, now=NOW).campaign == 3


def test_mailto_local_part_fits_64_octets() -> None:
    typical = sign("unsubscribe", 325_000, keys=KEYS, campaign=42, now=NOW)
    assert len(MAILTO_PREFIX + typical) == 41
    far = datetime(2999, 12, 31, tzinfo=UTC)
    worst = sign("unsubscribe", MAX_ID, keys=KEYS, campaign=MAX_ID, now=far)
    assert len(worst) == tokens.MAX_TOKEN_LENGTH
    assert len(MAILTO_PREFIX + worst) <= 64
    assert verify(worst, "unsubscribe", keys=KEYS, now=far).member_id == MAX_ID
    address = tokens.mailto_address(worst, "lists.example.org")
    assert address == f"unsubscribe+{worst}@lists.example.org"
    assert tokens.token_from_mailto(address.upper(), "lists.example.org") == worst.upper()
    assert tokens.token_from_mailto(f"<{address}>", "LISTS.example.org") == worst
    assert tokens.token_from_mailto(address, "other.example.org") is None
    assert tokens.token_from_mailto("bounces+1@lists.example.org", "lists.example.org") is None


def test_links() -> None:
    assert tokens.link("https://news.example.org/", "unsubscribe", "abc") == "https://news.example.org/u/abc"
    assert tokens.link("https://x.org/m", "preferences", "abc") == "https://x.org/m/p/abc"


def test_rotation() -> None:
    old = sign("preferences", 12, keys=["old-key-2024"], now=NOW)
    data = verify(old, "preferences", keys=KEYS, now=NOW)
    assert data.member_id == 12 and data.key_index == 1
    new = sign("preferences", 12, keys=KEYS, now=NOW)
    assert verify(new, "preferences", keys=["new-key-2025"], now=NOW).key_index == 0
    assert reason_of(old, "preferences", keys=["new-key-2025"]).startswith("unknown key")


def test_keys_from_settings() -> None:
    settings = Settings(secret="new-key-2025, old-key-2024")
    token = sign("view", 1, keys=["old-key-2024"], now=NOW)
    assert verify(token, "view", keys=settings.secrets, now=NOW).key_index == 1


def test_every_changed_character_is_refused() -> None:
    token = sign("unsubscribe", 325_000, keys=KEYS, campaign=42, now=NOW)
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    for i, char in enumerate(token):
        for other in alphabet:
            if other != char:
                reason_of(token[:i] + other + token[i + 1 :])


def test_truncated_and_extended_tokens_are_refused() -> None:
    token = sign("unsubscribe", 325_000, keys=KEYS, campaign=42, now=NOW)
    for n in range(len(token)):
        reason_of(token[:n])
    for extra in ("a", "aa", "aaaaaaaa", "q"):
        reason_of(token + extra)


def test_other_purpose_is_refused() -> None:
    token = sign("preferences", 5, keys=KEYS, now=NOW)
    assert reason_of(token, "unsubscribe").startswith("wrong purpose")
    assert reason_of(token, "confirm").startswith("wrong purpose")


def test_expired_and_future_tokens_are_refused() -> None:
    token = sign("confirm", 5, keys=KEYS, now=NOW)
    day = timedelta(days=1)
    assert verify(token, "confirm", keys=KEYS, max_age=day, now=NOW + day).member_id == 5
    assert reason_of(token, "confirm", max_age=day, now=NOW + day + timedelta(seconds=1)).startswith(
        "expired"
    )
    assert reason_of(token, "confirm", now=NOW - timedelta(hours=1)).startswith("issued in the future")
    assert verify(token, "confirm", keys=KEYS, now=NOW - timedelta(minutes=4)).member_id == 5


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!!",
        "a" * 30,
        "A" * 500,
        "zoë" * 10,
        "mfyg====",
        "aaaaaaaa aaaaaaaaaaaaaaaa",
        "0" * 29,
        "1" * 29,
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    reason_of(token)


def _forge(payload: bytes, key: str = KEYS[0]) -> str:
    """A token built by hand from the documented format, with a valid MAC."""
    mac = hmac.new(key.encode(), b"mailer-token-v1\0" + payload, hashlib.sha256).digest()[:8]
    return base64.b32encode(payload + mac).decode().rstrip("=").lower()


def test_documented_format() -> None:
    key_id = hashlib.sha256(b"mailer-token-key-id\0" + KEYS[0].encode()).digest()[0]
    seconds = int((NOW - datetime(2024, 1, 1, tzinfo=UTC)).total_seconds())
    varint = bytearray()
    value = seconds
    while value > 0x7F:
        varint.append((value & 0x7F) | 0x80)
        value >>= 7
    varint.append(value)
    payload = bytes([0b0110_0001, key_id, 5, 42, *varint])  # v1, has campaign, unsubscribe
    assert _forge(payload) == sign("unsubscribe", 5, keys=KEYS, campaign=42, now=NOW)
    # The same fields with a padded (non-canonical) varint, or trailing bytes, are refused even
    # with a valid MAC: one token per meaning.
    padded = bytes([0b0110_0001, key_id, 0x85, 0x00, 42, *varint])
    assert reason_of(_forge(padded)).startswith("malformed")
    assert reason_of(_forge(payload + b"\0")).startswith("malformed")
    assert reason_of(_forge(bytes([0b1010_0001, *payload[1:]]))).startswith("malformed: unknown version")


def test_bad_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="unknown token purpose"):
        sign("delete-everything", 1, keys=KEYS)
    with pytest.raises(ValueError, match="unknown token purpose"):
        verify("abc", "delete-everything", keys=KEYS)
    for bad in (-1, MAX_ID + 1, True):
        with pytest.raises(ValueError, match="member_id"):
            sign("view", bad, keys=KEYS)
    with pytest.raises(ValueError, match="aware"):
        sign("view", 1, keys=KEYS, now=datetime(2025, 1, 1))
    with pytest.raises(ConfigError, match="no key"):
        sign("view", 1, keys=[])
    with pytest.raises(ConfigError, match="no key"):
        verify("abc", "view", keys=["", ""])


def test_fast_base32_is_rfc4648_base32_lower_case_unpadded() -> None:
    """The send path's base32 (an integer and a pair table) spells every length as the standard
    library does: tokens made before it verify, and its tokens verify anywhere."""
    data = hashlib.sha512(b"base32 samples").digest() * 2
    for size in range(0, 80):
        for sample in (data[:size], b"\0" * size, b"\xff" * size):
            expected = base64.b32encode(sample).decode("ascii").rstrip("=").lower()
            assert tokens._b32(sample) == expected, size


@pytest.mark.parametrize("key_size", [0, 1, 32, 63, 64, 65, 200])
def test_keyed_mac_is_hmac_sha256(key_size: int) -> None:
    """The prepared MAC of the send path is HMAC-SHA256 of the prefix and message, for keys shorter
    than, equal to and longer than SHA-256's block (a long key is hashed first, RFC 2104)."""
    key = bytes(range(256))[:key_size] if key_size <= 256 else b""
    for prefix in (b"", b"mailer-token-v1\0\x61\x07"):
        mac = tokens._KeyedMac(key, prefix)
        for message in (b"", b"x", bytes(range(100)) * 3):
            assert mac.mac(message) == hmac.digest(key, prefix + message, "sha256")
            assert mac.mac(message) == mac.mac(message)  # the prepared state is copied, never spent


def test_a_verp_tag_reads_the_same_alone_as_in_its_address() -> None:
    """The tag of a Message-ID (``read_verp_tag``) verifies as its VERP address does: signed with no
    time (the same at every retry), with any key of the list, in any case; a made-up MAC, a tag
    without one, another domain's or one that is not a tag says so."""
    domain = "lists.example.org"
    tag = tokens.verp_tag(1003, domain, keys=KEYS)
    assert tag == tokens.verp_tag(1003, domain, keys=KEYS) == tokens.verp_tag(1003, domain, keys=KEYS[:1])
    assert tag == tokens.RecipientSigner(keys=KEYS, list_domain=domain, campaign=42).verp_tag(1003)
    address = f"{tokens.VERP_PREFIX}{tag}@{domain}"
    for spelling in (tag, tag.upper()):
        assert tokens.read_verp_tag(spelling, domain, keys=KEYS) == tokens.VerpTag(1003, True)
    assert tokens.read_verp(address, domain, keys=KEYS) == tokens.VerpTag(1003, True)
    old = tokens.verp_tag(1003, domain, keys=KEYS[1:])  # before a rotation: still verifies
    assert tokens.read_verp_tag(old, domain, keys=KEYS) == tokens.VerpTag(1003, True)
    bad = tokens.VerpTag(1003, False, "a bad signature (not made with any of our keys)")
    assert tokens.read_verp_tag(old, domain, keys=["another-key"]) == bad
    unsigned = tokens.read_verp_tag("1003", domain, keys=KEYS)
    assert unsigned is not None and not unsigned.verified and "no signature" in unsigned.reason
    assert tokens.read_verp_tag("1003-aaaaaaaaaaaaaaaa", domain, keys=KEYS) == bad
    assert tokens.read_verp_tag(tag, "other.example.org", keys=KEYS) == bad
    for not_a_tag in ("", "x1003", "1003-", "1003-short", f"{tag}.slug", "12345678901234567-" + "a" * 16):
        assert tokens.read_verp_tag(not_a_tag, domain, keys=KEYS) is None, not_a_tag
    # Mail that answers no delivery goes out from the untagged address, which names nothing.
    assert tokens.bounce_address(domain) == "bounces@lists.example.org"
    assert tokens.read_verp(tokens.bounce_address(domain), domain, keys=KEYS) is None
