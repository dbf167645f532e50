"""Email addresses: validation (email-validator, no DNS), normalisation, and the suppression hash
(keyed: docs/data.md, The suppression hash)."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from mailer.errors import ConfigError, InvalidInput, Problem
from mailer.secret_key import ADDRESS_KEYS_INFO, AddressKeys


def normalise(address: str) -> str:
    """The canonical form of ``address``: validated, Unicode NFC, lower case, IDNA domain in ASCII.

    Raises ``InvalidInput`` with the reason when the address is not one we can mail.
    """
    raw = unicodedata.normalize("NFC", address.strip())
    try:
        info = validate_email(raw, check_deliverability=False, allow_quoted_local=True)
    except EmailNotValidError as exc:
        raise InvalidInput([Problem(f"invalid address {address!r}: {exc}", field="email")]) from exc
    local = info.local_part.lower()
    domain = info.ascii_domain.lower()
    return f"{local}@{domain}"


NON_ASCII_LOCAL_PART = (
    "non-ASCII local part: mailer sends without SMTPUTF8; ask the member for an ASCII address"
)


def is_mailable(normalised: str) -> bool:
    """Whether mailer can send to ``normalised`` (a result of ``normalise``): its local part, the part
    before the ``@``, is ASCII. The domain is always ASCII after ``normalise`` (IDNA)."""
    return normalised.isascii()


def mailable(address: str) -> str:
    """``normalise(address)``, refusing an address mailer cannot send to: one whose local part is not
    ASCII (``josé@example.org`` needs SMTPUTF8, which mailer does not use). Raises ``InvalidInput``
    with the reason. Everything that adds a member (the import, the sign-up form) checks this, so
    that no member is added only to be skipped at every send."""
    normalised = normalise(address)
    if not is_mailable(normalised):
        raise InvalidInput([Problem(NON_ASCII_LOCAL_PART, field="email")])
    return normalised


# --- the suppression hash (docs/data.md, The suppression hash) ----------------------------------
#
# A suppression, a member's row and the consent log are keyed by a hash of the normalised address.
# It outlives an erased member's data, so it must not be recomputable by whoever knows an address:
# it is an HMAC-SHA256 under a key of its own (.mailer-address-key, beside .mailer-secret; made by
# `mailer init`, `mailer serve` and `mailer secret rotate-address-key`). The database carries the key
# it was opened with (``open_database(settings)`` puts it in every session's ``info``), and
# ``address_hash`` below is the one function that makes the hash: every caller goes through it.
#
# Rotation and the hashes made before the key: the newest key hashes; the members' hashes (and the
# suppressions, consent lines and bounces under them) are made again under it the first time a
# session needs a hash after the key changed (``rehash.bring_up_to_date``, recorded in
# ``address_key_state``). A forgotten person's suppression cannot be made again (nobody knows the
# address), so it stays under the key of its day, or the old unkeyed SHA-256, and ``hash_candidates``
# checks those too, for as long as such rows are left.

_LEGACY_PREFIX = b"mailer-address-v1:"


def keyed_hash(key: bytes, normalised: str) -> str:
    """The HMAC-SHA256 of ``normalised`` under ``key``: the one computation of the suppression hash
    (``address_hash`` calls it with the newest key, ``hash_candidates`` with each)."""
    return hmac.new(key, normalised.encode("utf-8"), "sha256").hexdigest()


def keys_of(session: Session) -> AddressKeys:
    """The keys ``session``'s database was opened with, its members rehashed under the newest first
    if the key changed since. Raises ``ConfigError`` for a database opened by URL alone."""
    keys = session.info.get(ADDRESS_KEYS_INFO)
    if not isinstance(keys, AddressKeys) or not keys.keys:
        raise ConfigError(
            "this database was opened without the workspace's key of the suppression hash",
            field="MAILER_ADDRESS_KEY",
            hint="open it with the workspace's settings (open_database(settings)); `mailer init`, "
            "`mailer serve` or `mailer secret rotate-address-key` writes .mailer-address-key",
        )
    if not keys.up_to_date:
        from mailer.audience.rehash import bring_up_to_date

        bring_up_to_date(session, keys, lambda normalised: keyed_hash(keys.keys[0], normalised))
    return keys


def address_hash(session: Session, normalised: str) -> str:
    """The hash that keys the suppression of ``normalised`` (a result of ``normalise``): an
    HMAC-SHA256 under the workspace's newest address key. It outlives an erased member's data."""
    return keyed_hash(keys_of(session).keys[0], normalised)


def hash_of(session: Session, address: str) -> str:
    """Normalise ``address`` and return its suppression hash."""
    return address_hash(session, normalise(address))


def hash_candidates(session: Session, normalised: str) -> list[str]:
    """Every hash the suppression of ``normalised`` may be stored under: the newest key's first, then
    the older keys', then the unkeyed SHA-256 of the hashes made before keys (a forgotten person's)."""
    out = [keyed_hash(key, normalised) for key in keys_of(session).keys]
    out.append(hashlib.sha256(_LEGACY_PREFIX + normalised.encode("utf-8")).hexdigest())
    return out


_CONTROL = {"Cc", "Cf", "Zl", "Zp"}


def clean_name(name: str) -> str:
    """A display name safe for headers and pages: control characters (CR, LF, NUL, …) become spaces,
    runs of white space fold to one, and the ends are trimmed."""
    chars = [" " if unicodedata.category(c) in _CONTROL else c for c in name]
    return " ".join("".join(chars).split())


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(c) in _CONTROL for c in text)
