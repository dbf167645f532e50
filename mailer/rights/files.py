"""The workspace's files that mention a person, and their erasure (docs/data.md, Files).

Looked through: the whole workspace (the Maildir outbox, the inbound Maildir with its processed and
quarantine folders, rejected-row and kept-row CSVs beside an import, any log or text file) and the
Maildirs outside it that the settings name (a ``maildir://`` relay, ``inbound_maildir``). Left out:
the database's own files (erased through the database), the key files, version control and virtual
environments. A file mentions the person when it holds their address in any case.

Erasure: a mail in a Maildir (one message a file) is deleted; in a CSV, log or text file the lines
that mention them are removed; any other text file has the address replaced by ``[erased]``. A file
that cannot be read or written is reported, never skipped silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailer.settings import Settings

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
    }
)
LINE_FILES = (".csv", ".log", ".txt", ".jsonl", ".tsv")
MAX_BYTES = 64 * 1024 * 1024  # a larger file is listed as not looked through
MAILDIR_SUBFOLDERS = ("cur", "new", "tmp")


@dataclass(frozen=True)
class FileMention:
    """A file that mentions the person: ``kind`` is outbox, quarantine, processed, inbound (a
    Maildir's mail), csv, log or file; ``lines`` how many of its lines do (0 for a whole mail)."""

    path: str
    kind: str
    lines: int = 0


@dataclass
class FileErasure:
    removed: list[str] = field(default_factory=list)  # mails deleted
    rewritten: list[str] = field(default_factory=list)  # lines removed or the address replaced
    unreachable: list[str] = field(default_factory=list)  # could not be read or written, with why


def roots(settings: Settings) -> list[Path]:
    """Where to look: the workspace, and the Maildirs outside it that the settings name."""
    found = [settings.workspace]
    for url in settings.relays:
        if url.startswith("maildir://"):
            found.append(Path(url.removeprefix("maildir://")))
    if settings.inbound_maildir:
        found.append(settings.path(settings.inbound_maildir))
    out: list[Path] = []
    for path in found:
        resolved = path.resolve()
        if not any(resolved == o or o in resolved.parents for o in out):
            out.append(resolved)
    return out


def _private(settings: Settings, path: Path) -> bool:
    """The database's files and the keys: never looked through here."""
    name = path.name
    if name.startswith(".mailer-"):
        return True
    database = (
        settings.sqlalchemy_url.removeprefix("sqlite:///")
        if settings.sqlalchemy_url.startswith("sqlite")
        else ""
    )
    return bool(database) and str(path).startswith(database)


def _files(settings: Settings) -> Iterator[Path]:
    for root in roots(settings):
        if not root.is_dir():
            continue
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            for name in sorted(names):
                path = Path(folder) / name
                if path.is_file() and not path.is_symlink() and not _private(settings, path):
                    yield path


def _kind(settings: Settings, path: Path) -> str:
    parent = path.parent
    if parent.name in MAILDIR_SUBFOLDERS and (parent.parent / "cur").is_dir():
        box = parent.parent.name
        if box == ".quarantine":
            return "quarantine"
        if box == ".processed":
            return "processed"
        outboxes = [
            Path(u.removeprefix("maildir://")).resolve()
            for u in settings.relays
            if u.startswith("maildir://")
        ]
        return "outbox" if parent.parent.resolve() in outboxes else "inbound"
    suffix = path.suffix.lower()
    return "csv" if suffix in (".csv", ".tsv") else "log" if suffix in (".log", ".txt", ".jsonl") else "file"


def _shown(settings: Settings, path: Path) -> str:
    try:
        return str(path.relative_to(settings.workspace))
    except ValueError:
        return str(path)


def _needles(terms: list[str]) -> list[bytes]:
    return [t.lower().encode("utf-8") for t in terms]


def mentions(settings: Settings, terms: list[str]) -> tuple[list[FileMention], list[str]]:
    """The files that mention any of ``terms`` (the person's address spellings), and those that
    could not be looked through, each with why."""
    needles = _needles(terms)
    found: list[FileMention] = []
    unread: list[str] = []
    for path in _files(settings):
        try:
            if path.stat().st_size > MAX_BYTES:
                unread.append(
                    f"{_shown(settings, path)}: larger than {MAX_BYTES // 2**20} MB, not looked through"
                )
                continue
            data = path.read_bytes().lower()
        except OSError as exc:
            unread.append(f"{_shown(settings, path)}: {exc.strerror or exc}")
            continue
        if not any(n in data for n in needles):
            continue
        kind = _kind(settings, path)
        lines = (
            0
            if kind in ("outbox", "quarantine", "processed", "inbound")
            else sum(1 for line in data.splitlines() if any(n in line for n in needles))
        )
        found.append(FileMention(_shown(settings, path), kind, lines))
    return found, unread


def erase(settings: Settings, terms: list[str]) -> FileErasure:
    """Remove the person from every file that mentions them (see the module's note)."""
    done = FileErasure()
    found, unread = mentions(settings, terms)
    done.unreachable.extend(unread)
    needles = _needles(terms)
    pattern = re.compile(b"|".join(re.escape(t.encode("utf-8")) for t in terms), re.IGNORECASE)
    for mention in found:
        path = Path(mention.path) if Path(mention.path).is_absolute() else settings.path(mention.path)
        try:
            if mention.kind in ("outbox", "quarantine", "processed", "inbound"):
                path.unlink()
                done.removed.append(mention.path)
                continue
            data = path.read_bytes()
            if b"\0" in data[:8192]:
                done.unreachable.append(f"{mention.path}: not a text file; remove it by hand")
                continue
            if path.suffix.lower() in LINE_FILES:
                kept = [
                    line
                    for line in data.splitlines(keepends=True)
                    if not any(n in line.lower() for n in needles)
                ]
                new = b"".join(kept)
            else:
                new = pattern.sub(b"[erased]", data)
            _replace(path, new)
            done.rewritten.append(mention.path)
        except OSError as exc:
            done.unreachable.append(f"{mention.path}: {exc.strerror or exc}")
    return done


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` over ``path`` through a new file, keeping its mode (the old blocks are freed;
    the file system may keep them until reused)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.erasing")
    mode = path.stat().st_mode & 0o777
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(temp, path)
