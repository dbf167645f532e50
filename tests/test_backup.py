"""``mailer backup`` and ``mailer restore``, on SQLite and PostgreSQL: a campaign stopped half way
through, backed up, restored into an empty database and resumed mails everyone once, counted at a
real SMTP server; restore refuses what does not fit (a database with tables, another kind of
database, a newer schema), and a pg_dump that is missing or older than the server."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import tarfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import create_pg_database, drop_pg_database
from sqlalchemy import func, inspect, select
from support.cli_runner import MailerCli
from support.sending import Mailing, send

from mailer.backup import NOT_INCLUDED, backup, read_manifest, restore
from mailer.db import Database, head_revision, open_database
from mailer.errors import ConfigError
from mailer.models import Delivery, InboundMessage
from mailer.models.base import utcnow
from mailer.settings import Settings


def _empty(url: str) -> bool:
    db = open_database(url, migrate=False)
    try:
        return not inspect(db.engine).get_table_names()
    finally:
        db.dispose()


@pytest.mark.slow
def test_a_send_stopped_half_way_is_backed_up_restored_and_resumed_once_each(
    mailing: Mailing, empty_database_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    audience = mailing.enqueue_kent(120)
    half = len(audience) // 2
    assert half >= 10
    first = mailing.send(limit=half, batch_size=5)
    assert first.sent == half and len(mailing.smtp.messages) == half

    cli = MailerCli(env)
    file = tmp_path / "nightly.tar"
    made = cli("backup", str(file), check=True)
    assert "Backed up" in made.stdout and NOT_INCLUDED in made.stderr
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    with tarfile.open(file) as tar:
        names = tar.getnames()
    assert set(names) == {
        "mailer-backup.json",
        "database.sqlite3" if "sqlite" in env["MAILER_DATABASE_URL"] else "database.pgdump",
    }
    manifest = read_manifest(file)
    assert manifest.revision == head_revision() and manifest.kind in ("sqlite", "postgresql")

    # The original database is gone (the machine died); a new, empty one takes its place.
    mailing.db.dispose()
    restored = cli(
        "restore", "--json", str(file), env={"MAILER_DATABASE_URL": empty_database_url}, check=True
    )
    said = json.loads(restored.stdout)
    assert said["deliveries"] == len(audience) and said["migrated"] is False

    settings = dataclasses.replace(mailing.settings, database_url=empty_database_url)
    db = open_database(settings)
    try:
        with db.session() as session:
            statuses = Counter(session.scalars(select(Delivery.status)))
        assert statuses["sent"] == half
        rest = send(db, settings, mailing.smtp.url, batch_size=5)
        assert rest.sent == len(audience) - half
    finally:
        db.dispose()

    mailed = Counter(r for m in mailing.smtp.messages for r in m.rcpt_tos)
    assert sorted(mailed) == audience  # everyone mailed
    assert set(mailed.values()) == {1}  # and nobody twice


def test_restore_refuses_a_database_with_tables(db: Database, settings: Settings, tmp_path: Path) -> None:
    file = tmp_path / "b.tar"
    backup(settings, file)
    with pytest.raises(ConfigError, match="is not empty") as refused:
        restore(settings, file)
    assert "createdb" in str(refused.value)
    with pytest.raises(ConfigError, match="a file is there already"):
        backup(settings, file)
    assert backup(settings, file, overwrite=True).manifest.bytes > 0


@pytest.mark.parametrize("backend", ["postgresql"])
def test_restore_refuses_another_kind_of_database(db: Database, settings: Settings, tmp_path: Path) -> None:
    sqlite = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    open_database(sqlite.sqlalchemy_url).dispose()
    file = tmp_path / "b.tar"
    backup(sqlite, file)
    with pytest.raises(
        ConfigError, match="backup of a SQLite database, and the workspace's database is PostgreSQL"
    ):
        restore(settings, file)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_pg_dump_missing_or_older_than_the_server_is_said_with_the_fix(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    bin_dir.mkdir()
    out.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ConfigError, match="pg_dump is not installed") as missing:
        backup(settings, out / "b.tar")
    assert "postgresql-client" in str(missing.value)

    old = bin_dir / "pg_dump"  # an outside program standing in for an old client, not mailer's code
    old.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    old.chmod(0o755)
    with pytest.raises(ConfigError, match="version 9, older than the server's") as older:
        backup(settings, out / "b.tar")
    assert "postgresql-client-" in str(older.value)
    assert os.listdir(out) == []  # nothing half-written left behind


def test_a_backup_taken_while_others_write_is_one_consistent_moment(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """Writers commit two rows at a time while backups are taken: every backup, restored, holds
    whole transactions only (an even number of rows), and they all pass the database's checks."""
    stop = threading.Event()
    written = [0]

    def write() -> None:
        while not stop.is_set():
            n = written[0]
            with db.session() as session:
                for i in (n, n + 1):
                    session.add(
                        InboundMessage(fingerprint=f"{i:064d}", kind="unknown", processed_at=utcnow())
                    )
            written[0] = n + 2

    writer = threading.Thread(target=write)
    writer.start()
    try:
        files = []
        for number in range(2):
            while written[0] < 20 * (number + 1):
                time.sleep(0.01)
            files.append(backup(settings, tmp_path / f"b{number}.tar").path)
    finally:
        stop.set()
        writer.join()
    counts = []
    for number, file in enumerate(files):
        url = f"sqlite:///{tmp_path / f'r{number}.db'}"
        if settings.sqlalchemy_url.startswith("postgresql"):
            url = create_pg_database()
        try:
            restore(dataclasses.replace(settings, database_url=url), file)
            restored = open_database(url)
            with restored.session() as session:
                counts.append(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)
            restored.dispose()
        finally:
            if url.startswith("postgresql"):
                drop_pg_database(url)
    assert all(c % 2 == 0 and c >= 20 for c in counts), counts
    assert counts == sorted(counts) and counts[-1] <= written[0]
