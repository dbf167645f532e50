"""The sign-up confirmation token: a pending sign-up carried, encrypted, in the confirmation link.

Double opt-in without a table of pending sign-ups: ``/subscribe`` seals what the person entered
(address, name, region, postcode, interests, the consent wording they were shown, the network it is
to and the form it came from) into a token and
mails the link ``/confirm/TOKEN`` to the address; nothing is stored until they confirm from it.

The token is a Fernet token (AES-128-CBC + HMAC-SHA256, from ``cryptography``): authenticated, so it
cannot be forged or altered, and encrypted, so the address is never in the link in clear. Its keys
are derived with HKDF from ``Settings.secrets`` (the first encrypts, any decrypts: rotation works as
for the other tokens). It expires after ``MAX_AGE``.
"""

from __future__ import annotations

import base64
import json
import zlib
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailer import tokens
from mailer.audience.consent import SignupData
from mailer.errors import ConfigError

MAX_AGE = timedelta(days=7)
_INFO = b"mailer-signup-confirm-v1"


def _fernet(keys: list[str]) -> MultiFernet:
    if not [k for k in keys if k]:
        raise ConfigError("no key for signed links", field="secret", hint="set MAILER_SECRET")
    derived = []
    for key in keys:
        if not key:
            continue
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.encode())
        derived.append(Fernet(base64.urlsafe_b64encode(raw)))
    return MultiFernet(derived)


def seal(data: SignupData, *, keys: list[str]) -> str:
    """The confirmation token for ``data`` (its ``issued_at`` is the token's time)."""
    body = {
        "e": data.email,
        "n": data.name,
        "r": data.region,
        "p": data.postcode,
        "i": list(data.interests),
        "w": data.wording,
        "k": data.network,
        "f": data.form,
    }
    packed = zlib.compress(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), 9)
    token = _fernet(keys).encrypt_at_time(packed, int(data.issued_at.timestamp()))
    return token.decode("ascii").rstrip("=")


def unseal(
    token: str, *, keys: list[str], max_age: timedelta = MAX_AGE, now: datetime | None = None
) -> SignupData:
    """What a confirmation token carries; raise ``TokenError`` if it is forged, altered or expired."""
    current = int((now or datetime.now(UTC)).timestamp())
    fernet = _fernet(keys)
    try:
        raw = (token + "=" * (-len(token) % 4)).encode("ascii")
        packed = fernet.decrypt_at_time(raw, int(max_age.total_seconds()), current)
        issued = fernet.extract_timestamp(raw)
        body = json.loads(zlib.decompress(packed))
        return SignupData(
            email=str(body["e"]),
            name=str(body["n"]),
            region=None if body["r"] is None else str(body["r"]),
            postcode=str(body["p"]),
            interests=tuple(str(i) for i in body["i"]),
            wording=str(body["w"]),
            issued_at=datetime.fromtimestamp(issued, UTC),
            network=str(body.get("k", "")),
            form=str(body.get("f", "page")),
        )
    except (InvalidToken, UnicodeError, ValueError, KeyError, TypeError, zlib.error) as exc:
        raise tokens.InvalidToken(f"confirmation token: {type(exc).__name__}") from None
