"""Email addresses: validation (email-validator, no DNS), normalisation, and the suppression hash."""

from __future__ import annotations

import hashlib
import unicodedata

from email_validator import EmailNotValidError, validate_email

from mailer.errors import InvalidInput, Problem

_HASH_PREFIX = b"mailer-address-v1:"


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


def address_hash(normalised: str) -> str:
    """The SHA-256 hex digest that keys suppressions; it outlives an erased member's data."""
    return hashlib.sha256(_HASH_PREFIX + normalised.encode("utf-8")).hexdigest()


def hash_of(address: str) -> str:
    """Normalise ``address`` and return its suppression hash."""
    return address_hash(normalise(address))


_CONTROL = {"Cc", "Cf", "Zl", "Zp"}


def clean_name(name: str) -> str:
    """A display name safe for headers and pages: control characters (CR, LF, NUL, …) become spaces,
    runs of white space fold to one, and the ends are trimmed."""
    chars = [" " if unicodedata.category(c) in _CONTROL else c for c in name]
    return " ".join("".join(chars).split())


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(c) in _CONTROL for c in text)
