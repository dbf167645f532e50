"""Erasure: everything held about a person removed or scrubbed, but the keyed hash that keeps them
suppressed (docs/data.md, Erasure).

``forget`` runs in three steps. In one transaction: the member's row, interests, fields, choices,
network leaves and event answers are deleted; their consent-log lines keep only what proves the
suppression (action, source, wording, campaign, time: the detail, with region and interests, is
cleared); the desk account is anonymised (address and name replaced, password, roles, sessions and
sign-in links deleted; the audit lines it made stay, naming nobody); every other row whose text
mentions the address (a bounce's diagnostic, an inbound record, a delivery's last error, an audit
line) has the address, name and postcode replaced by ``[erased]``; a suppression (reason
``erasure``) is added under the keyed hash, and the erasure is audited. Then the database is
compacted so that no free page keeps the old text: on SQLite ``VACUUM`` and a WAL checkpoint
(TRUNCATE); on PostgreSQL ``VACUUM`` of the tables touched (see ``compact``). Last, the
workspace's files that mention them are removed or rewritten (``mailer.rights.files``).

An address nobody holds changes nothing and says so (``ErasureReport.found`` is False).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from mailer.audience import consent, members
from mailer.db import Database
from mailer.desk import audit
from mailer.models import (
    Base,
    ConsentEvent,
    DeskSession,
    SignInLink,
    User,
    UserRole,
    utcnow,
)
from mailer.rights import events, files
from mailer.rights.access import NOT_HERE
from mailer.rights.person import Person, find, mentions, scrub_text, text_columns
from mailer.settings import Settings


@dataclass
class ErasureReport:
    """What ``forget`` did, and what it could not reach."""

    address_hash: str
    found: bool
    member_erased: bool = False
    newly_suppressed: bool = False
    interests_removed: int = 0
    rsvps_removed: int = 0
    fields_removed: int = 0
    consent_events_kept: int = 0  # now holding only the keyed hash and what proves the suppression
    desk_account_anonymised: bool = False
    rows_scrubbed: dict[str, int] = field(default_factory=dict)  # table: rows whose text was rewritten
    database: str = ""  # what compacting the database did
    files_removed: list[str] = field(default_factory=list)
    files_rewritten: list[str] = field(default_factory=list)
    files_unreachable: list[str] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=lambda: list(NOT_HERE))
    already_erased_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["already_erased_at"] = self.already_erased_at.isoformat() if self.already_erased_at else None
        return data


def forget(
    db: Database, settings: Settings, address: str, *, actor: str, now: datetime | None = None
) -> ErasureReport:
    """Erase the person at ``address`` (any spelling that normalises the same) everywhere mailer
    can reach; ``actor`` names who asked for it in the audit log."""
    now = now or utcnow()
    with db.session() as session:
        person = find(session, address)
        report = ErasureReport(address_hash=person.address_hash, found=_held(session, settings, person))
        if not report.found:
            report.already_erased_at = _erased_at(session, person)
            report.not_reached = []
            return report
        _erase_rows(session, person, report, now)
        audit.record(
            session,
            "members.forget",
            by=None,
            actor=actor,
            object=f"address hash {person.address_hash[:16]}",
            detail="personal data erased on request",
            now=now,
        )
    report.database = compact(db, [*sorted(report.rows_scrubbed), "members", "consent_log", "users"])
    erased = files.erase(settings, person.terms)
    report.files_removed, report.files_rewritten = erased.removed, erased.rewritten
    report.files_unreachable = erased.unreachable
    return report


def _held(session: Session, settings: Settings, person: Person) -> bool:
    if person.member is not None or person.user is not None:
        return True
    if events.rsvps_of(session, None, person.address):  # someone who answered without being a member
        return True
    if next(mentions(session, person), None) is not None:
        return True
    return bool(files.mentions(settings, person.terms)[0])


def _erased_at(session: Session, person: Person) -> datetime | None:
    from sqlalchemy import func

    return session.scalar(
        select(func.max(ConsentEvent.created_at)).where(
            ConsentEvent.address_hash.in_(person.hashes), ConsentEvent.action == "erase"
        )
    )


def _erase_rows(session: Session, person: Person, report: ErasureReport, now: datetime) -> None:
    found = list(mentions(session, person))  # before the member's row (their name) goes
    words = person.terms + person.personal
    report.rsvps_removed = events.erase_rsvps(
        session, person.member.id if person.member else None, person.address
    )
    if person.member is not None:
        done = members.forget(session, person.address)
        report.member_erased = True
        report.newly_suppressed = done.newly_suppressed
        report.interests_removed, report.fields_removed = done.interests_removed, done.fields_removed
    else:
        report.newly_suppressed = consent.unsubscribe(
            session,
            person.address_hash,
            reason="erasure",
            source="admin",
            detail="personal data erased on request",
        )
    cleared = session.execute(
        update(ConsentEvent)
        .where(ConsentEvent.address_hash.in_(person.hashes), ConsentEvent.action != "erase")
        .values(detail="", member_id=None)
    )
    report.consent_events_kept = cleared.rowcount  # type: ignore[attr-defined]
    if person.user is not None:
        _anonymise(session, person.user, now)
        report.desk_account_anonymised = True
    for table, count in _scrub(session, found, words).items():
        report.rows_scrubbed[table] = count


def _anonymise(session: Session, user: User, now: datetime) -> None:
    """The desk account keeps its id (approvals, edits and audit lines refer to it) and nothing else."""
    user_id = user.id
    session.execute(delete(UserRole).where(UserRole.user_id == user_id))
    session.execute(delete(DeskSession).where(DeskSession.user_id == user_id))
    session.execute(delete(SignInLink).where(SignInLink.user_id == user_id))
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(email=f"erased-{user_id}@erased.invalid", name="", password_hash=None, disabled_at=now)
    )


def _scrub(session: Session, found: list[Any], words: list[str]) -> dict[str, int]:
    """Rewrite every text column of each row in ``found`` without ``words``; rows per table."""
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    done: dict[str, set[tuple[Any, ...]]] = {}
    for mention in found:
        key = tuple(sorted(mention.key.items()))
        if key in done.setdefault(mention.table, set()):
            continue
        done[mention.table].add(key)
        table = tables[mention.table]
        where = [table.c[name] == value for name, value in mention.key.items()]
        columns = text_columns(table)
        row = session.execute(select(*(table.c[c] for c in columns)).where(*where)).first()
        if row is None:
            continue  # gone with the member (a cascade)
        values = {c: scrub_text(v, words) for c, v in zip(columns, row, strict=True) if isinstance(v, str)}
        session.execute(update(table).where(*where).values(**values))
    return {table: len(keys) for table, keys in done.items()}


def compact(db: Database, tables: list[str]) -> str:
    """Leave no copy of erased rows in the database's free space; say what was done.

    SQLite: ``VACUUM`` rebuilds the file without its free pages, then a WAL checkpoint (TRUNCATE)
    writes the write-ahead log back and empties it (a reader still open elsewhere can delay that:
    the next checkpoint finishes it). PostgreSQL: ``VACUUM`` marks the old versions of the rows
    free, and they are overwritten as the space is reused; until then they stay in the table's
    files, and in WAL archives and base backups until those are rotated. ``VACUUM FULL`` (which
    locks each table while it rewrites it) removes them at once: run it in a quiet hour if that is
    needed."""
    engine = db.engine
    if engine.dialect.name == "sqlite":
        # On the driver's own connection: SQLAlchemy's begins a transaction (BEGIN IMMEDIATE, see
        # mailer.db), in which SQLite refuses VACUUM.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("VACUUM")
            busy, _log, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            cursor.close()
        finally:
            raw.close()
        return (
            "SQLite: VACUUM and WAL checkpoint (TRUNCATE) done"
            if not busy
            else "SQLite: VACUUM done; the WAL checkpoint waits for another reader and ends at its next one"
        )
    known = {t.name for t in Base.metadata.sorted_tables}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in sorted(set(tables) & known):
            conn.execute(text(f'VACUUM "{name}"'))
        return (
            f"PostgreSQL: VACUUM of {len(set(tables) & known)} table(s): old row versions are marked "
            "free and overwritten as the space is reused; WAL archives and backups keep them until rotated "
            "(VACUUM FULL rewrites the tables now)"
        )
