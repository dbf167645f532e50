"""The editors' desk: people and roles, sessions, sign-in links, sign-in attempts, the audit log,
contributions, issue edits and approvals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, UTCDateTime, utcnow


class LoginAttempt(Base):
    """Failed log-ins to the admin pages from one address (an IPv4 address, or an IPv6 /64).

    After a few failures each further one locks the address out for twice as long as the last
    (``locked_until``), up to a cap; a success or a quiet day clears the row (``mailer.limits``).
    """

    __tablename__ = "login_attempts"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- the desk (docs/decisions.md, The desk) ---
# The editorial desk's people, roles, sign-in links, sessions and audit log (mailer/web/desk/).


class User(Base):
    """A person who signs in to the desk (an editor, approver, contributor or admin). ``email`` is
    the normalised address. A disabled person keeps their row (the audit log names them) but can
    no longer sign in. ``password_hash`` (argon2) is optional: the mailed link always works."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The kinds of desk notification this person turned off, space-separated
    # (mailer.desk.notifications.KINDS); "" is every kind on.
    notify_off: Mapped[str] = mapped_column(Text, default="")


class UserRole(Base):
    """One role of a person: ``role`` is admin, editor, approver or contributor; ``network`` a
    network's slug ("" for an admin of every network, or the workspace's single network);
    ``region`` a region's slug for a contributor (a local group), else ""."""

    __tablename__ = "user_roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    network: Mapped[str] = mapped_column(String(64), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_user_roles_user_role_network_region", "user_id", "role", "network", "region", unique=True),
    )


class DeskSession(Base):
    """A signed-in browser. ``id`` is the SHA-256 (hex) of the random 32-byte value in the cookie:
    the cookie's value itself is stored nowhere. Every request looks its session up here, so a
    revoked one is refused at once."""

    __tablename__ = "desk_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class SignInLink(Base):
    """A one-time sign-in link mailed to a person: ``token_hash`` is the SHA-256 (hex) of the token
    in the link. Used once (``used_at``), or never after ``expires_at``."""

    __tablename__ = "sign_in_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One line of the desk's audit log: who (``user_id``; None for the command line or the
    system) did what (``action``, e.g. ``role.add``) to what (``object``). Appended to, never
    rewritten."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # Who acted when ``user_id`` is None: the command line's person (the OS user or ``--as NAME``).
    actor: Mapped[str] = mapped_column(String(200), default="", server_default="")
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(String(500), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Contribution(Base):
    """An event or item a contributor (a local group or region) sent to a network's next issue.

    ``kind``: event or item; ``fields``: the form's values as JSON (checked when submitted);
    ``status``: new, accepted, declined. Accepted into ``issue_slug``; a declined one carries the
    editor's ``note``, mailed back to the contributor."""

    __tablename__ = "contributions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network: Mapped[str] = mapped_column(String(64), index=True)
    region: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(500))
    fields: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    issue_slug: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IssueEdit(Base):
    """A save of an issue file from the desk: who saved it and the SHA-256 of the file they wrote.
    The newest row names the issue's last editor (who may not approve it)."""

    __tablename__ = "issue_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Approval(Base):
    """An approver's approval of an issue, bound to ``content_hash``: the SHA-256 of the issue file
    and its audience as approved. Any later edit changes the hash and so voids it."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), index=True)
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApprovalAsk(Base):
    """An editor asked the approvers of ``network`` to approve issue ``slug``: it waits for them
    (on their desk home, and by mail) until an approval newer than the ask is given."""

    __tablename__ = "approval_asks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), index=True)
    network: Mapped[str] = mapped_column(String(64), default="")
    asked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
