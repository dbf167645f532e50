"""The SMTP pool: reused, pipelined connections to one or more relays, with failover and rate limits.

``SmtpPool(relays, concurrency=8, ...)`` runs ``concurrency`` worker tasks that pull messages from
one queue, each on its own connection (:class:`~mailer.transport.smtp.connection.Connection`),
reused for message after message. A connection that breaks (dropped, timed out, ``421``) is closed
and replaced on the next message; the messages that were on it are reported as temporary failures,
and the caller may requeue them (``SendStream.requeue``), except one whose whole payload, final dot
included, had gone out: with no reply to it, its result is ``after_dot`` and :attr:`SendResult.unknown`
(the relay may have delivered it; RFC 5321, 4.1.1.4). A connection that died while idle is replaced
silently before the next message.

Relays are tried in order: when one cannot be connected to, the pool moves to the next and stays
there (wrapping around to the first after the last). Rate limits apply per relay, across all of
its connections (:class:`~mailer.transport.limits.RateLimiter`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self

import aiosmtplib

from mailer.errors import ConfigError, TransportError
from mailer.setting_values import check_ehlo_name
from mailer.transport.base import Job, Outgoing, SendResult, SendStream, send_one
from mailer.transport.limits import RateLimiter
from mailer.transport.smtp.connection import Connection, Reply
from mailer.transport.smtp.relay import Relay, parse_relay

log = logging.getLogger(__name__)


class SmtpPool:
    """A pool of SMTP connections to one or more relays (failover in order); see the module doc.

    Use as ``async with SmtpPool(urls) as pool:`` then ``await pool.send(...)`` for one message or
    ``async for result in pool.send_many(messages)`` to keep every connection busy.

    ``local_hostname`` is the name given in EHLO (a workspace's ``Settings.ehlo_name``: its
    ``ehlo_hostname`` setting, else its list domain); without one, the machine's own name.
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
        self.local_hostname = local_hostname if local_hostname is None else check_ehlo_name(local_hostname)
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
        self._spare: list[Connection] = []
        self._live: set[Connection] = set()  # connections the watchdog times out
        self._watchdog: asyncio.Task[None] | None = None
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
        self._watchdog = asyncio.create_task(self._watch_replies())
        try:
            self._spare.append(await self._connect())
        except BaseException:
            self._watchdog.cancel()
            raise
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
        if self._watchdog is not None:
            self._watchdog.cancel()

    async def _watch_replies(self) -> None:
        """Time out the connections whose reply is late: a deadline per connection, checked four
        times per timeout (at most once a second), instead of a timer per reply."""
        loop = asyncio.get_running_loop()
        period = min(1.0, self.timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for conn in list(self._live):
                if conn.lost is not None:
                    self._live.discard(conn)
                else:
                    conn.overdue(now)

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
    async def _connect(self) -> Connection:
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

    async def _open_connection(self, relay: Relay) -> Connection:
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
        conn = Connection(
            transport,
            relay=relay,
            number=self.connections_made,
            timeout=self.timeout,
            pipelining=client.supports_extension("pipelining"),
            eightbit=client.supports_extension("8bitmime"),
            smtputf8=client.supports_extension("smtputf8"),
        )
        transport.set_protocol(conn)
        self._live.add(conn)
        return conn

    # -- workers ------------------------------------------------------------------------------------
    async def _worker(self) -> None:
        try:
            await self._work()
        except Exception:
            log.exception("an SMTP pool worker failed")
            raise

    async def _work(self) -> None:
        conn: Connection | None = None
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

    async def _serve(self, conn: Connection, job: Job) -> Job | None:
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
                    envelope = self._envelope(conn, following) if following is not None else None
                    # The payload and the next envelope in one write: one system call, one segment less.
                    payload = current.message.payload
                    conn.write(b"".join((payload, envelope)) if envelope else payload)
                    sent = True
                    code, text = (await conn.read(1))[0]
                    if not (200 <= code < 300 or 400 <= code < 600):
                        # 1xx or 3xx to the final dot is no answer at all: the outcome is unknown.
                        raise TransportError(f"{label} answered the message with {code} {text[:100]!r}")
                    current.report(SendResult.from_reply(current.message, code, text, label, after_dot=True))
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
            _report_broken(exc, label, current, following, sent)
            return await self._take()
        except BaseException as exc:
            # Cancelled (an aborting close) or a bug: nobody may be left waiting for these.
            conn.abort()
            _fail_pending(exc, current, following)
            raise

    def _write_envelope(self, conn: Connection, job: Job) -> None:
        envelope = self._envelope(conn, job)
        if envelope:
            conn.write(envelope)

    def _envelope(self, conn: Connection, job: Job) -> bytes:
        """The pipelined envelope of ``job`` (RSET first if a refused one is still open), or b""
        when the relay cannot take it (the job is then reported failed)."""
        commands = conn.envelope(job.message)
        if isinstance(commands, str):
            job.report(SendResult.failed(job.message, commands, temporary=False, relay=conn.label))
            return b""
        mail, rcpt, data = commands
        conn.sent_rset = conn.need_rset
        conn.need_rset = False
        return (b"RSET\r\n" + mail if conn.sent_rset else mail) + rcpt + data

    async def _envelope_accepted(self, conn: Connection, job: Job) -> bool:
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


def _report_broken(
    exc: TransportError, label: str, current: Job | None, following: Job | None, sent: bool
) -> None:
    """Report the jobs that were on a connection that broke as temporary failures; ``sent``: the
    current job's whole payload had gone out, so it may have been delivered (``after_dot``)."""
    if current is not None:
        note = " (after the whole message was sent: it may have been delivered)" if sent else ""
        current.report(
            SendResult.failed(
                current.message, exc.message + note, temporary=True, relay=label, after_dot=sent
            )
        )
    if following is not None:
        following.report(SendResult.failed(following.message, exc.message, temporary=True, relay=label))


def _fail_pending(exc: BaseException, *jobs: Job | None) -> None:
    """Fail the jobs not yet reported with ``exc`` (a cancelled pool's: "the pool was closed")."""
    for pending in jobs:
        if pending is not None and not pending.done:
            pending.done = True
            pending.sink.fail(exc if not isinstance(exc, asyncio.CancelledError) else _stopped())


def _stopped() -> TransportError:
    return TransportError("the SMTP pool was closed before the message was sent", temporary=True)
