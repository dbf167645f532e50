"""What every transport shares: the message handed to it, the result it gives back, the stream.

A transport takes an :class:`Outgoing` (envelope sender, one recipient, and a *ready DATA
payload*) and reports a :class:`SendResult` for it. The payload is the message as it goes on
the wire after ``DATA``: CRLF line endings, dot-stuffed, ending in ``b"\\r\\n.\\r\\n"``; the
message builder produces it once per recipient, so nothing here scans it again (see
:func:`data_payload` to make one from plain message bytes, :func:`message_from_payload` to undo).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
_TERMINATOR = b"\r\n.\r\n"
# Control characters and angle brackets can never be part of an envelope address we send.
_BAD_ADDRESS = re.compile(r"[\x00-\x1f\x7f<>]")


def data_payload(message: bytes) -> bytes:
    """Turn message bytes (any line endings) into a DATA payload: CRLF, dot-stuffed, ``.\\r\\n`` last."""
    text = _LINE_ENDINGS.sub(b"\r\n", message)
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    if text.startswith(b"."):
        text = b"." + text
    return text.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def message_from_payload(payload: bytes | memoryview) -> bytes:
    """Undo :func:`data_payload`: drop the final ``.\\r\\n`` and the dot-stuffing (CRLF endings stay)."""
    payload = bytes(payload)
    check_payload(payload, thorough=True)
    body = payload[:-3]
    if body.startswith(b"."):
        body = body[1:]
    return body.replace(b"\r\n.", b"\r\n")


def check_payload(payload: bytes | memoryview, *, thorough: bool = False) -> None:
    """Raise ValueError unless ``payload`` looks like a DATA payload (CRLF, ends in CRLF.CRLF).

    Only the end is checked: dot-stuffing and line endings are the builder's job, and scanning a
    60 KB payload again per recipient is exactly the cost this design avoids. ``thorough`` also
    searches the whole payload for an early terminator (a line holding a lone '.', which would
    let the rest be read as SMTP commands); tests of the builder use it.
    """
    if isinstance(payload, memoryview):  # a view of a helper's shared memory (mailer.sending.fillers)
        if payload[-5:].tobytes() != _TERMINATOR or payload[:3].tobytes() == b".\r\n":
            raise ValueError(
                "not a DATA payload: it must be dot-stuffed with CRLF endings and end in CRLF.CRLF"
            )
        if thorough:
            check_payload(bytes(payload), thorough=True)
        return
    if not isinstance(payload, bytes):
        raise TypeError(f"a DATA payload is bytes, not {type(payload).__name__}")
    if not payload.endswith(_TERMINATOR) or payload.startswith(b".\r\n"):
        raise ValueError("not a DATA payload: it must be dot-stuffed with CRLF endings and end in CRLF.CRLF")
    if thorough and payload.find(_TERMINATOR) != len(payload) - 5:
        raise ValueError("not a DATA payload: a line holding a lone '.' ends it early (not dot-stuffed?)")


def check_address(address: str, what: str) -> None:
    if not address and what == "recipient":
        raise ValueError("the recipient address is empty")
    if _BAD_ADDRESS.search(address):
        raise ValueError(f"the {what} address {address!r} holds a control character or angle bracket")


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of a reply text ("5.1.1"), if there is one."""
    m = _ENHANCED.match(text)
    return f"{m.group(1)}.{m.group(2)}.{m.group(3)}" if m else None


@dataclass(slots=True)
class Outgoing:
    """One message for one recipient. ``key`` is the caller's (say, the delivery id), echoed back.
    ``eight_bit``: whether the payload has 8-bit bytes; None: look (False spares a scan of it per
    message, for a builder that only makes 7-bit messages). The payload may be a memoryview (of
    shared memory the caller keeps unchanged until the message's result comes back).

    Not frozen, though nothing changes one once made: one is made per message, and a frozen
    dataclass costs five times as much to make (so do results, below)."""

    sender: str
    recipient: str
    payload: bytes | memoryview = field(repr=False)
    key: Any = None
    eight_bit: bool | None = None


@dataclass(slots=True)
class SendResult:
    """What became of one message.

    ``ok``: the relay (or the Maildir) took it. Otherwise ``temporary`` says whether trying again
    later may work (a 4xx reply, a dropped connection, a timeout, no relay reachable) or not (5xx);
    ``code`` is the SMTP reply code where there was one, ``enhanced`` its RFC 3463 code ("5.1.1")
    and ``text`` the reply text or what went wrong. ``relay`` names the relay used (password-free).

    ``after_dot``: the whole message, final dot included, had been written to the relay when this
    result came (the reply to the message itself, or a failure while waiting for it). Without a
    reply (``code`` None: a timeout, a dropped connection, a garbled reply) the outcome is
    :attr:`unknown`: the relay may have delivered the message (RFC 5321, 4.1.1.4), and sending it
    again may deliver it twice. Every other temporary failure happened before the relay could
    have taken the message, so trying again cannot duplicate it.
    """

    ok: bool
    code: int | None
    text: str
    temporary: bool
    recipient: str
    enhanced: str | None = None
    relay: str = ""
    message: Outgoing | None = field(default=None, repr=False, compare=False)
    after_dot: bool = False

    @property
    def permanent(self) -> bool:
        return not self.ok and not self.temporary

    @property
    def unknown(self) -> bool:
        """No reply after the final dot: the relay may or may not have taken the message."""
        return not self.ok and self.after_dot and self.code is None

    @property
    def refused_for_now(self) -> bool:
        """A 4xx reply (at MAIL, RCPT, DATA or after the final dot): the relay asks to try later."""
        return not self.ok and self.code is not None and 400 <= self.code < 500

    @property
    def connection_fault(self) -> bool:
        """No reply, before the whole message was sent (dropped, timed out, unreachable): safe to resend."""
        return not self.ok and self.temporary and self.code is None and not self.after_dot

    @property
    def key(self) -> Any:
        return None if self.message is None else self.message.key

    @classmethod
    def from_reply(
        cls, message: Outgoing, code: int, text: str, relay: str, *, after_dot: bool = False
    ) -> SendResult:
        ok = 200 <= code < 300
        return cls(
            ok=ok,
            code=code,
            text=text,
            temporary=400 <= code < 500,
            recipient=message.recipient,
            enhanced=None if ok else enhanced_status(text),
            relay=relay,
            message=message,
            after_dot=after_dot,
        )

    @classmethod
    def failed(
        cls, message: Outgoing, text: str, *, temporary: bool, relay: str = "", after_dot: bool = False
    ) -> SendResult:
        return cls(
            ok=False,
            code=None,
            text=text,
            temporary=temporary,
            recipient=message.recipient,
            relay=relay,
            message=message,
            after_dot=after_dot,
        )


class Sink(Protocol):
    """Where a job's result goes: a waiting ``send()`` or a :class:`SendStream`."""

    stopped: bool

    def deliver(self, result: SendResult) -> None: ...

    def discard(self) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


@dataclass(slots=True, eq=False)
class Job:
    message: Outgoing
    sink: Sink
    done: bool = False

    def report(self, result: SendResult) -> None:
        if not self.done:
            self.done = True
            self.sink.deliver(result)


class FutureSink:
    """The sink of a single ``send()``: resolves one future."""

    stopped = False

    def __init__(self, future: asyncio.Future[SendResult]) -> None:
        self.future = future

    def deliver(self, result: SendResult) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def discard(self) -> None:  # pragma: no cover - a single send is never stopped
        pass

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class SendStream(AsyncIterator[SendResult]):
    """Results of ``send_many``, in the order they complete; an async iterator.

    It feeds messages to the transport while keeping at most ``window`` of them outstanding
    (submitted and not yet yielded), so every connection stays busy and memory stays bounded.
    ``requeue(message, delay)`` sends a message again (for a temporary failure; it goes out on
    whichever connection is free, normally not the one that failed, which was replaced; never for a
    result whose outcome is :attr:`SendResult.unknown`, which the relay may have delivered). ``stop()``
    feeds no more: messages already handed to a connection finish and are yielded, messages still
    queued are dropped without a result (they were never tried), then the iteration ends.

    If the messages themselves fail (the iterable raises, or yields something that is not a DATA
    payload), feeding stops, the messages already handed over finish and are yielded, and then
    that exception is raised. If the transport fails (a bug), its exception is raised at once.
    """

    def __init__(
        self,
        submit: Callable[[Job], None],
        messages: Iterable[Outgoing] | AsyncIterable[Outgoing],
        window: int,
    ) -> None:
        self._submit = submit
        self._messages = messages
        self._window = max(1, window)
        # The feeder refills in bursts, from three quarters full, rather than waking per result.
        self._low_water = max(0, self._window * 3 // 4 - 1)
        self._ready: deque[SendResult] = deque()
        self._outstanding = 0
        self._fed_all = False
        self._error: BaseException | None = None  # the transport failed: raised at once
        self._source_error: BaseException | None = None  # the messages failed: raised at the end
        self._waiter: asyncio.Future[None] | None = None
        self._room = asyncio.Event()
        self._feeder: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self.stopped = False

    # -- Sink ---------------------------------------------------------------------------------
    def deliver(self, result: SendResult) -> None:
        self._ready.append(result)
        self._wake()

    def discard(self) -> None:
        self._outstanding -= 1
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    # -- control --------------------------------------------------------------------------------
    def requeue(self, message: Outgoing, delay: float = 0.0) -> None:
        """Send ``message`` again, after ``delay`` seconds; its result comes out of this stream."""
        if self.stopped:
            return
        self._outstanding += 1
        job = Job(message, self)
        if delay <= 0:
            self._submit(job)
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            if self.stopped:
                self.discard()
                return
            try:
                self._submit(job)
            except Exception as exc:  # the transport was closed meanwhile
                self.deliver(SendResult.failed(message, str(exc), temporary=True))

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def stop(self) -> None:
        """Feed no more messages; the stream ends once the messages already on a connection are done."""
        if self.stopped:
            return
        self.stopped = True
        if self._feeder is not None:
            self._feeder.cancel()
        for handle in self._timers:
            handle.cancel()
            self._outstanding -= 1
        self._timers.clear()
        self._fed_all = True
        self._wake()

    async def aclose(self) -> None:
        self.stop()

    async def __aenter__(self) -> SendStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Leaving early (``break``, an exception) stops the feeding: ``async with`` is the safe way."""
        self.stop()

    @property
    def outstanding(self) -> int:
        """Messages handed to the transport whose result has not been yielded yet."""
        return self._outstanding

    # -- iteration ------------------------------------------------------------------------------
    def __aiter__(self) -> SendStream:
        return self

    async def __anext__(self) -> SendResult:
        if self._feeder is None and not self.stopped:
            self._feeder = asyncio.get_running_loop().create_task(self._feed())
        while True:
            if self._ready:
                self._outstanding -= 1
                if self._outstanding <= self._low_water:
                    self._room.set()
                return self._ready.popleft()
            if self._error is not None:
                self.stop()
                raise self._error
            if self._fed_all and self._outstanding <= 0:
                if self._source_error is not None:
                    error, self._source_error = self._source_error, None
                    raise error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _feed(self) -> None:
        try:
            if isinstance(self._messages, AsyncIterable):
                async for message in self._messages:
                    if not await self._feed_one(message):
                        break
            else:
                for message in self._messages:
                    if not await self._feed_one(message):
                        break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bad message or a failing source: what is in flight finishes and is yielded first.
            self._source_error = exc
        finally:
            self._fed_all = True
            self._wake()

    async def _feed_one(self, message: Outgoing) -> bool:
        while self._outstanding >= self._window and not self.stopped:
            self._room.clear()
            await self._room.wait()
        if self.stopped:
            return False
        check_address(message.sender, "sender")
        check_address(message.recipient, "recipient")
        check_payload(message.payload)
        self._outstanding += 1
        self._submit(Job(message, self))
        return True


async def send_one(
    submit: Callable[[Job], None], sender: str, recipient: str, payload: bytes, key: object = None
) -> SendResult:
    """A transport's ``send``: check the envelope and payload, queue one job, await its result."""
    check_address(sender, "sender")
    check_address(recipient, "recipient")
    check_payload(payload)
    future: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
    submit(Job(Outgoing(sender, recipient, payload, key), FutureSink(future)))
    return await future
