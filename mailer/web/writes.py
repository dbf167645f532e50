"""Short write transactions that survive a busy database.

The web app shares the database with a running send. On SQLite every transaction begins with
``BEGIN IMMEDIATE`` (mailer.db.make_engine), so a write waits for the lock up to the busy timeout
instead of failing; writes are still retried a few times on "database is locked".
On both databases a write that lost a race on a unique key (two one-click POSTs for the same
address at once) is retried too: the second try sees the other's row.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailer.db import Database, make_engine

T = TypeVar("T")

ATTEMPTS = 6
_BUSY = ("database is locked", "database table is locked", "deadlock detected", "could not serialize")


def is_busy(exc: OperationalError) -> bool:
    """Whether ``exc`` is a lock conflict that a retry can get past."""
    text = str(exc.orig).lower()
    return any(marker in text for marker in _BUSY)


def writer_database(url: str) -> Database:
    """A Database of the web app's own for short write transactions."""
    engine = make_engine(url)
    return Database(engine, sessionmaker(engine, expire_on_commit=False))


def write(db: Database, work: Callable[[Session], T], *, attempts: int = ATTEMPTS) -> T:
    """Run ``work(session)`` in one transaction and commit; retry on a busy database or a lost race."""
    for attempt in range(1, attempts + 1):
        try:
            with db.session() as session:
                return work(session)
        except OperationalError as exc:
            if attempt == attempts or not is_busy(exc):
                raise
        except IntegrityError:
            if attempt == attempts:
                raise
        time.sleep(min(0.02 * 2**attempt, 0.5) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
