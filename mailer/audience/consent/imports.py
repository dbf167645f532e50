"""Imports and erasure: a subscribe line per imported member; erased members keep only the hash."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, update
from sqlalchemy.orm import Session

from mailer.audience import bulk
from mailer.audience.consent.log import IMPORT_SOURCE, consent_table
from mailer.models import ConsentEvent

# ---------------------------------------------------------------------------------------------
# Imports and erasure


def subscribe_imported(conn: Connection, imported: Iterable[tuple[int, str, str, str]], *, at: Any) -> None:
    """Log a ``subscribe`` event for each newly imported member, in bulk, in ``conn``'s transaction.

    ``imported`` holds (member id, address hash, consent source from the file or "", detail); ``at``
    is the time as the dialect stores it. The source is the file's, else "import".
    """
    rows = [
        {
            "member_id": member_id,
            "address_hash": digest,
            "action": "subscribe",
            "source": source or IMPORT_SOURCE,
            "wording": "",
            "campaign": None,
            "detail": detail,
            "created_at": at,
        }
        for member_id, digest, source, detail in imported
    ]
    bulk.insert_many(conn, consent_table, rows)


def log_imported(conn: Connection, lines: Iterable[tuple[int | None, str, str, str]], *, at: Any) -> None:
    """Log what an import's status columns said of each address, in bulk, in ``conn``'s
    transaction: ``lines`` hold (member id or None, address hash, action, detail), the action one
    of ``not-opted-in``, ``unsubscribe`` or ``bounce``; the source is always "import" and the
    detail names the file, line, column and value."""
    rows = [
        {
            "member_id": member_id,
            "address_hash": digest,
            "action": action,
            "source": IMPORT_SOURCE,
            "wording": "",
            "campaign": None,
            "detail": detail,
            "created_at": at,
        }
        for member_id, digest, action, detail in lines
    ]
    if rows:
        bulk.insert_many(conn, consent_table, rows)


def detach_log(session: Session, member_id: int) -> int:
    """Keep the member's consent-log lines with only the address hash (they are being erased); how
    many lines were kept."""
    kept = session.execute(
        update(ConsentEvent).where(ConsentEvent.member_id == member_id).values(member_id=None)
    )
    return int(kept.rowcount)  # type: ignore[attr-defined]
