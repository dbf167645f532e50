"""Shared fixtures: a real database on each backend, a workspace, and the demo shape.

Every test that takes ``database_url`` (or a fixture built on it) runs twice: on SQLite and on
PostgreSQL. PostgreSQL gets a database of its own for this test session, emptied between tests.
Without a PostgreSQL server those runs are skipped, except under CI (``CI=true``), where they fail.
SQLite gets a copy of a file migrated once per session. ``mailer_cli`` runs the command line
in-process against the test's workspace and database (support/cli_runner.py).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, create_engine, text
from support.cli_runner import MailerCli
from support.hashes import use_test_key

from mailer.audience.shape import Shape, load_shape, sync
from mailer.db import Database, open_database
from mailer.models import Base
from mailer.settings import Settings, load
from mailer.workspace import init_workspace

if TYPE_CHECKING:
    from support.dns_server import DnsTestServer
    from support.sending import Mailing
    from support.smtp_server import SmtpTestServer

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("MAILER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# A strong key (mailer refuses weak ones): test-only, never for a real workspace.
TEST_SECRET = "I6yzj8FjALhZrPdPg1f7_pOKb12CJvwzrGnlnmBobdwNX_-BVeirKbBQDJRlJsrz"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


def create_pg_database() -> str:
    """Create an empty PostgreSQL database and return its URL (dropped by ``drop_pg_database``)."""
    name = f"mailer_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """One PostgreSQL database for the whole test session, at the newest schema."""
    try:
        url = create_pg_database()
    except Exception as exc:  # any connection problem means: no server here
        _unavailable(str(exc).splitlines()[0])
        raise
    db = open_database(url)
    db.dispose()
    yield url
    engine = _PG_ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()
    drop_pg_database(url)


_PG_ENGINES: dict[str, Engine] = {}
# Past this size (bytes) a table is truncated; below it, DELETE is ten times faster than TRUNCATE.
_PG_DELETE_BELOW = 4 * 1024 * 1024


def _empty_pg(url: str) -> None:
    """Delete every row and restart every sequence, as ``TRUNCATE … RESTART IDENTITY`` would."""
    engine = _PG_ENGINES.get(url)
    if engine is None:
        engine = _PG_ENGINES[url] = create_engine(url, pool_size=1)
    tables = Base.metadata.sorted_tables
    with engine.begin() as conn:
        largest = conn.execute(
            text(
                "SELECT coalesce(max(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = current_schema()"
            )
        ).scalar_one()
        if largest >= _PG_DELETE_BELOW:
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        for table in reversed(tables):  # those that refer to others first
            conn.execute(text(f'DELETE FROM "{table.name}"'))
        conn.execute(
            text(
                "SELECT setval(c.oid, 1, false) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'S' AND n.nspname = current_schema()"
            )
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs PostgreSQL ``postgresql``, so ``-m "not postgresql"`` leaves
    them out (``make check``)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("backend") == "postgresql"
        if on_pg or "pg_session_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgresql)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest schema with no rows, made once and copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "mailer.db"
    open_database(f"sqlite:///{path}").dispose()  # the last connection's close checkpoints the WAL
    return path


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database at the newest schema with no rows, on each backend in turn."""
    if backend == "sqlite":
        path = tmp_path / "mailer.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_session_url")
    _empty_pg(url)
    return url


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (for migration tests), on each backend in turn."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    try:
        url = create_pg_database()
    except Exception as exc:
        _unavailable(str(exc).splitlines()[0])
        raise
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def workspace_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace made once by ``mailer init`` (its RSA key alone takes a tenth of a second)."""
    root = tmp_path_factory.mktemp("workspace-template") / "ws"
    init_workspace(root)
    # A known key of the suppression hash, so that tests can name hashes (support/hashes.py).
    use_test_key(root)
    return root


@pytest.fixture
def workspace(tmp_path: Path, workspace_template: Path) -> Path:
    """A fresh workspace as ``mailer init`` makes it, with the demo network's lists: a copy of
    ``workspace_template``, file modes kept (the keys stay 0600)."""
    root = tmp_path / "ws"
    shutil.copytree(workspace_template, root)
    return root


@pytest.fixture
def env(database_url: str, workspace: Path) -> dict[str, str]:
    """Environment for running ``mailer`` as a subprocess against this test's database."""
    out = dict(os.environ)
    out.update(
        MAILER_WORKSPACE=str(workspace),
        MAILER_DATABASE_URL=database_url,
        MAILER_SECRET=TEST_SECRET,
    )
    return out


@pytest.fixture
def mailer_cli(env: dict[str, str]) -> MailerCli:
    """``mailer_cli("lists", "count", "region:kent")``: runs ``mailer ARGS…`` in this process against
    this test's workspace and database (``env``, read at each call); see support/cli_runner.py."""
    return MailerCli(env)


@pytest.fixture
def settings(workspace: Path, database_url: str) -> Settings:
    return load(workspace, env={"MAILER_DATABASE_URL": database_url, "MAILER_SECRET": TEST_SECRET})


@pytest.fixture
def shape(workspace: Path) -> Shape:
    return load_shape(workspace / "lists")


@pytest.fixture
def db(settings: Settings, shape: Shape) -> Iterator[Database]:
    """The test's database, migrated, with the demo regions and interests synced."""
    database = open_database(settings)
    with database.session() as session:
        sync(session, shape)
    yield database
    database.dispose()


# --- SMTP test servers (tests/support/smtp_server.py): real aiosmtpd on 127.0.0.1, a free port each ---------


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    """An aiosmtpd server advertising PIPELINING that records what it accepts; see support/smtp_server.py."""
    from support.smtp_server import SmtpTestServer

    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., SmtpTestServer]]:
    """Start more servers (``factory(pipelining=False)``, TLS, AUTH); all stop at teardown."""
    from support.smtp_server import SmtpTestServer

    started: list[SmtpTestServer] = []

    def factory(**options: Any) -> SmtpTestServer:
        server = SmtpTestServer(**options).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def dns_server() -> Iterator[DnsTestServer]:
    """A tiny DNS server on 127.0.0.1 that answers from its ``zone``; see dns_server.py."""
    from support.dns_server import DnsTestServer

    server = DnsTestServer().start()
    yield server
    server.stop()


@pytest.fixture
def mailing(
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
) -> Mailing:
    """A send to the SMTP test server: the Kent newsletter, synthetic members, the engine; see
    support/sending.py."""
    from support.sending import Mailing

    return Mailing(db, settings, shape, workspace, tmp_path, smtp_server)


# --- a real browser: Debian's Chromium driven by Playwright (never a downloaded browser) ------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """Headless Chromium, started here and closed on leaving; without it the test is skipped,
    except under CI, where that fails. Start it after any ``asyncio.run`` the test needs: the sync
    Playwright driver keeps an event loop running in this thread while the browser is open."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if IN_CI:
            pytest.fail(f"Chromium is required under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
