"""The never-mail-again list: suppressions keyed by the hash of a normalised address.

An unsubscribe, a hard bounce, a complaint, an erasure or an admin's decision adds a suppression;
each one appends a line to the consent log as well. Suppression is separate from membership: a
suppressed member keeps their row (until they are forgotten) but is never mailed, and every send
filters with ``suppressed_clause()`` at enqueue and again per batch.

This is the low-level add; callers go through ``mailer.audience.consent``, which owns every consent
rule. Nothing here deletes a suppression: lifting one needs the person's own, fresh re-confirmation
(a double opt-in sign-up confirmed from the address itself), and ``consent.confirm_signup`` is the
only code that does it, logging it in the consent log.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import ColumnElement, exists, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailer.audience import addresses
from mailer.audience.choices import record_member_choice, set_status
from mailer.errors import MailerError
from mailer.models import ConsentEvent, Member, Suppression, utcnow

REASONS: Final = ("unsubscribe", "hard-bounce", "complaint", "erasure", "admin")
SOURCES: Final = ("one-click", "link", "mailto", "bounce", "admin", "import", "signup")

# The member's status after each reason (mailable.STATUSES), and the sources that are the member's
# own doing (an import keeps the status they chose: docs/import.md, "Members' own choices").
STATUS_AFTER: Final = {
    "unsubscribe": "unsubscribed",
    "hard-bounce": "cleaned",
    "complaint": "unsubscribed",
    "erasure": "unsubscribed",
    "admin": "unsubscribed",
}
OWN_SOURCES: Final = ("one-click", "link", "mailto")

# The consent-log action recorded with each reason.
ACTIONS: Final = {
    "unsubscribe": "unsubscribe",
    "hard-bounce": "bounce",
    "complaint": "complaint",
    "erasure": "erase",
    "admin": "unsubscribe",
}


def _check(reason: str, source: str) -> None:
    if reason not in REASONS:
        raise MailerError(f"unknown suppression reason {reason!r}", hint="use one of " + ", ".join(REASONS))
    if source not in SOURCES:
        raise MailerError(f"unknown suppression source {source!r}", hint="use one of " + ", ".join(SOURCES))


def suppress(
    session: Session,
    address: str,
    *,
    reason: str,
    source: str,
    campaign: str | None = None,
    detail: str = "",
) -> bool:
    """Never mail ``address`` again. Returns True if it was not suppressed before.

    Appends a consent-log event every time (repeating it is harmless, and the log shows each
    request); adds the suppression only once. Raises ``InvalidInput`` for an address that does not
    validate: suppress by hash (``suppress_hash``) when only a hash is known.
    """
    return suppress_hash(
        session,
        addresses.hash_of(session, address),
        reason=reason,
        source=source,
        campaign=campaign,
        detail=detail,
    )


def suppress_hash(
    session: Session,
    address_hash: str,
    *,
    reason: str,
    source: str,
    campaign: str | None = None,
    detail: str = "",
) -> bool:
    """``suppress`` for callers that hold only the address hash (bounces, erased members)."""
    _check(reason, source)
    now = utcnow()
    member_id = session.scalar(select(Member.id).where(Member.address_hash == address_hash))
    if member_id is not None:
        set_status(session, address_hash=address_hash, status=STATUS_AFTER[reason], source=source)
        if source in OWN_SOURCES:
            record_member_choice(session, member_id, ["status"], source=source)
    session.execute(
        insert(ConsentEvent).values(
            member_id=member_id,
            address_hash=address_hash,
            action=ACTIONS[reason],
            source=source,
            wording="",
            campaign=campaign,
            detail=detail,
            created_at=now,
        )
    )
    # INSERT … ON CONFLICT DO NOTHING: two workers suppressing the same address at once both succeed.
    dialect = session.get_bind().dialect.name
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert_(Suppression)
        .values(
            address_hash=address_hash,
            reason=reason,
            source=source,
            campaign=campaign,
            detail=detail,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["address_hash"])
        .returning(Suppression.address_hash)
    )
    return session.execute(stmt).first() is not None


def is_suppressed(session: Session, address: str) -> bool:
    """Whether ``address`` (in any spelling that normalises the same) must not be mailed: its
    suppression under the newest key, an older one, or the unkeyed hash of before keys."""
    candidates = addresses.hash_candidates(session, addresses.normalise(address))
    return (
        session.scalar(select(Suppression.address_hash).where(Suppression.address_hash.in_(candidates)))
        is not None
    )


def is_hash_suppressed(session: Session, address_hash: str) -> bool:
    return session.get(Suppression, address_hash) is not None


def suppression_of(session: Session, address_hash: str) -> Suppression | None:
    """The suppression row for a hash, if any (reason, source, campaign, time)."""
    return session.get(Suppression, address_hash)


def suppressed_clause() -> ColumnElement[bool]:
    """A SQL condition true for members who are NOT suppressed: ``NOT EXISTS (suppression)``.

    Use it in every query that picks members to count or to mail:
    ``select(Member).where(suppressed_clause())``.
    """
    return ~exists().where(Suppression.address_hash == Member.address_hash)


not_suppressed = suppressed_clause
