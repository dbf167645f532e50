"""Hostile backup files given to ``mailer restore``: files that are not ours, damaged, cut short,
altered with a checksum made to match, of a newer mailer, or shaped to write outside the workspace.

Each is refused with a clear message naming the file (exit 1 or 2, no traceback), and the
workspace's database stays empty: nothing is written before the whole file has been checked.
The cases are made in the test from one real backup (a tar archive; see mailer/backup.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from support.cli_runner import MailerCli

from mailer.backup import MANIFEST, backup
from mailer.db import open_database
from mailer.settings import load

Members = dict[str, bytes]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Members:
    """The members of a real backup of an empty workspace database."""
    root = tmp_path_factory.mktemp("real")
    url = f"sqlite:///{root / 'source.db'}"
    open_database(url).dispose()
    settings = load(root, env={"MAILER_DATABASE_URL": url})
    backup(settings, root / "real.tar")
    with tarfile.open(root / "real.tar") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _tar(members: Members, *, extra: list[tarfile.TarInfo] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return out.getvalue()


def _with(members: Members, **manifest: object) -> Members:
    data = json.loads(members[MANIFEST])
    data.update(manifest)
    return {**members, MANIFEST: json.dumps(data).encode()}


def _payload(members: Members, data: bytes) -> Members:
    """The database member replaced, the manifest's checksum and size made to match (as an
    attacker who knows the format would)."""
    out = _with(members, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    out["database.sqlite3"] = data
    return out


def _sqlite_bytes(build: Callable[[sqlite3.Connection], None]) -> bytes:
    conn = sqlite3.connect(":memory:")
    build(conn)
    data = conn.serialize()
    conn.close()
    return data


def _cases(m: Members) -> dict[str, tuple[bytes, str]]:
    """name: (the file's bytes, a text the refusal must show)."""
    whole = _tar(m)
    altered = bytearray(m["database.sqlite3"])
    altered[5000] ^= 0xFF
    link = tarfile.TarInfo("database.sqlite3")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    escape = tarfile.TarInfo("../../escaped")
    escape.size = 0

    def not_mailer(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
        conn.execute("INSERT INTO alembic_version VALUES ('0001')")

    return {
        "a text file": (b"this is not a backup\n", "not a tar archive"),
        "an empty file": (b"", "not a tar archive"),
        "cut short": (whole[: len(whole) // 2], "not a mailer backup"),
        "no manifest": (_tar({"database.sqlite3": m["database.sqlite3"]}), "has no mailer-backup.json"),
        "manifest not JSON": (_tar({**m, MANIFEST: b"{kind: sqlite"}), "not JSON"),
        "manifest a list": (_tar({**m, MANIFEST: b"[1, 2]"}), "does not say format"),
        "manifest huge": (_tar({**m, MANIFEST: b" " * 100_000}), "not a small file"),
        "another format": (_tar(_with(m, format="pg_dump")), "does not say format"),
        "a newer format": (_tar(_with(m, version=2)), "format version 2"),
        "a field missing": (
            _tar({**m, MANIFEST: json.dumps({"format": "mailer-backup", "version": 1}).encode()}),
            "lacks a field",
        ),
        "an unknown kind": (_tar(_with(m, kind="mysql")), "unknown kind"),
        "a revision with a path": (_tar(_with(m, revision="../0010")), "malformed size or revision"),
        "a newer schema": (_tar(_with(m, revision="9999")), "made by a newer mailer"),
        "the database missing": (_tar({MANIFEST: m[MANIFEST]}), "has no database.sqlite3"),
        "the database a symlink": (_tar({MANIFEST: m[MANIFEST]}, extra=[link]), "is not a file"),
        "the database altered": (
            _tar({**m, "database.sqlite3": bytes(altered)}),
            "does not match its checksum",
        ),
        "not SQLite, checksum made to match": (_tar(_payload(m, b"\0" * 8192)), "not a SQLite database"),
        "another SQLite database, checksum made to match": (
            _tar(_payload(m, _sqlite_bytes(not_mailer))),
            "not at the revision",
        ),
        "a member escaping the folder, database altered": (
            _tar({**m, "database.sqlite3": bytes(altered)}, extra=[escape]),
            "does not match its checksum",
        ),
    }


CASE_NAMES = [
    "a text file", "an empty file", "cut short", "no manifest", "manifest not JSON", "manifest a list",
    "manifest huge", "another format", "a newer format", "a field missing", "an unknown kind",
    "a revision with a path", "a newer schema", "the database missing", "the database a symlink",
    "the database altered", "not SQLite, checksum made to match",
    "another SQLite database, checksum made to match", "a member escaping the folder, database altered",
]  # fmt: skip


@pytest.mark.parametrize("case", CASE_NAMES)
def test_restore_refuses_a_hostile_backup_and_writes_nothing(
    case: str, real: Members, tmp_path: Path
) -> None:
    data, shows = _cases(real)[case]
    file = tmp_path / "hostile.tar"
    file.write_bytes(data)
    target = tmp_path / "restored.db"
    cli = MailerCli(
        {
            "MAILER_WORKSPACE": str(tmp_path),
            "MAILER_DATABASE_URL": f"sqlite:///{target}",
            "PATH": "/usr/bin:/bin",
        }
    )
    done = cli("restore", str(file))
    assert done.exit_code in (1, 2), done.output
    assert "Traceback" not in done.output
    assert shows in done.stderr and str(file) in done.stderr
    if target.exists():  # at most an empty file: no table written
        engine = create_engine(f"sqlite:///{target}")
        assert inspect(engine).get_table_names() == []
        engine.dispose()
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "escaped").exists()
