"""Sending over SMTP relays: a pool of reused, pipelined connections with failover and rate limits.

How a connection works, and why
-------------------------------
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
connecting, the greeting, EHLO/HELO, STARTTLS and implicit TLS with certificate checks, and AUTH.
Its protocol object reads exactly one reply per command written (extra replies that arrive in the
same packet are dropped, by design), so it cannot carry a pipelined exchange. Once the session is
ready, the connection's asyncio transport (plain or TLS) is therefore handed to a small protocol
of our own (``transport.set_protocol``), which parses every reply as it arrives and writes
payloads straight to the socket. The aiosmtplib ``SMTP`` object is dropped at that point.

The pool
--------
``SmtpPool(relays, concurrency=8, ...)`` runs ``concurrency`` worker tasks that pull messages from
one queue, each on its own connection, reused for message after message. A connection that breaks
(dropped, timed out, ``421``) is closed and replaced on the next message; the messages that were
on it are reported as temporary failures, and the caller may requeue them (``SendStream.requeue``).
A connection that died while idle is replaced silently before the next message.

Relays are tried in order: when one cannot be connected to, the pool moves to the next and stays
there (wrapping around to the first after the last). Rate limits apply per relay, across all of
its connections (:class:`~mailer.transport.limits.RateLimiter`).

Relay URLs
----------
``smtp://host[:25]``, ``smtp+starttls://user@host[:587]`` (STARTTLS required) and
``smtps://user@host[:465]`` (TLS from the start). With a user name the pool logs in (AUTH); the
password is taken from the ``MAILER_RELAY_PASSWORD`` environment variable, or, for tests and
throwaway relays only, from the URL itself (``smtps://user:secret@host``, percent-encoded); it
never appears in a label, a log line or a result.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import NamedTuple, Self
from urllib.parse import unquote, urlsplit

import aiosmtplib

from mailer.errors import ConfigError, TransportError
from mailer.transport.base import (
    Job,
    Outgoing,
    SendResult,
    SendStream,
    send_one,
)
from mailer.transport.limits import RateLimiter

log = logging.getLogger(__name__)

PASSWORD_ENV = "MAILER_RELAY_PASSWORD"
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
MAX_REPLY = 65536


@dataclass(frozen=True)
class Relay:
    """One relay from a URL. ``label`` is the URL without any password."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"

    def __str__(self) -> str:
        return self.label


def parse_relay(url: str, env: Mapping[str, str] | None = None) -> Relay:
    """Parse an SMTP relay URL; the password comes from the URL or ``MAILER_RELAY_PASSWORD``."""
    env = os.environ if env is None else env
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    hint = "use smtp://host:25, smtp+starttls://user@host:587 or smtps://user@host:465"
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(f"unknown relay scheme in {url!r}", field="relay", hint=hint)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ConfigError(f"bad port in relay {url!r}", field="relay", hint=hint) from exc
    if not parts.hostname:
        raise ConfigError(f"no host in relay {url!r}", field="relay", hint=hint)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"unexpected path or options in relay {url!r}", field="relay", hint=hint)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        password = env.get(PASSWORD_ENV)
        if not password:
            raise ConfigError(
                f"relay {scheme}://{username}@{parts.hostname} needs a password",
                field="relay",
                hint=f"set {PASSWORD_ENV} in the environment",
            )
    return Relay(scheme, parts.hostname, port, username, password)


class Reply(NamedTuple):
    code: int
    text: str


class _Connection(asyncio.Protocol):
    """The pipelined hot path: writes ready bytes, parses every reply as it arrives."""

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
        self._lines: list[bytes] = []
        self._replies: deque[Reply] = deque()
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        while (end := buf.find(b"\n", pos)) >= 0:
            line = bytes(buf[pos:end]).rstrip(b"\r")
            pos = end + 1
            sep = line[3:4]
            if len(line) < 3 or not line[:3].isdigit() or sep not in (b"", b" ", b"-"):
                self._break(TransportError(f"{self.label} sent a malformed reply: {line[:100]!r}"))
                return
            self._lines.append(line[4:])
            if sep == b"-":
                continue
            text = b"\n".join(self._lines).decode("utf-8", "replace")
            self._lines.clear()
            self._replies.append(Reply(int(line[:3]), text))
        if pos:
            del buf[:pos]
        if len(buf) > MAX_REPLY:
            self._break(TransportError(f"{self.label} sent a reply line too long to be SMTP"))
            return
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
    def write(self, data: bytes) -> None:
        if self.lost is not None:
            raise self.lost
        self.transport.write(data)

    async def read(self, count: int) -> list[Reply]:
        """The next ``count`` replies; TransportError if the connection breaks or times out first."""
        replies = self._replies
        if len(replies) < count:
            if self.lost is not None:
                raise self.lost
            self._want = count
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(self.timeout, self._time_out, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return [replies.popleft() for _ in range(count)]

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._break(TransportError(f"{self.label} did not reply within {self.timeout:g} s"))

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
                await self.read(1)
            except TransportError:
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
        if self.eightbit and not message.payload.isascii():
            params += b" BODY=8BITMIME"
        return (
            b"MAIL FROM:<" + sender + b">" + params + b"\r\n",
            b"RCPT TO:<" + recipient + b">\r\n",
            b"DATA\r\n",
        )


class SmtpPool:
    """A pool of SMTP connections to one or more relays (failover in order); see the module doc.

    Use as ``async with SmtpPool(urls) as pool:`` then ``await pool.send(...)`` for one message or
    ``async for result in pool.send_many(messages)`` to keep every connection busy.
    """

    def __init__(
        self,
        relays: Sequence[str | Relay] | str,
        *,
        concurrency: int = 8,
        rate_per_second: float = 0.0,
        rate_per_hour: int = 0,
        timeout: float = 60.0,
        connect_timeout: float | None = None,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        env: Mapping[str, str] | None = None,
        limiters: Sequence[RateLimiter] | None = None,
    ) -> None:
        urls = [u for u in relays.split(",") if u.strip()] if isinstance(relays, str) else list(relays)
        if not urls:
            raise ConfigError(
                "no relay given", field="relay", hint="set relay in mailer.toml or MAILER_RELAY"
            )
        if concurrency < 1:
            raise ConfigError("concurrency must be at least 1", field="concurrency")
        self.relays = [u if isinstance(u, Relay) else parse_relay(u, env) for u in urls]
        self.concurrency = concurrency
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.local_hostname = local_hostname
        self.tls_context = tls_context
        if limiters is not None and len(limiters) != len(self.relays):
            raise ValueError("give one limiter per relay")
        self.limiters = (
            list(limiters)
            if limiters is not None
            else [RateLimiter(rate_per_second, rate_per_hour) for _ in self.relays]
        )
        self.active = 0  # index of the relay new connections go to first
        self.connections_made = 0
        self._jobs: asyncio.Queue[Job | None] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._spare: list[_Connection] = []
        self._closing = False
        self._opened = False

    @property
    def url(self) -> str:
        """The label of the relay in use (no password)."""
        return self.relays[self.active].label

    # -- lifecycle ----------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(abort=exc is not None)

    async def open(self) -> None:
        """Connect once (failing over as needed) and start the workers.

        Raises TransportError when no relay can be reached, before anything is sent.
        """
        if self._opened:
            return
        if self.local_hostname is None:
            self.local_hostname = await asyncio.to_thread(socket.getfqdn)
        self._spare.append(await self._connect())
        self._workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        self._opened = True

    async def close(self, abort: bool = False) -> None:
        """Finish what is queued, say QUIT on every connection and stop (``abort``: stop at once)."""
        if not self._opened or self._closing:
            return
        self._closing = True
        if abort:
            for task in self._workers:
                task.cancel()
            while not self._jobs.empty():
                queued = self._jobs.get_nowait()
                if queued is not None and not queued.done:
                    queued.done = True
                    queued.sink.fail(_stopped())
        else:
            for _ in self._workers:
                self._jobs.put_nowait(None)
        await asyncio.gather(*self._workers, return_exceptions=True)
        for conn in self._spare:
            await conn.quit()
        self._spare.clear()

    # -- sending ----------------------------------------------------------------------------------
    async def send(self, sender: str, recipient: str, payload: bytes, *, key: object = None) -> SendResult:
        """Send one message (a ready DATA payload) and return what became of it."""
        return await send_one(self._submit, sender, recipient, payload, key)

    def send_many(
        self, messages: Iterable[Outgoing] | AsyncIterable[Outgoing], *, window: int | None = None
    ) -> SendStream:
        """Send messages over every connection; iterate the stream for results as they complete."""
        return SendStream(self._submit, messages, window or max(16, 4 * self.concurrency))

    def _submit(self, job: Job) -> None:
        if not self._opened or self._closing:
            raise TransportError("the SMTP pool is not open", temporary=True)
        self._jobs.put_nowait(job)

    async def _take(self) -> Job | None:
        """The next job to send (None: stop), skipping jobs of stopped streams."""
        while True:
            job = await self._jobs.get()
            if job is None or not job.sink.stopped:
                return job
            job.sink.discard()

    def _take_now(self, limiter: RateLimiter) -> Job | None:
        """A job that can go out right now, without waiting for the queue or the rate limit."""
        jobs = self._jobs
        while not jobs.empty() and limiter.reserve(take=False) == 0.0:
            job = jobs.get_nowait()
            if job is None:
                jobs.put_nowait(None)  # leave the stop signal for _take
                return None
            if job.sink.stopped:
                job.sink.discard()
                continue
            limiter.reserve()
            return job
        return None

    # -- connections --------------------------------------------------------------------------------
    async def _connect(self) -> _Connection:
        """A ready connection to the first relay that works, starting at the active one."""
        errors: list[str] = []
        temporary = True
        count = len(self.relays)
        for step in range(count):
            index = (self.active + step) % count
            relay = self.relays[index]
            try:
                conn = await self._open_connection(relay)
            except TransportError as exc:
                errors.append(f"{relay.label}: {exc.message}")
                temporary = temporary and exc.temporary
                continue
            if index != self.active:
                log.warning("relay %s unreachable; failing over to %s", self.url, relay.label)
                self.active = index
            return conn
        raise TransportError("no relay could be reached: " + "; ".join(errors), temporary=temporary)

    async def _open_connection(self, relay: Relay) -> _Connection:
        if self.tls_context is None and relay.scheme != "smtp":
            self.tls_context = ssl.create_default_context()  # the system's trust store, checked
        tls_context = self.tls_context if relay.scheme != "smtp" else None
        client = aiosmtplib.SMTP(
            hostname=relay.host,
            port=relay.port,
            username=relay.username,
            password=relay.password,
            local_hostname=self.local_hostname,
            timeout=self.connect_timeout,
            use_tls=relay.scheme == "smtps",
            start_tls=relay.scheme == "smtp+starttls",
            tls_context=tls_context,
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise TransportError(
                f"{exc.code} {exc.message}", code=exc.code, temporary=not 500 <= exc.code < 600
            ) from exc
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            raise TransportError(str(exc) or type(exc).__name__, temporary=True) from exc
        transport = client.transport
        if not isinstance(transport, asyncio.Transport):  # pragma: no cover - aiosmtplib always sets one
            client.close()
            raise TransportError(f"no transport after connecting to {relay.label}")
        self.connections_made += 1
        conn = _Connection(
            transport,
            relay=relay,
            number=self.connections_made,
            timeout=self.timeout,
            pipelining=client.supports_extension("pipelining"),
            eightbit=client.supports_extension("8bitmime"),
            smtputf8=client.supports_extension("smtputf8"),
        )
        transport.set_protocol(conn)
        return conn

    # -- workers ------------------------------------------------------------------------------------
    async def _worker(self) -> None:
        try:
            await self._work()
        except Exception:
            log.exception("an SMTP pool worker failed")
            raise

    async def _work(self) -> None:
        conn: _Connection | None = None
        failures = 0
        job = await self._take()
        while job is not None:
            if conn is None or conn.lost is not None:
                conn = self._spare.pop() if self._spare else None
                if conn is None or conn.lost is not None:
                    try:
                        conn = await self._connect()
                    except TransportError as exc:
                        conn = None
                        failures += 1
                        job.report(SendResult.failed(job.message, exc.message, temporary=exc.temporary))
                        await asyncio.sleep(min(10.0, 0.1 * 2**failures))
                        job = await self._take()
                        continue
                failures = 0
            job = await self._serve(conn, job)
        if conn is not None:
            await conn.quit()

    async def _serve(self, conn: _Connection, job: Job) -> Job | None:
        """Send ``job`` and every job after it on ``conn``.

        Returns None when the pool is stopping, or a job not yet tried when ``conn`` broke (the
        jobs that were on it have been reported as temporary failures).
        """
        limiter = self.limiters[self.relays.index(conn.relay)]
        label = conn.label
        current: Job | None = job
        following: Job | None = None
        sent = False  # the current job's payload is on the wire: a failure now may be a duplicate
        try:
            await limiter.acquire()
            if conn.pipelining:
                self._write_envelope(conn, job)
            while True:
                assert current is not None
                if not current.done and await self._envelope_accepted(conn, current):
                    if conn.pipelining:
                        following = self._take_now(limiter)
                    conn.write(current.message.payload)
                    sent = True
                    if following is not None:
                        self._write_envelope(conn, following)
                    code, text = (await conn.read(1))[0]
                    current.report(SendResult.from_reply(current.message, code, text, label))
                    if code == 421:
                        raise TransportError(f"{label} is closing the connection: {text}")
                current, sent = None, False
                if following is None:
                    following = await self._take()
                    if following is None:
                        return None
                    if conn.lost is not None:
                        return following  # died while idle: nothing lost, reconnect
                    await limiter.acquire()
                    if conn.pipelining:
                        self._write_envelope(conn, following)
                current, following = following, None
        except TransportError as exc:
            conn.abort()
            if current is not None:
                note = " (after the whole message was sent: it may have been delivered)" if sent else ""
                current.report(
                    SendResult.failed(current.message, exc.message + note, temporary=True, relay=label)
                )
            if following is not None:
                following.report(
                    SendResult.failed(following.message, exc.message, temporary=True, relay=label)
                )
            return await self._take()
        except BaseException as exc:
            # Cancelled (an aborting close) or a bug: nobody may be left waiting for these.
            conn.abort()
            for pending in (current, following):
                if pending is not None and not pending.done:
                    pending.done = True
                    pending.sink.fail(exc if not isinstance(exc, asyncio.CancelledError) else _stopped())
            raise

    def _write_envelope(self, conn: _Connection, job: Job) -> None:
        commands = conn.envelope(job.message)
        if isinstance(commands, str):
            job.report(SendResult.failed(job.message, commands, temporary=False, relay=conn.label))
            return
        mail, rcpt, data = commands
        conn.sent_rset = conn.need_rset
        conn.need_rset = False
        conn.write((b"RSET\r\n" + mail if conn.sent_rset else mail) + rcpt + data)

    async def _envelope_accepted(self, conn: _Connection, job: Job) -> bool:
        """Read (or, without pipelining, exchange) the envelope replies; True on 354."""
        message = job.message
        if conn.pipelining:
            replies = await conn.read(4 if conn.sent_rset else 3)
            mail, rcpt, data = replies[-3:]
        else:
            commands = conn.envelope(message)
            if isinstance(commands, str):
                job.report(SendResult.failed(message, commands, temporary=False, relay=conn.label))
                return False
            if conn.need_rset:
                conn.need_rset = False
                conn.write(b"RSET\r\n")
                await conn.read(1)
            conn.write(commands[0])
            mail = (await conn.read(1))[0]
            rcpt = data = Reply(503, "not sent")
            if mail.code < 400:
                conn.write(commands[1])
                rcpt = (await conn.read(1))[0]
                if rcpt.code < 400:
                    conn.write(commands[2])
                    data = (await conn.read(1))[0]
        if mail.code < 400 and rcpt.code < 400 and data.code == 354:
            return True
        failed = mail if mail.code >= 400 else rcpt if rcpt.code >= 400 else data
        job.report(SendResult.from_reply(message, failed.code, failed.text, conn.label))
        if data.code == 354:
            # A server that opened DATA despite refusing the envelope: end it with no content.
            conn.write(b".\r\n")
            await conn.read(1)
        elif mail.code < 400:
            conn.need_rset = True
        if 421 in (mail.code, rcpt.code, data.code):
            raise TransportError(f"{conn.label} is closing the connection: {failed.text}")
        return False


def _stopped() -> TransportError:
    return TransportError("the SMTP pool was closed before the message was sent", temporary=True)
