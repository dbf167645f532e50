"""The embedded default transport: every message becomes a file in a Maildir outbox.

``maildir:///abs/path`` (a relative path in mailer.toml is inside the workspace). Each message is
written to ``tmp/``, flushed to disk, then renamed into ``new/`` (the Maildir rule, so a reader
never sees half a file). The file is the message with LF line endings and the dot-stuffing undone,
led by ``Return-Path: <sender>`` and ``Delivered-To: <recipient>`` so the envelope is kept, as a
local delivery agent would write it; any mail client, ``mailbox.Maildir`` or ``mutt -f`` reads it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import AsyncIterable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import unquote, urlsplit

from mailer.errors import ConfigError, TransportError
from mailer.transport.base import (
    Job,
    Outgoing,
    SendResult,
    SendStream,
    message_from_payload,
    send_one,
)


def maildir_path(url: str) -> Path:
    """The folder of a ``maildir:///abs/path`` URL."""
    parts = urlsplit(url.strip())
    if parts.scheme != "maildir" or parts.netloc or not parts.path.startswith("/"):
        raise ConfigError(
            f"not a Maildir URL: {url!r}",
            field="relay",
            hint="write maildir:///absolute/path, or maildir://outbox for a folder in the workspace",
        )
    return Path(unquote(parts.path))


class MaildirTransport:
    """Writes each message into a Maildir; the same interface as :class:`SmtpPool`."""

    def __init__(self, url: str | Path, *, concurrency: int = 2, fsync: bool = True) -> None:
        self.path = url if isinstance(url, Path) else maildir_path(url)
        self.url = f"maildir://{self.path}"
        self.concurrency = max(1, concurrency)
        self.fsync = fsync
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        self._counter = itertools.count(1)
        self._jobs: asyncio.Queue[Job | None] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._opened = False
        self._closing = False

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the Maildir (tmp/, new/, cur/) if needed; TransportError if that cannot be done."""
        if self._opened:
            return
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(f"cannot create the Maildir {self.path}: {exc}", temporary=False) from exc
        self._workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        self._opened = True

    async def close(self, abort: bool = False) -> None:
        """Write what is queued (unless ``abort``), then stop."""
        if not self._opened or self._closing:
            return
        self._closing = True
        for task in self._workers:
            if abort:
                task.cancel()
            else:
                self._jobs.put_nowait(None)
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def send(self, sender: str, recipient: str, payload: bytes, *, key: object = None) -> SendResult:
        return await send_one(self._submit, sender, recipient, payload, key)

    def send_many(
        self, messages: Iterable[Outgoing] | AsyncIterable[Outgoing], *, window: int | None = None
    ) -> SendStream:
        return SendStream(self._submit, messages, window or 64)

    def _submit(self, job: Job) -> None:
        if not self._opened or self._closing:
            raise TransportError("the Maildir transport is not open", temporary=True)
        self._jobs.put_nowait(job)

    async def _worker(self) -> None:
        while (job := await self._jobs.get()) is not None:
            if job.sink.stopped:
                job.sink.discard()
                continue
            message = job.message
            try:
                name = await asyncio.to_thread(self.write, message)
            except (OSError, ValueError) as exc:
                job.report(SendResult.failed(message, f"cannot write to {self.path}: {exc}", temporary=True))
            except BaseException as exc:
                job.done = True
                job.sink.fail(exc)
                raise
            else:
                job.report(
                    SendResult(
                        ok=True,
                        code=None,
                        text=f"saved as {name}",
                        temporary=False,
                        recipient=message.recipient,
                        relay=self.url,
                        message=message,
                    )
                )

    def write(self, message: Outgoing) -> str:
        """Write one message into new/ (through tmp/) and return its file name."""
        body = message_from_payload(message.payload).replace(b"\r\n", b"\n")
        head = f"Return-Path: <{message.sender}>\nDelivered-To: {message.recipient}\n".encode()
        now = time.time()
        name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(self._counter)}.{self._host}"
        tmp = self.path / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(head)
                fh.write(body)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.rename(tmp, self.path / "new" / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return name
