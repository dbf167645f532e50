"""Signing in to the desk: one-time links and server-side sessions.

- A **sign-in link** carries a random token (32 bytes, URL-safe); the database keeps only its
  SHA-256 (``sign_in_links``). It works once (``consume_link`` marks it used in the same statement
  that checks it, so two clicks at once cannot both sign in) and for ``LINK_LIFETIME`` (15 minutes).
  Opening the link (GET) changes nothing: mail scanners that fetch links do not use it up; the
  page's button (POST) signs in.
- A **session** is a random 32-byte value in a cookie; the database keeps only its SHA-256 as the
  session's id (``desk_sessions``), so a copy of the database signs nobody in. Every request looks
  the session up, so a revoked one is refused at once. It lasts ``IDLE`` after the last request
  (sliding; ``last_seen_at`` is brought forward at most every ``TOUCH_EVERY``), and never longer
  than ``MAX_AGE`` after sign-in.
- The **cookie** is ``__Host-mailer_desk`` (Secure, Path=/, no Domain) when the base URL is https,
  ``mailer_desk`` otherwise; HttpOnly, SameSite=Lax (set by the desk's pages, ``mailer.web.desk.common``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mailer.desk import audit
from mailer.models import DeskSession, SignInLink, User
from mailer.settings import Settings

LINK_LIFETIME = timedelta(minutes=15)
IDLE = timedelta(hours=12)
MAX_AGE = timedelta(days=14)
TOUCH_EVERY = timedelta(minutes=5)
USER_AGENT_LIMIT = 300

SECURE_COOKIE = "__Host-mailer_desk"
PLAIN_COOKIE = "mailer_desk"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: str) -> bool:
    """Whether ``token`` has the shape of a link token or session value (before any lookup)."""
    return bool(_TOKEN.fullmatch(token))


# ---------------------------------------------------------------------------------------------
# Sign-in links


def issue_link(session: Session, user_id: int, *, now: datetime) -> str:
    """A new one-time sign-in token for ``user_id``, valid for ``LINK_LIFETIME``. Links that ended
    more than a day ago are deleted as new ones are made."""
    session.execute(delete(SignInLink).where(SignInLink.expires_at < now - timedelta(days=1)))
    token = secrets.token_urlsafe(32)
    session.add(
        SignInLink(token_hash=_hash(token), user_id=user_id, created_at=now, expires_at=now + LINK_LIFETIME)
    )
    session.flush()
    return token


def link_user(session: Session, token: str, *, now: datetime) -> User | None:
    """The (enabled) person a still-usable link is for, or None. Changes nothing."""
    if not well_formed(token):
        return None
    row = session.get(SignInLink, _hash(token))
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.disabled_at is None else None


def consume_link(session: Session, token: str, *, now: datetime) -> int | None:
    """Use the link up: the user id it signs in, or None if it is unknown, used, expired or its
    person disabled. Checked and marked in one UPDATE, so only one of two racing requests wins."""
    if not well_formed(token):
        return None
    digest = _hash(token)
    done = session.execute(
        update(SignInLink)
        .where(SignInLink.token_hash == digest, SignInLink.used_at.is_(None), SignInLink.expires_at > now)
        .values(used_at=now)
    )
    if getattr(done, "rowcount", 0) != 1:
        return None
    user_id = session.scalar(select(SignInLink.user_id).where(SignInLink.token_hash == digest))
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or user.disabled_at is not None:
        return None
    return user.id


# ---------------------------------------------------------------------------------------------
# Sessions


def create(session: Session, user_id: int, *, now: datetime, user_agent: str = "") -> str:
    """A new session for ``user_id``: the value for the cookie (stored only as its hash)."""
    value = secrets.token_urlsafe(32)
    agent = "".join(c if " " <= c < "\x7f" else "?" for c in user_agent)[:USER_AGENT_LIMIT]
    session.add(
        DeskSession(
            id=_hash(value),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=min(now + IDLE, now + MAX_AGE),
            user_agent=agent,
        )
    )
    session.flush()
    return value


@dataclass(frozen=True)
class Current:
    """A live session: its id (the hash), its person, and whether it is due a touch."""

    id: str
    user_id: int
    created_at: datetime
    last_seen_at: datetime

    @property
    def short(self) -> str:
        """A part of the id that names the session in CSRF scopes (never the cookie's value)."""
        return self.id[:24]


def lookup(session: Session, value: str, *, now: datetime) -> Current | None:
    """The live session the cookie ``value`` names, or None: unknown, revoked, expired, or its
    person disabled. Changes nothing."""
    if not well_formed(value):
        return None
    row = session.execute(
        select(DeskSession, User.disabled_at)
        .join(User, User.id == DeskSession.user_id)
        .where(DeskSession.id == _hash(value))
    ).first()
    if row is None:
        return None
    found, disabled_at = row
    if found.revoked_at is not None or found.expires_at <= now or disabled_at is not None:
        return None
    return Current(found.id, found.user_id, found.created_at, found.last_seen_at)


def due_touch(current: Current, now: datetime) -> bool:
    return now - current.last_seen_at >= TOUCH_EVERY


def touch(session: Session, session_id: str, *, now: datetime) -> None:
    """Slide the session's expiry: ``IDLE`` from now, capped at ``MAX_AGE`` after sign-in."""
    row = session.get(DeskSession, session_id)
    if row is None or row.revoked_at is not None:
        return
    row.last_seen_at = now
    row.expires_at = min(now + IDLE, row.created_at + MAX_AGE)


def revoke(session: Session, session_id: str, *, now: datetime) -> bool:
    """End one session (signing out). Whether it was live."""
    done = session.execute(
        update(DeskSession)
        .where(DeskSession.id == session_id, DeskSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(getattr(done, "rowcount", 0))


def revoke_all(session: Session, user_id: int, *, now: datetime, by: int | None, via: str = "desk") -> int:
    """End every session of ``user_id`` (and every unused sign-in link); how many sessions were
    live. Written to the audit log."""
    done = session.execute(
        update(DeskSession)
        .where(DeskSession.user_id == user_id, DeskSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.execute(
        update(SignInLink)
        .where(SignInLink.user_id == user_id, SignInLink.used_at.is_(None))
        .values(used_at=now)
    )
    count = int(getattr(done, "rowcount", 0) or 0)
    email = session.scalar(select(User.email).where(User.id == user_id)) or str(user_id)
    audit.record(session, "sessions.revoke", by=by, object=email, detail=f"{count} ended via {via}", now=now)
    return count


def live_count(session: Session, user_id: int, *, now: datetime) -> int:
    """How many sessions of ``user_id`` are live."""
    rows = session.scalars(
        select(DeskSession.id).where(
            DeskSession.user_id == user_id, DeskSession.revoked_at.is_(None), DeskSession.expires_at > now
        )
    )
    return len(list(rows))


# ---------------------------------------------------------------------------------------------
# The cookie


def cookie_name(settings: Settings) -> str:
    return SECURE_COOKIE if settings.base_url.startswith("https://") else PLAIN_COOKIE


# ---------------------------------------------------------------------------------------------
# Signing in and out, each one transaction with its audit line


def mail_link(session: Session, address: str, *, now: datetime) -> str | None:
    """A sign-in link's token for the enabled person at ``address`` (normalised), or None when
    there is nobody: the caller answers the same either way."""
    user = session.scalar(select(User).where(User.email == address, User.disabled_at.is_(None)))
    if user is None:
        return None
    token = issue_link(session, user.id, now=now)
    audit.record(session, "sign-in.link", by=None, object=address, detail="link mailed", now=now)
    return token


def start_with_password(
    session: Session, user_id: int, address: str, *, now: datetime, user_agent: str = ""
) -> str:
    """A session for ``user_id`` whose password was verified (``passwords.verify``)."""
    value = create(session, user_id, now=now, user_agent=user_agent)
    audit.record(session, "sign-in", by=user_id, object=address, detail="password", now=now)
    return value


def start_with_link(
    session: Session, token: str, *, now: datetime, user_agent: str = "", ending: str | None = None
) -> str | None:
    """Use the sign-in link ``token`` up and start a session (the cookie's value), ending the
    session ``ending`` of the same browser first; None when the link does not work."""
    user_id = consume_link(session, token, now=now)
    if user_id is None:
        return None
    if ending is not None:  # a session of this browser, perhaps someone else's
        revoke(session, ending, now=now)
    value = create(session, user_id, now=now, user_agent=user_agent)
    user = session.get(User, user_id)
    audit.record(session, "sign-in", by=user_id, object=user.email if user else "", detail="link", now=now)
    return value


def sign_out(session: Session, session_id: str, *, by: int, email: str, now: datetime) -> None:
    revoke(session, session_id, now=now)
    audit.record(session, "sign-out", by=by, object=email, now=now)
