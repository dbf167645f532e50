"""Opening the database: engines, sessions, and Alembic migrations shipped in the package.

SQLite (WAL, foreign keys, a busy timeout) is the embedded default; PostgreSQL is reached by URL
through psycopg 3. ``open_database`` upgrades the schema on first use. ``write`` runs a short write
transaction that survives a busy database (the web app's, beside a running send).

The library's functions take a ``Session`` (one transaction) and return typed values; a caller that
runs them (the web app's pages) gets ``Session`` and ``DriverError`` from here, so that it names
neither SQLAlchemy nor a table.

Alembic is imported only when a migration may be needed: ``open_database`` compares the stored
revision with the newest of the package's migration files (read as text, :func:`latest_revision`)
and hands over to Alembic when they differ. Every command opens the database, and importing
Alembic (with Mako and Pygments) costs more than the rest of opening it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
)
from sqlalchemy.orm import Session as Session  # re-exported: the session the library's functions take
from sqlalchemy.orm import sessionmaker

from mailer.errors import ConfigError, DatabaseError
from mailer.redact import redact, redact_url
from mailer.secret_key import ADDRESS_KEYS_INFO, AddressKeys
from mailer.setting_values import DATABASE_URL_FORMS, check_database_url
from mailer.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default, which migrations/env.py keeps

T = TypeVar("T")

#: What the database driver raises through SQLAlchemy (busy, unreachable, refusing a value), the
#: base of ``OperationalError`` and ``IntegrityError``: the web app answers it with "try again later".
DriverError = DBAPIError


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is away or busy for now, not that a statement is wrong:
    the connection was lost or invalidated (a restart, a failover, ``pg_terminate_backend``:
    ``AdminShutdown``), a new one was refused, the server is starting or shutting down, or a lock
    is held too long (:func:`is_busy`). A long-running sender treats this as weather: it waits,
    with backoff, and goes on (docs/decisions.md, Workers)."""
    if isinstance(exc, PendingRollbackError):  # a connection invalidated under an open transaction
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):
        # SQLite says OperationalError for a wrong statement too ("no such table"): a bug, not weather.
        message = str(exc.orig).lower()
        return is_busy(exc) or any(m in message for m in ("unable to open", "disk i/o error"))
    return True


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, begin transactions (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is locked"
    # when another process wrote in between (WAL cannot upgrade its snapshot); BEGIN IMMEDIATE
    # takes the write lock up front and waits for it (busy_timeout) instead. mailer's
    # transactions are short, so the web app and a running send take turns without failing.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _create_private_sqlite_file(url: str) -> None:
    """Create a SQLite database file that does not exist yet with mode 600, so that neither it nor
    its -wal and -shm files (SQLite gives them the database's mode) are readable by others."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return  # an existing file keeps the mode its owner chose
    if not path.parent.is_dir():
        raise ConfigError(
            f"the folder of the SQLite database does not exist: {path.parent}",
            field="database_url",
            hint="create the folder, or point database_url (or MAILER_DATABASE_URL) at one that exists",
        )
    with contextlib.suppress(FileExistsError):  # another process may have created it just now
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings mailer relies on (WAL, foreign keys, immediate
    transactions on SQLite). A new SQLite file is created readable by its owner only. A URL that
    is not one mailer can open is refused (``ConfigError``) before anything is created."""
    check_database_url(url)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})  # connects only when used
            _create_private_sqlite_file(url)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError, ValueError) as exc:  # what check_database_url let through
        raise ConfigError(
            f"cannot use the database URL {redact_url(url)!r}: {redact(str(exc))}",
            field="database_url",
            hint=f"fix database_url in mailer.toml or MAILER_DATABASE_URL: write {DATABASE_URL_FORMS}",
        ) from exc


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


_REVISION = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*(None|[\"']([^\"']+)[\"'])", re.MULTILINE)


@functools.cache
def latest_revision() -> str | None:
    """The head of the migration files, read as text without Alembic: the one revision no other
    names as its ``down_revision``. None when the files do not say plainly (a revision given as
    an expression, a merge, several heads): then only Alembic can tell (``head_revision``)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict((name, value) for name, _whole, value in _REVISION.findall(path.read_text("utf-8")))
        if "revision" not in found or "down_revision" not in found or not found["revision"]:
            return None
        revisions.add(found["revision"])
        if found["down_revision"]:
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def stored_revision(engine: Engine) -> str | None:
    """The revision recorded in the database's version table (None: no table, or no row), read
    without Alembic. Several rows (branches, which mailer never makes) count as none."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return str(rows[0]) if len(rows) == 1 else None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def up_to_date(engine: Engine) -> bool:
    """Whether the schema is at the newest revision: a cheap comparison with the migration files
    first, Alembic's own when that cannot tell."""
    latest = latest_revision()
    if latest is not None and stored_revision(engine) == latest:
        return True
    return current_revision(engine) == head_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


@dataclass
class Database:
    """An open database: the engine and a session factory."""

    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction, committed on success and rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def reaching(engine: Engine) -> Iterator[None]:
    """Turn a failure to reach the database into ``DatabaseError`` (exit 1, the driver's message on
    one line): any failure to connect (no statement yet: a refused connection, a bad option in the
    URL) and an operational one at any point (locked, read-only, out of space); anything else is a
    bug and goes on as it is. The engine is disposed of on that error."""
    try:
        yield
    except DBAPIError as exc:
        if exc.statement is not None and not isinstance(exc, OperationalError):
            raise
        engine.dispose()
        raise DatabaseError(
            "cannot open the database: " + " ".join(str(exc.orig).split()),
            hint="check database_url in mailer.toml or MAILER_DATABASE_URL",
        ) from exc


def open_database(settings: Settings | str, *, migrate: bool = True) -> Database:
    """Open the workspace's database, upgrading its schema first if it is behind. Opened with the
    workspace's ``settings``, its sessions carry the key of the suppression hash
    (``mailer.audience.addresses.keys_of``); opened by URL alone they can make no address hash."""
    url = settings if isinstance(settings, str) else settings.sqlalchemy_url
    engine = make_engine(url)
    with reaching(engine):
        if migrate and not up_to_date(engine):
            upgrade(engine)
    keys = [] if isinstance(settings, str) else settings.address_keys
    return Database(engine, _sessions(engine, keys))


def _sessions(engine: Engine, address_keys: list[str]) -> sessionmaker[Session]:
    """The session factory; every session's ``info`` holds the address keys (one object per open
    database, so that the check that members are hashed under the newest key runs once)."""
    info = {ADDRESS_KEYS_INFO: AddressKeys(address_keys)} if address_keys else {}
    return sessionmaker(engine, expire_on_commit=False, info=info)


# ---------------------------------------------------------------------------------------------
# Short write transactions that survive a busy database
#
# The web app shares the database with a running send. On SQLite every transaction begins with
# ``BEGIN IMMEDIATE`` (``make_engine``), so a write waits for the lock up to the busy timeout
# instead of failing; writes are still retried a few times on "database is locked". On both
# databases a write that lost a race on a unique key (two one-click POSTs for the same address at
# once) is retried too: the second try sees the other's row.

ATTEMPTS = 6
_BUSY = ("database is locked", "database table is locked", "deadlock detected", "could not serialize")


def is_busy(exc: OperationalError) -> bool:
    """Whether ``exc`` is a lock conflict that a retry can get past."""
    message = str(exc.orig).lower()
    return any(marker in message for marker in _BUSY)


def writer_database(url: str, address_keys: list[str] | None = None) -> Database:
    """A Database of its own for short write transactions (the web app's, on SQLite), its
    sessions carrying ``address_keys`` (``Settings.address_keys``) as ``open_database``'s do."""
    engine = make_engine(url)
    return Database(engine, _sessions(engine, address_keys or []))


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
