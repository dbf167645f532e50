"""One pipelined SMTP connection: the hot path of sending.

The slow part of sending ready bytes with ``smtplib`` or ``aiosmtplib.sendmail`` is not the wire:
both re-scan every message to normalise line endings and dot-stuff it, and wait for each reply
before the next command. Here the message builder hands over payloads that are already dot-stuffed
(see :mod:`mailer.transport.base`), and each connection speaks SMTP PIPELINING (RFC 2920) when the
relay offers it:

1. ``MAIL FROM``, ``RCPT TO`` and ``DATA`` go out in one write; the three replies are read together.
2. On ``354`` the payload is written as is, and, if another message is already waiting, its
   ``MAIL``/``RCPT``/``DATA`` go out right behind it (RFC 2920 allows message content to open a
   group), so each message costs one round trip, not four.
3. The final reply to the payload is read together with the next message's envelope replies.

A refused recipient (or sender) ends that transaction: its result is reported, and an ``RSET``
leads the next group. Relays that do not offer PIPELINING get the same commands one at a time.

aiosmtplib does the part of a connection it is good at and that must be right rather than fast:
connecting, the greeting, EHLO/HELO, STARTTLS and implicit TLS with certificate checks, and AUTH
(see :mod:`mailer.transport.smtp.pool`). Its protocol object reads exactly one reply per command
written (extra replies that arrive in the same packet are dropped, by design), so it cannot carry a
pipelined exchange. Once the session is ready, the connection's asyncio transport (plain or TLS) is
therefore handed to :class:`Connection` (``transport.set_protocol``), which parses every reply as it
arrives and writes payloads straight to the socket. The aiosmtplib ``SMTP`` object is dropped at
that point.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple

from mailer.errors import TransportError
from mailer.transport.base import Outgoing
from mailer.transport.smtp.relay import Relay

MAX_REPLY = 65536
READ_BYTES = 16384  # the receive buffer: replies are short, and a read takes what is there


class Reply(NamedTuple):
    code: int
    text: str


class Connection(asyncio.BufferedProtocol):
    """The pipelined hot path: writes ready bytes, parses every reply as it arrives.

    A buffered protocol: the transport receives into one buffer of ours, kept for the connection's
    life (a plain protocol gets a new bytes object per read, which asyncio allocates at 256 KiB,
    far more than the few replies a read brings, and pays for in system calls every time)."""

    def __init__(
        self,
        transport: asyncio.Transport,
        *,
        relay: Relay,
        number: int,
        timeout: float,
        pipelining: bool,
        eightbit: bool,
        smtputf8: bool,
    ) -> None:
        self.transport = transport
        self.relay = relay
        self.label = relay.label
        self.number = number
        self.timeout = timeout
        self.pipelining = pipelining
        self.eightbit = eightbit
        self.smtputf8 = smtputf8
        self.need_rset = False  # a refused transaction is still open on the server
        self.sent_rset = False  # the envelope written last began with RSET
        self.lost: TransportError | None = None
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._received = bytearray(READ_BYTES)
        self._view = memoryview(self._received)
        self._lines: list[bytes] = []
        self._replies: deque[Reply] = deque()
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None
        self.deadline = 0.0  # when the reply being waited for is late (loop time); see ``overdue``

    # -- asyncio.BufferedProtocol ---------------------------------------------------------------
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._view[:nbytes]))

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        lines = data.split(b"\n")
        rest = lines.pop()  # after the last line feed: the start of a line still to come
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            sep = line[3:4]
            if len(line) < 3 or not line[:3].isdigit() or sep not in (b"", b" ", b"-"):
                self._break(TransportError(f"{self.label} sent a malformed reply: {line[:100]!r}"))
                return
            if sep == b"-":
                self._lines.append(line[4:])
                continue
            if self._lines:
                self._lines.append(line[4:])
                text = b"\n".join(self._lines).decode("utf-8", "replace")
                self._lines.clear()
            else:
                text = line[4:].decode("utf-8", "replace")
            self._replies.append(Reply(int(line[:3]), text))
        if rest:
            if len(rest) > MAX_REPLY:
                self._break(TransportError(f"{self.label} sent a reply line too long to be SMTP"))
                return
            buf += rest
        waiter = self._waiter
        if waiter is not None and len(self._replies) >= self._want and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            reason = f": {exc}" if exc else ""
            self.lost = TransportError(f"{self.label} closed the connection{reason}")
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.lost)

    # -- use --------------------------------------------------------------------------------------
    def write(self, data: bytes | memoryview) -> None:
        if self.lost is not None:
            raise self.lost
        self.transport.write(data)

    async def read(self, count: int) -> list[Reply]:
        """The next ``count`` replies; TransportError if the connection breaks or times out first.

        The timeout is a deadline that the pool's watchdog checks (``overdue``) several times per
        timeout, rather than a timer set and cancelled for every reply."""
        replies = self._replies
        if len(replies) < count:
            if self.lost is not None:
                raise self.lost
            self._want = count
            waiter = self._waiter = self._loop.create_future()
            self.deadline = self._loop.time() + self.timeout
            try:
                await waiter
            finally:
                self._waiter = None
        return [replies.popleft() for _ in range(count)]

    def overdue(self, now: float) -> bool:
        """Time out a reply not come by its deadline (``now``: loop time); True when it did."""
        waiter = self._waiter
        if waiter is None or waiter.done() or now < self.deadline:
            return False
        self._break(TransportError(f"{self.label} did not reply within {self.timeout:g} s"))
        return True

    def _break(self, error: TransportError) -> None:
        if self.lost is None:
            self.lost = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.lost)
        self.transport.abort()

    def abort(self) -> None:
        self._break(TransportError(f"connection to {self.label} abandoned"))

    async def quit(self) -> None:
        """Say QUIT and close; never raises."""
        if self.lost is None:
            try:
                self.write(b"QUIT\r\n")
                self.timeout = min(self.timeout, 5.0)
                await asyncio.wait_for(self.read(1), self.timeout)
            except (TransportError, TimeoutError):
                pass
        if not self.transport.is_closing():
            self.transport.close()
        if self.lost is None:
            self.lost = TransportError(f"connection to {self.label} closed")

    # -- commands ---------------------------------------------------------------------------------
    def envelope(self, message: Outgoing) -> tuple[bytes, bytes, bytes] | str:
        """MAIL, RCPT and DATA commands for ``message``, or why the relay cannot take it."""
        params = b""
        try:
            sender = message.sender.encode("ascii")
            recipient = message.recipient.encode("ascii")
        except UnicodeEncodeError:
            if not self.smtputf8:
                return f"{self.label} does not support SMTPUTF8, needed for non-ASCII addresses"
            sender = message.sender.encode("utf-8")
            recipient = message.recipient.encode("utf-8")
            params = b" SMTPUTF8"
        if self.eightbit and message.eight_bit is not False and not bytes(message.payload).isascii():
            params += b" BODY=8BITMIME"
        return (
            b"MAIL FROM:<" + sender + b">" + params + b"\r\n",
            b"RCPT TO:<" + recipient + b">\r\n",
            b"DATA\r\n",
        )
