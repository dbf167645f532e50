"""``mailer backup FILE`` and ``mailer restore FILE``: the workspace's database in one file, and back.

A backup is an uncompressed tar archive (``tar tvf FILE`` lists it) of two members:

- ``database.sqlite3`` (a SQLite database, one file, no WAL) or ``database.pgdump`` (PostgreSQL's
  custom format, ``pg_dump -Fc``): the database;
- ``mailer-backup.json``, written last: what the backup is (``kind``: sqlite or postgresql, the
  schema ``revision``, ``made_at``, the mailer version) and the SHA-256 and size of the database
  member, so that a truncated or altered file is refused before anything is written.

SQLite is copied with its online backup API (``sqlite3.Connection.backup``) in one step: one read
transaction, so the copy is consistent while workers write (in WAL mode a reader blocks no writer).
PostgreSQL is dumped by ``pg_dump``, which runs in one repeatable-read snapshot; its major version
must be at least the server's (an older one refuses or writes a dump that does not restore).

``restore`` writes only into an **empty** database (no tables): it never merges into, or overwrites,
a database that holds mail. It checks the kind against the workspace's ``database_url``, the checksum,
and the revision: a backup made by a newer mailer (a revision this one does not know) is refused;
an older one is restored, then migrated to this mailer's schema.

The token key (``.mailer-secret`` or ``MAILER_SECRET``) and the DKIM keys are files (or settings)
of the workspace, not rows: they are **not** in the backup and must be kept apart. Without the token
key, the unsubscribe links of mail already sent and the VERP tags of its bounces no longer verify.
The backup holds members' data, so it is written readable by its owner only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, make_url, text

from mailer import __version__
from mailer.db import MIGRATIONS, VERSION_TABLE, make_engine, open_database, stored_revision
from mailer.errors import ConfigError, MailerError
from mailer.redact import redact, redact_url
from mailer.settings import Settings

FORMAT = "mailer-backup"
FORMAT_VERSION = 1
MANIFEST = "mailer-backup.json"
PAYLOAD = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
#: The most a manifest may be: it is a few hundred bytes; anything larger is not ours.
MANIFEST_LIMIT = 64 * 1024
#: What is not in a backup, said by the command and by docs/deploy.md.
NOT_INCLUDED = (
    "Not in the backup: the token key (.mailer-secret, or MAILER_SECRET) and the DKIM keys "
    "(.mailer-dkim.pem, .mailer-dkim-ed25519.pem). Keep copies of them apart, readable only by you: "
    "without the token key the unsubscribe links of mail already sent stop working and bounces "
    "can no longer be verified."
)
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Manifest:
    """What a backup file says it is."""

    kind: str  # "sqlite" or "postgresql"
    revision: str  # the schema revision of the database in it
    made_at: str  # ISO 8601, UTC
    mailer_version: str
    payload: str  # the name of the database member
    sha256: str
    bytes: int
    format: str = FORMAT
    version: int = FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), **self.manifest.as_dict(), "not_included": NOT_INCLUDED}


@dataclass(frozen=True)
class RestoreResult:
    path: Path
    manifest: Manifest
    database: str  # the database restored into, password hidden
    revision: str  # its schema revision now (after any migration)
    members: int
    deliveries: int

    @property
    def migrated(self) -> bool:
        return self.revision != self.manifest.revision

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "backup": self.manifest.as_dict(),
            "database": self.database,
            "revision": self.revision,
            "migrated": self.migrated,
            "members": self.members,
            "deliveries": self.deliveries,
        }


# --------------------------------------------------------------------------------------------------
# backup


def backup(settings: Settings, target: Path, *, overwrite: bool = False) -> BackupResult:
    """Write a backup of the workspace's database to ``target`` (mode 600), atomically: a file at
    ``target`` is either the whole backup or absent (or, with ``overwrite``, the earlier one)."""
    url = settings.sqlalchemy_url
    kind = _kind_of(url)
    target = target.expanduser().resolve()
    if target.exists() and not overwrite:
        raise ConfigError(
            "a file is there already", path=target, hint="give a new file name, or add --overwrite"
        )
    if not target.parent.is_dir():
        raise ConfigError("its folder does not exist", path=target, hint="create the folder first")
    with tempfile.TemporaryDirectory(prefix=".mailer-backup-", dir=target.parent) as tmp:
        payload = Path(tmp) / PAYLOAD[kind]
        revision = _dump_sqlite(url, payload) if kind == "sqlite" else _dump_postgresql(url, payload)
        digest, size = _digest(payload)
        manifest = Manifest(
            kind=kind,
            revision=revision,
            made_at=datetime.now(UTC).isoformat(timespec="seconds"),
            mailer_version=__version__,
            payload=payload.name,
            sha256=digest,
            bytes=size,
        )
        partial = Path(tmp) / "backup.tar"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            tar.add(payload, arcname=payload.name, filter=_plain)
            data = json.dumps(manifest.as_dict(), indent=2).encode() + b"\n"
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now(UTC).timestamp())
            tar.addfile(info, io.BytesIO(data))
            tar.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, target)
    return BackupResult(target, manifest)


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    return info


def _kind_of(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in PAYLOAD:
        raise ConfigError(f"cannot back up a {name} database", field="database_url")
    return name


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ConfigError(
            "only a SQLite database in a file can be backed up or restored",
            field="database_url",
            hint="point database_url at a file: sqlite:///mailer.db",
        )
    return Path(database)


def _dump_sqlite(url: str, payload: Path) -> str:
    source_path = _sqlite_path(url)
    if not source_path.is_file():
        raise ConfigError("there is no database to back up", path=source_path, hint="check database_url")
    source = sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(payload)
    try:
        source.execute("PRAGMA busy_timeout=30000")
        source.backup(copy)  # one step: one read transaction, a consistent copy beside writers
        copy.execute("PRAGMA journal_mode=DELETE")
        revision = _sqlite_revision(copy)
    finally:
        copy.close()
        source.close()
    if revision is None:
        raise MailerError(
            "the database has no schema revision: it is not a mailer database",
            path=source_path,
            hint="check database_url",
        )
    return revision


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        rows = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    except sqlite3.DatabaseError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


# --- PostgreSQL: pg_dump and pg_restore, found on PATH, their major version checked --------------------


@dataclass(frozen=True)
class _Libpq:
    """A SQLAlchemy URL as libpq's tools take it: a URL without the password, and the environment
    that carries it (never on a command line, which ``ps`` shows)."""

    url: str
    env: dict[str, str]


def _libpq(url: str) -> _Libpq:
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return _Libpq(plain.render_as_string(hide_password=False), env)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"{name} is not installed (mailer uses PostgreSQL's own {name} for this)",
            hint="install the client of your server's major version "
            "(e.g. apt-get install postgresql-client-15)",
        )
    return found


def _major(tool: str) -> int:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    if not m:
        raise ConfigError(f"cannot tell the version of {tool} from {out.strip()!r}")
    return int(m.group(1))


def _server_major(url: str) -> tuple[int, str | None]:
    """The server's major version, and the schema revision of its database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            number = int(conn.execute(text("SHOW server_version_num")).scalar_one())
        return number // 10000, stored_revision(engine)
    finally:
        engine.dispose()


def _check_version(tool: str, server: int) -> None:
    mine = _major(tool)
    if mine < server:
        raise ConfigError(
            f"{tool} is version {mine}, older than the server's {server}: it cannot dump this database",
            hint=f"install postgresql-client-{server} and put its bin folder first on PATH "
            f"(Debian: /usr/lib/postgresql/{server}/bin)",
        )


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = " ".join(redact(done.stderr).split())[:800] or f"exit status {done.returncode}"
        raise MailerError(f"{what} failed: {said}")


def _dump_postgresql(url: str, payload: Path) -> str:
    tool = _tool("pg_dump")
    server, revision = _server_major(url)
    _check_version(tool, server)
    if revision is None:
        raise MailerError(
            f"the database {redact_url(url)} has no schema revision: it is not a mailer database",
            hint="check database_url",
        )
    libpq = _libpq(url)
    _run([tool, "-Fc", "--no-owner", "--no-acl", "-f", str(payload), "-d", libpq.url], libpq.env, "pg_dump")
    return revision


# --------------------------------------------------------------------------------------------------
# reading a backup file


def read_manifest(path: Path) -> Manifest:
    """What the backup file at ``path`` says it is; ``MailerError`` naming the file when it is not a
    mailer backup, or is damaged. The database member is not read here (see ``restore``)."""
    with _opened(path) as tar:
        return _manifest(path, tar)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tarfile.TarFile]:
    if not path.is_file():
        raise ConfigError("no such backup file", path=path)
    try:
        with tarfile.open(path, mode="r:") as tar:
            yield tar
    except (tarfile.TarError, EOFError) as exc:
        raise _not_ours(path, f"it is not a tar archive ({exc})") from exc


def _not_ours(path: Path, why: str) -> MailerError:
    return MailerError(
        f"not a mailer backup, or a damaged one: {why}",
        path=path,
        hint="give a file written by `mailer backup`; a copy that was cut short or altered "
        "cannot be restored",
    )


def _manifest(path: Path, tar: tarfile.TarFile) -> Manifest:
    try:
        info = tar.getmember(MANIFEST)
    except KeyError:
        raise _not_ours(path, f"it has no {MANIFEST}") from None
    if not info.isfile() or info.size > MANIFEST_LIMIT:
        raise _not_ours(path, f"its {MANIFEST} is not a small file")
    f = tar.extractfile(info)
    assert f is not None
    try:
        data = json.loads(f.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _not_ours(path, f"its {MANIFEST} is not JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _not_ours(path, f"its {MANIFEST} does not say format {FORMAT!r}")
    if data.get("version") != FORMAT_VERSION:
        raise MailerError(
            f"this backup is of format version {data.get('version')!r}; this mailer reads {FORMAT_VERSION}",
            path=path,
            hint="restore it with the mailer version that made it",
        )
    try:
        manifest = Manifest(**{k: data[k] for k in Manifest.__dataclass_fields__})
    except (KeyError, TypeError) as exc:
        raise _not_ours(path, f"its {MANIFEST} lacks a field ({exc})") from exc
    kinds_ok = manifest.kind in PAYLOAD and manifest.payload == PAYLOAD[manifest.kind]
    if not kinds_ok or not re.fullmatch(r"[0-9a-f]{64}", str(manifest.sha256)):
        raise _not_ours(path, f"its {MANIFEST} names an unknown kind or checksum")
    if not isinstance(manifest.bytes, int) or not re.fullmatch(r"[0-9A-Za-z_]{1,32}", str(manifest.revision)):
        raise _not_ours(path, f"its {MANIFEST} has a malformed size or revision")
    return manifest


def _digest(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _extract_payload(path: Path, tar: tarfile.TarFile, manifest: Manifest, into: Path) -> Path:
    """The database member, copied to ``into`` and checked against the manifest's checksum."""
    try:
        info = tar.getmember(manifest.payload)
    except KeyError:
        raise _not_ours(path, f"it has no {manifest.payload}") from None
    source = tar.extractfile(info) if info.isfile() else None
    if source is None:
        raise _not_ours(path, f"its {manifest.payload} is not a file")
    out = into / manifest.payload  # our own name, never the archive's path
    h, size = hashlib.sha256(), 0
    try:
        with out.open("wb") as f:
            while chunk := source.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
                f.write(chunk)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise _not_ours(path, f"its {manifest.payload} cannot be read ({exc})") from exc
    if size != manifest.bytes or h.hexdigest() != manifest.sha256:
        raise _not_ours(path, f"its {manifest.payload} does not match its checksum (cut short or altered)")
    return out


# --------------------------------------------------------------------------------------------------
# restore


def known_revisions() -> set[str]:
    """Every schema revision this mailer's migrations know."""
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def restore(settings: Settings, path: Path) -> RestoreResult:
    """Restore the backup at ``path`` into the workspace's database, which must be empty (no
    tables); then migrate it to this mailer's schema if the backup is older. Nothing is written
    before the file has been read whole and checked."""
    path = path.expanduser().resolve()
    url = settings.sqlalchemy_url
    kind = _kind_of(url)
    with _opened(path) as tar:
        manifest = _manifest(path, tar)
        _check_fits(path, manifest, kind)
        _check_empty(url)
        # Beside a SQLite database (a copy as large as it, where there is room for it), else in TMPDIR.
        near = _sqlite_path(url).parent if kind == "sqlite" else None
        with tempfile.TemporaryDirectory(prefix=".mailer-restore-", dir=near) as tmp:
            payload = _extract_payload(path, tar, manifest, Path(tmp))
            if kind == "sqlite":
                _load_sqlite(path, manifest, payload, url)
            else:
                _load_postgresql(payload, url)
    db = open_database(url)  # migrates an older backup to this mailer's schema
    try:
        revision = stored_revision(db.engine) or ""
        with db.engine.connect() as conn:
            members = int(conn.execute(text("SELECT count(*) FROM members")).scalar_one())
            deliveries = int(conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one())
    finally:
        db.dispose()
    return RestoreResult(path, manifest, redact_url(url), revision, members, deliveries)


def _check_fits(path: Path, manifest: Manifest, kind: str) -> None:
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    if manifest.kind != kind:
        raise ConfigError(
            f"this is a backup of a {names[manifest.kind]} database, and the workspace's database is "
            f"{names[kind]}",
            path=path,
            hint=f"point database_url (or MAILER_DATABASE_URL) at an empty {names[manifest.kind]} database",
        )
    if manifest.revision not in known_revisions():
        raise ConfigError(
            f"this backup was made by a newer mailer ({manifest.mailer_version}, schema revision "
            f"{manifest.revision}), which this one ({__version__}) does not know",
            path=path,
            hint=f"restore it with mailer {manifest.mailer_version} or later",
        )


def _check_empty(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise ConfigError(
            f"the workspace's database {redact_url(url)} is not empty ({len(tables)} tables): restore "
            "never writes over a database",
            field="database_url",
            hint="point database_url (or MAILER_DATABASE_URL) at a new SQLite file or an empty PostgreSQL "
            "database (createdb NAME); move the old one aside first if you mean to replace it",
        )


def _load_sqlite(path: Path, manifest: Manifest, payload: Path, url: str) -> None:
    try:
        copy = sqlite3.connect(f"{payload.resolve().as_uri()}?mode=ro", uri=True)
        try:
            ok = copy.execute("PRAGMA quick_check").fetchone()
            revision = _sqlite_revision(copy)
        finally:
            copy.close()
    except sqlite3.DatabaseError as exc:
        raise _not_ours(path, f"its database is not a SQLite database ({exc})") from exc
    if ok is None or ok[0] != "ok" or revision != manifest.revision:
        raise _not_ours(path, "its database fails SQLite's check, or is not at the revision it says")
    target_path = _sqlite_path(url)
    make_engine(url).dispose()  # a new file is created readable by its owner only
    source = sqlite3.connect(payload)
    target = sqlite3.connect(target_path, timeout=30)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=WAL")
    finally:
        target.close()
        source.close()


def _load_postgresql(payload: Path, url: str) -> None:
    tool = _tool("pg_restore")
    server, _ = _server_major(url)
    _check_version(tool, server)
    libpq = _libpq(url)
    _run(
        [
            tool,
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            "--single-transaction",
            "-d",
            libpq.url,
            str(payload),
        ],
        libpq.env,
        "pg_restore",
    )
