"""Optional desk passwords, hashed with Argon2id (``argon2-cffi``).

The mailed link always works; a person may also set a password on their desk page and then sign in
with it. Only the Argon2id hash is stored (``users.password_hash``), with OWASP's parameters
(19 MiB, 2 passes, 1 lane). Checking a password for an address without one (or for no person at
all) still runs one Argon2 verification, against a hash of nothing, so how long the answer takes
tells nobody which addresses have accounts. Attempts are limited by the desk's pages, per client
network and per address (``mailer.web.desk.signin``).
"""

from __future__ import annotations

from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.desk import audit
from mailer.errors import InvalidInput, Problem
from mailer.models import User

MIN_LENGTH = 12
MAX_LENGTH = 200

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_NOTHING = _HASHER.hash("mailer: a password nobody has")


def problem(password: str, *, email: str = "") -> str | None:
    """Why ``password`` will not do, for a person, or None when it will."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters: a few words you will remember make a good one."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if email and password.strip().lower() == email.strip().lower():
        return "Your password cannot be your email address."
    if any(c < " " or c == "\x7f" for c in password):
        return "Use letters, digits, spaces and punctuation only."
    return None


def set_password(session: Session, user_id: int, password: str, *, now: datetime) -> None:
    """Store the hash of ``password`` as ``user_id``'s (InvalidInput if it will not do)."""
    user = session.get(User, user_id)
    if user is None:
        raise InvalidInput([Problem("no such person", field="user")])
    why = problem(password, email=user.email)
    if why:
        raise InvalidInput([Problem(why, field="password")])
    user.password_hash = _HASHER.hash(password)
    audit.record(session, "password.set", by=user_id, object=user.email, now=now)


def clear_password(session: Session, user_id: int, *, now: datetime) -> None:
    """Forget ``user_id``'s password: only the mailed link signs them in again."""
    user = session.get(User, user_id)
    if user is not None and user.password_hash:
        user.password_hash = None
        audit.record(session, "password.remove", by=user_id, object=user.email, now=now)


def stored(session: Session, address: str) -> tuple[int | None, str]:
    """The enabled person at ``address`` (normalised) and their password hash ("" for none)."""
    row = session.execute(
        select(User.id, User.password_hash).where(User.email == address, User.disabled_at.is_(None))
    ).first()
    if row is None:
        return None, ""
    return row[0], row[1] or ""


def verify(user_id: int | None, password_hash: str, password: str) -> int | None:
    """``user_id`` if ``password`` matches ``password_hash``, else None. Always one Argon2 run."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        _HASHER.verify(password_hash or _NOTHING, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return user_id if password_hash else None
