"""A real SMTP server for tests (aiosmtpd), on 127.0.0.1 and a free port, that can misbehave.

It runs its own event loop in a thread, so tests can drive it from synchronous code or from
their own ``asyncio.run``. It records every message it accepts (:attr:`SmtpTestServer.messages`:
envelope sender, recipients, the data as received with the dot-stuffing undone, and the number of
the connection it came on), the name each EHLO greeting gave (:attr:`SmtpTestServer.ehlo_names`),
and can be told to fail:

- ``tempfail(...)``: a 4xx reply at the end of DATA, for recipients matching a pattern, for the
  Nth message (counted from 1 at each DATA command), or for every message; ``stage="mail"``,
  ``"rcpt"`` or ``"data"`` gives it at MAIL (matching the sender), RCPT or the DATA command instead;
- ``reject(pattern)``: ``550 5.1.1`` (or a reply of your own) at RCPT for matching recipients;
- ``drop(...)``: close the connection in the middle of DATA, after reading part of the payload
  (``when="at-data"``: at the DATA command, before any of it; ``"after-dot"``: once all of it,
  final dot included, has been read, without replying);
- ``garbage(...)``: answer the final dot with a line that is not SMTP;
- ``hang(...)``: never answer the final dot;
- ``delay(seconds, ...)``: wait before replying at the end of DATA (slower than a client timeout);
- ``refuse = True``: close every new connection before the greeting.

Each rule fires ``times`` times (default: always), and, given ``until`` (a callable, say comparing
a test's clock with a time), only until ``until()`` is true. A message read whole but never answered
(drop after the dot, garbage, hang) is kept in :attr:`SmtpTestServer.unanswered`: the relay may
have delivered it, as far as the client can tell. It advertises PIPELINING unless told not to,
offers STARTTLS or runs TLS from the start with a certificate you give it, and takes AUTH with a
user name and password of your choosing.

aiosmtpd reads DATA one line at a time, which made it the slowest part of every test that sends
thousands of messages; this server reads the payload in a few large pieces instead, with the same
replies, limits and result (``_RecordingSMTP._read_data``).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # as received after DATA, dot-stuffing undone, CRLF line endings
    connection: int  # 1 for the first connection the server accepted, and so on
    received_at: float = field(default_factory=time.time)  # wall clock, comparable across processes


@dataclass
class Rule:
    action: str  # "tempfail", "reject", "drop", "delay", "garbage", "hang"
    match: re.Pattern[str] | None = None
    nth: int | None = None
    reply: str = ""
    seconds: float = 0.0
    times: int | None = None  # None: every time
    fired: int = 0
    stage: str = ""  # tempfail: "mail", "rcpt", "data" or "dot"; drop: "at-data", "in-data", "after-dot"
    until: Callable[[], bool] | None = None  # the rule stops applying once this is true

    def applies(self, recipients: list[str], number: int) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.until is not None and self.until():
            return False
        if self.nth is not None and number != self.nth:
            return False
        if self.match is not None and not any(self.match.search(r) for r in recipients):
            return False
        self.fired += 1
        return True


@dataclass
class _State:
    """Shared by the server thread and the test; guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: list[Received] = field(default_factory=list)
    unanswered: list[Received] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    connections: int = 0
    data_commands: int = 0
    ehlo_names: list[str] = field(default_factory=list)  # the name each EHLO gave, in order
    # (connection number, command, bytes of later commands already waiting when it was handled)
    commands: list[tuple[int, str, int]] = field(default_factory=list)


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP with a connection number, a drop-in-DATA fault and refusal."""

    def __init__(self, server: SmtpTestServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.test_server = server
        self.connection_number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            state = self.test_server.state
            with state.lock:
                state.connections += 1
                self.connection_number = state.connections
            if self.test_server.refuse:
                transport.close()

    async def smtp_DATA(self, arg: str) -> None:
        assert self.envelope is not None
        state = self.test_server.state
        if self.envelope.rcpt_tos:
            with state.lock:
                state.data_commands += 1
                number = state.data_commands
                refuse = self.test_server._rule("tempfail", self.envelope.rcpt_tos, number, "data")
                drop = self.test_server._rule("drop", self.envelope.rcpt_tos, number, "at-data")
                drop = drop or self.test_server._rule("drop", self.envelope.rcpt_tos, number, "in-data")
            self.envelope.data_number = number  # type: ignore[attr-defined]
            if refuse is not None:
                await self.push(refuse.reply)
                return
            if drop is not None:
                if drop.stage == "in-data":
                    await self.push("354 End data with <CR><LF>.<CR><LF>")
                    await self._reader.read(1024)  # part of the payload, then hang up
                assert isinstance(self.transport, asyncio.Transport)
                assert self._handler_coroutine is not None
                self.transport.abort()
                self._handler_coroutine.cancel()  # read nothing more from this connection
                return
        await self._receive_data(arg)

    async def _receive_data(self, arg: str) -> None:
        """aiosmtpd's ``smtp_DATA`` (1.4, without ``decode_data``), reading with ``_read_data``."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            raw = await self._read_data()
        except asyncio.CancelledError:  # the connection was lost during DATA
            self._writer.close()
            raise
        lines = raw.split(b"\r\n")[:-1]  # each line without its CRLF; the lone dot is gone already
        if any(len(line) + 2 > self.line_length_limit for line in lines):
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        if self.data_size_limit and len(raw) > self.data_size_limit:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        # Undo the dot-stuffing (RFC 5321, 4.5.2): a line's leading dot goes.
        content = (b"\r\n" + raw).replace(b"\r\n.", b"\r\n")[2:]
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> bytes:
        """The payload after DATA, up to the line holding a lone dot (which is left out)."""
        reader = self._reader
        line_limit = reader._limit  # type: ignore[attr-defined]
        # Whole stretches of lines at a time, not one line: lift the stream's line-length limit
        # (lines are checked afterwards, as aiosmtpd does).
        reader._limit = 2**31  # type: ignore[attr-defined]
        data = bytearray()
        try:
            while True:
                data += await reader.readuntil(b".\r\n")
                if data == b".\r\n":
                    return b""
                if data.endswith(b"\r\n.\r\n"):
                    return bytes(data[:-3])
        finally:
            reader._limit = line_limit  # type: ignore[attr-defined]

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        waiting = len(self._reader._buffer)  # type: ignore[attr-defined]
        with self.test_server.state.lock:
            self.test_server.state.commands.append((self.connection_number, command, waiting))
        return await super()._call_handler_hook(command, *args)


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.server.state.lock:
            self.server.state.ehlo_names.append(hostname)
        if self.server.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.server.state.lock:
            rule = self.server._rule("tempfail", [address], 0, "mail")
        if rule is not None:
            return rule.reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.server.state.lock:
            rule = self.server._rule("reject", [address], 0) or self.server._rule(
                "tempfail", [address], 0, "rcpt"
            )
        if rule is not None:
            return rule.reply.format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        number = getattr(envelope, "data_number", 0)
        recipients = list(envelope.rcpt_tos)
        with self.server.state.lock:
            delay = self.server._rule("delay", recipients, number)
            unanswered = (
                self.server._rule("drop", recipients, number, "after-dot")
                or self.server._rule("garbage", recipients, number)
                or self.server._rule("hang", recipients, number)
            )
            fail = None if unanswered else self.server._rule("tempfail", recipients, number, "dot")
        if delay is not None:
            await asyncio.sleep(delay.seconds)
        if fail is not None:
            return fail.reply
        assert isinstance(server, _RecordingSMTP)
        content = envelope.original_content
        assert isinstance(content, bytes)
        received = Received(envelope.mail_from or "", recipients, content, server.connection_number)
        if unanswered is not None:  # read whole, and then: no valid answer
            with self.server.state.lock:
                self.server.state.unanswered.append(received)
            if unanswered.action == "garbage":
                return unanswered.reply
            if unanswered.action == "drop":
                assert isinstance(server.transport, asyncio.Transport)
                server.transport.abort()
            await asyncio.sleep(3600)  # until the client gives up (or the connection is lost)
            return "250 2.0.0 OK, far too late"
        with self.server.state.lock:
            self.server.state.messages.append(received)
        return f"250 2.0.0 OK queued as {number}"


class SmtpTestServer:
    """Start with ``start()`` (or use as a context manager); ``url`` is where to send."""

    def __init__(
        self,
        *,
        pipelining: bool = True,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.pipelining = pipelining
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.users = dict(users or {})
        self.timeout = timeout
        self.refuse = False
        self.state = _State()
        self.host = "127.0.0.1"
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    # -- where --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp+starttls" if self.starttls else "smtp"
        return f"{scheme}://{self.host}:{self.port}"

    def url_with_login(self, user: str) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp+starttls" if self.starttls else "smtp"
        return f"{scheme}://{user}:{self.users[user]}@{self.host}:{self.port}"

    # -- what it got ----------------------------------------------------------------------------------
    @property
    def messages(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.messages)

    @property
    def unanswered(self) -> list[Received]:
        """Messages read whole, final dot included, then never answered (dropped, garbage, hang)."""
        with self.state.lock:
            return list(self.state.unanswered)

    @property
    def connections(self) -> int:
        """How many connections the server has accepted."""
        with self.state.lock:
            return self.state.connections

    @property
    def ehlo_names(self) -> list[str]:
        """The name each EHLO greeting gave (one per EHLO: a STARTTLS connection greets twice)."""
        with self.state.lock:
            return list(self.state.ehlo_names)

    @property
    def commands(self) -> list[tuple[int, str, int]]:
        """(connection, command, bytes already waiting behind it) for each command handled.

        A MAIL command handled while its RCPT and DATA are already waiting was pipelined.
        """
        with self.state.lock:
            return list(self.state.commands)

    # -- faults -----------------------------------------------------------------------------------------
    def _add(self, rule: Rule) -> Rule:
        with self.state.lock:
            self.state.rules.append(rule)
        return rule

    def _rule(self, action: str, recipients: list[str], number: int, stage: str = "") -> Rule | None:
        """The first rule for ``action`` (at ``stage``) that applies (the caller holds the lock)."""
        for rule in self.state.rules:
            if rule.action == action and rule.stage == stage and rule.applies(recipients, number):
                return rule
        return None

    @staticmethod
    def _pattern(match: str | None) -> re.Pattern[str] | None:
        return re.compile(match) if match is not None else None

    def tempfail(
        self,
        match: str | None = None,
        *,
        nth: int | None = None,
        times: int | None = None,
        reply: str = "451 4.3.0 Temporary failure, try again later",
        stage: str = "dot",
        until: Callable[[], bool] | None = None,
    ) -> Rule:
        """A 4xx (or any) ``reply`` at ``stage``: "mail" (``match`` is the sender), "rcpt", "data"
        (the DATA command) or "dot" (the end of DATA). ``nth`` counts DATA commands ("data", "dot")."""
        assert stage in ("mail", "rcpt", "data", "dot"), stage
        rule = Rule("tempfail", self._pattern(match), nth, reply, times=times, stage=stage, until=until)
        return self._add(rule)

    def reject(
        self, match: str, *, reply: str = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"
    ) -> Rule:
        return self._add(Rule("reject", self._pattern(match), None, reply))

    def drop(
        self,
        match: str | None = None,
        *,
        nth: int | None = None,
        times: int | None = 1,
        when: str = "in-data",
    ) -> Rule:
        """Hang up: ``when`` "at-data" (at the DATA command), "in-data" (after part of the payload)
        or "after-dot" (after all of it, final dot included, unanswered)."""
        assert when in ("at-data", "in-data", "after-dot"), when
        return self._add(Rule("drop", self._pattern(match), nth, times=times, stage=when))

    def garbage(
        self,
        match: str | None = None,
        *,
        nth: int | None = None,
        times: int | None = 1,
        reply: str = "Thank you for your message!",
    ) -> Rule:
        """Answer the final dot with ``reply``, a line that is not SMTP."""
        return self._add(Rule("garbage", self._pattern(match), nth, reply, times=times))

    def hang(self, match: str | None = None, *, nth: int | None = None, times: int | None = 1) -> Rule:
        """Never answer the final dot (the client times out)."""
        return self._add(Rule("hang", self._pattern(match), nth, times=times))

    def delay(
        self, seconds: float, match: str | None = None, *, nth: int | None = None, times: int | None = None
    ) -> Rule:
        return self._add(Rule("delay", self._pattern(match), nth, seconds=seconds, times=times))

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.rules.clear()

    # -- lifecycle --------------------------------------------------------------------------------------
    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode()
            if self.users.get(user) == auth_data.password.decode():
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _factory(self) -> _RecordingSMTP:
        with warnings.catch_warnings():
            # AUTH without STARTTLS is fine here when the whole connection is TLS (implicit_tls).
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return self._make_smtp()

    def _make_smtp(self) -> _RecordingSMTP:
        return _RecordingSMTP(
            self,
            _Handler(self),
            loop=self._loop,
            hostname="test.smtp.local",
            tls_context=self.starttls,
            require_starttls=self.starttls is not None,
            auth_required=bool(self.users),
            auth_require_tls=self.starttls is not None,
            authenticator=self._authenticate if self.users else None,
            timeout=self.timeout,
        )

    def start(self) -> SmtpTestServer:
        loop = self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(self._factory, self.host, 0, ssl=self.implicit_tls)
                )
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtp-test-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where every connection is refused (bound, never listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()
