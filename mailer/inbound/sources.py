"""Where inbound mail is read from: a Maildir, an mbox file, or an IMAP folder over TLS.

Every source yields ``Item``s (a key saying where the mail is, and at most ``MAX_MESSAGE_BYTES`` + 1
of its bytes: enough to know that a mail is too large) and is told when one has been processed and
committed (``done``), or quarantined (``quarantine``: it could not be read), so that it can set the
mail aside:

- **Maildir** (a folder with ``cur/``, ``new/`` and ``tmp/``): each processed mail is moved into the
  Maildir++ subfolder ``.processed`` (``<maildir>/.processed/cur/<name>:2,S``), which mail clients
  show as a folder named "processed"; each quarantined one into ``.quarantine`` (unread, shown as
  "quarantine"). What stays in ``new/`` and ``cur/`` is what is still to do.
- **mbox** (a file): left as it is; the ``inbound_messages`` table (each mail's fingerprint, and for
  a quarantined mail its reason) is what makes the second run skip what the first did.
- **IMAP** (``imaps://user@host[:port]/folder``, the password from ``MAILER_IMAP_PASSWORD``): reads
  the messages without the ``$MailerProcessed`` keyword with ``BODY.PEEK[]`` (so nothing is marked
  read by reading), and sets ``\\Seen $MailerProcessed`` on each one done, ``$MailerProcessed
  $MailerQuarantined`` on each one quarantined (left unread for a person to look at). The tests run it
  against a real Dovecot. A server that allows no keywords still gets ``\\Seen``; the fingerprint
  table then keeps a second run from acting twice.

Whatever the source, the fingerprint table is the last word: a mail seen before is never acted on
twice, even if a crash came between the commit and the move.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import unquote, urlsplit

from mailer.errors import ConfigError, MailerError
from mailer.inbound.parse import MAX_MESSAGE_BYTES

PROCESSED_FOLDER = ".processed"
QUARANTINE_FOLDER = ".quarantine"
IMAP_KEYWORD = "$MailerProcessed"
IMAP_QUARANTINE_KEYWORD = "$MailerQuarantined"
#: How much of a mail a source reads: one byte more than any mail mailer classifies.
READ_LIMIT = MAX_MESSAGE_BYTES + 1
IMAP_PASSWORD_ENV = "MAILER_IMAP_PASSWORD"


@dataclass(frozen=True)
class Item:
    """One inbound mail: where it is (for reports and ``done``) and its bytes."""

    key: str
    raw: bytes


class Source(Protocol):
    """A place inbound mail is read from."""

    name: str

    def items(self) -> Iterator[Item]: ...

    def done(self, item: Item) -> None: ...

    def quarantine(self, item: Item) -> None: ...

    def close(self) -> None: ...


class MaildirSource:
    """A Maildir: reads ``new/`` and ``cur/``; moves what is done into the ``.processed`` subfolder,
    what is quarantined into ``.quarantine``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = str(root)

    def items(self) -> Iterator[Item]:
        for sub in ("new", "cur"):
            folder = self.root / sub
            for path in sorted(folder.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                try:
                    with path.open("rb") as f:
                        raw = f.read(READ_LIMIT)
                except FileNotFoundError:  # moved by someone else meanwhile
                    continue
                yield Item(f"{sub}/{path.name}", raw)

    def done(self, item: Item) -> None:
        self._move(item, PROCESSED_FOLDER, seen=True)

    def quarantine(self, item: Item) -> None:
        self._move(item, QUARANTINE_FOLDER, seen=False)

    def _move(self, item: Item, folder: str, *, seen: bool) -> None:
        source = self.root / item.key
        target_dir = self.root / folder
        for sub in ("cur", "new", "tmp"):
            (target_dir / sub).mkdir(parents=True, exist_ok=True)
        base, _, info = source.name.partition(":2,")
        flags = "".join(sorted(set(info) | ({"S"} if seen else set())))
        with contextlib.suppress(FileNotFoundError):  # moved by someone else meanwhile
            os.replace(source, target_dir / "cur" / f"{base}:2,{flags}")

    def close(self) -> None:
        pass


class MboxSource:
    """An mbox file, read and left unchanged (the fingerprint table remembers what was done)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.box = mailbox.mbox(str(path), create=False)

    def items(self) -> Iterator[Item]:
        for number, key in enumerate(self.box.keys(), start=1):
            yield Item(f"#{number}", self.box.get_bytes(key)[:READ_LIMIT])

    def done(self, item: Item) -> None:
        pass

    def quarantine(self, item: Item) -> None:
        pass  # recorded in inbound_messages, with the reason

    def close(self) -> None:
        self.box.close()


class ImapSource:
    """An IMAP folder over TLS (port 993 unless the URL names another), certificate verified."""

    def __init__(self, url: str, password: str, *, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.username:
            raise ConfigError(
                f"not an IMAP address: {url!r}", hint="write imaps://user@host/folder (port optional)"
            )
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        self.name = f"imaps://{parts.username}@{parts.hostname}/{self.folder}"
        if not password:
            raise ConfigError(
                f"no password for {self.name}", hint=f"set {IMAP_PASSWORD_ENV} in the environment"
            )
        context = ssl_context or ssl.create_default_context()
        try:
            self.conn = imaplib.IMAP4_SSL(parts.hostname, parts.port or 993, ssl_context=context)
            self.conn.login(unquote(parts.username), password)
            status, _ = self.conn.select(_quote(self.folder))
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailerError(
                f"cannot read {self.name}: {exc}", hint="check the host, user and password"
            ) from exc
        if status != "OK":
            raise MailerError(f"cannot open the IMAP folder {self.folder!r} on {self.name}")

    def items(self) -> Iterator[Item]:
        status, data = self.conn.uid("SEARCH", "UNKEYWORD", IMAP_KEYWORD)
        if status != "OK" or not data or not data[0]:
            return
        for uid in data[0].split():
            status, fetched = self.conn.uid("FETCH", uid, f"(BODY.PEEK[]<0.{READ_LIMIT}>)")
            for part in fetched or ():
                if isinstance(part, tuple) and len(part) == 2:
                    yield Item(uid.decode("ascii"), bytes(part[1]))
                    break

    def done(self, item: Item) -> None:
        self.conn.uid("STORE", item.key, "+FLAGS", f"(\\Seen {IMAP_KEYWORD})")

    def quarantine(self, item: Item) -> None:
        self.conn.uid("STORE", item.key, "+FLAGS", f"({IMAP_KEYWORD} {IMAP_QUARANTINE_KEYWORD})")

    def close(self) -> None:
        try:
            self.conn.close()
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


class opened:
    """``with opened(spec) as source:`` — the source named by ``spec``, closed afterwards."""

    def __init__(self, spec: str | Path, *, imap_password: str | None = None) -> None:
        self.source = open_source(spec, imap_password=imap_password)

    def __enter__(self) -> Source:
        return self.source

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.source.close()


def open_source(spec: str | Path, *, imap_password: str | None = None) -> Source:
    """The source ``spec`` names: ``imaps://…``, a Maildir folder, or an mbox file (either may be
    written ``maildir:PATH`` or ``mbox:PATH``).

    The IMAP password is ``imap_password``, else ``MAILER_IMAP_PASSWORD`` from the environment.
    """
    text = str(spec)
    if re.match(r"imaps?://", text, re.IGNORECASE):
        if text.lower().startswith("imap://"):
            raise ConfigError(
                "IMAP without TLS would send the password in clear", hint="use imaps://user@host/folder"
            )
        return ImapSource(text, imap_password or os.environ.get(IMAP_PASSWORD_ENV, ""))
    kind, sep, rest = text.partition(":")
    if sep and kind.lower() in ("maildir", "mbox") and not rest.startswith("//"):
        text = rest  # "maildir:/var/mail/kent-replies", as the reply_sources setting writes them
    path = Path(text).expanduser()
    if path.is_dir():
        if not ((path / "cur").is_dir() and (path / "new").is_dir()):
            raise ConfigError(
                "this folder is not a Maildir (it has no cur/ and new/)",
                path=path,
                hint="give a Maildir, an mbox file or imaps://user@host/folder",
            )
        return MaildirSource(path)
    if path.is_file():
        return MboxSource(path)
    raise ConfigError(
        "no such Maildir or mbox file",
        path=path,
        hint="give a Maildir, an mbox file or imaps://user@host/folder",
    )


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
