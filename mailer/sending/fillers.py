"""Filling (and DKIM-signing) messages in helper processes, so that a send uses every core.

The sending process claims deliveries, talks to the relay and records outcomes; filling a message
is ~20 µs, but signing it with RSA-2048 is ~300 µs, more than one core keeps up with at line rate.
:class:`ProcessFillers` starts helper processes (``python -m mailer.message.filling``: see that
module for what they do and their protocol), sends each one the templates it needs (built once
here, their DKIM keys loaded once there) and batches of rows, and hands back each batch's filled
messages as they come. The engine (:mod:`mailer.sending.engine`) keeps a few batches ahead, so the
helpers never wait and the connections never starve.

The payloads do not cross the pipes: each helper writes them into a shared memory (a memfd, in
``REGIONS`` regions of ``REGION_BYTES``), and the sender hands views of them to the transport, which
writes them to the relay's sockets as they are. A batch's region is given back (:meth:`Batch.done`)
once every message in it has its result, so no byte that may still be sent is ever overwritten;
a message tried again later is copied out first. Without a free region, or on a system without
memfd, the payloads come inline through the pipe, as before.

What a kill can duplicate is unchanged: a helper never sends, and a filled message that was not yet
handed to the transport was never sent. The helpers end when their stdin does (the sender closed
it, or died).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import mmap
import os
import pickle
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence

from mailer.errors import DeliveryError
from mailer.message import MessageTemplate
from mailer.message.filling import RESPONSE, Filled, Row, request

REGIONS = 8  # shared memory regions per helper: three batches ahead, the window, and room
REGION_BYTES = 4 << 20  # bytes per region: a batch of messages (one that does not fit goes inline)
PIPE_BYTES = 1 << 20  # pipes of 1 MiB (Linux), so a helper writes a batch in few system calls
READ_BUDGET = 4 << 20  # bytes read from the helpers per turn of the event loop, at most
_F_SETPIPE_SZ = 1031


def _widen(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BYTES)


class Batch:
    """A batch of filled rows, and the shared memory region that holds their payloads."""

    __slots__ = ("filled", "helper", "left", "region")

    def __init__(self, helper: _Helper | None, region: int) -> None:
        self.helper = helper
        self.region = region
        self.filled: list[Filled] = []
        self.left = 0  # messages whose payloads are still needed

    def done(self) -> None:
        """One message of the batch has its result (or a copy of its payload): when none is left
        in need, the region may be filled again."""
        self.left -= 1
        if self.left == 0 and self.region >= 0 and self.helper is not None:
            self.helper.free.append(self.region)
            self.region = -1


def _shared_memory(number: int) -> int | None:
    """A memfd of REGIONS x REGION_BYTES, or None where there is none (not Linux)."""
    try:
        fd = os.memfd_create(f"mailer-fill-{number}", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return None
    try:
        os.ftruncate(fd, REGIONS * REGION_BYTES)
    except OSError:
        os.close(fd)
        return None
    return fd


class _Helper:
    """One helper process, its pipes, its shared memory and the batches it owes."""

    def __init__(self, number: int, on_failure: Callable[[BaseException], None]) -> None:
        self.number = number
        shared = _shared_memory(number)
        self.memory: mmap.mmap | None = None
        self.view: memoryview | None = None
        self.free: deque[int] = deque()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mailer.message.filling",
                    *([str(shared)] if shared is not None else []),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
                pass_fds=(shared,) if shared is not None else (),
            )
            if shared is not None:
                self.memory = mmap.mmap(shared, REGIONS * REGION_BYTES)
                self.view = memoryview(self.memory)
                self.free.extend(range(REGIONS))
        finally:
            if shared is not None:
                os.close(shared)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.fd = self.process.stdout.fileno()
        _widen(self.process.stdin.fileno())
        _widen(self.fd)
        os.set_blocking(self.fd, False)
        self.writer: asyncio.WriteTransport | None = None
        self.templates: set[int] = set()
        self.owed: deque[tuple[int, Batch, asyncio.Future[Batch]]] = deque()
        self.rows = 0  # rows sent and not yet answered
        self.on_failure = on_failure
        # The response being read: its header, then each payload in turn.
        self._need = RESPONSE.size
        self._pieces: list[bytes] = []
        self._got = 0
        self._header: tuple[int, list[tuple[int, str | None, int | str, int]]] | None = None
        self._phase = "prefix"
        self._sizes: list[int] = []
        self._payloads: list[bytes] = []

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.process.stdin is not None
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol, self.process.stdin)
        self.writer = transport
        loop.add_reader(self.fd, self.readable)

    def send(self, frame: bytes) -> None:
        assert self.writer is not None
        self.writer.write(frame)

    # -- reading responses, without blocking ---------------------------------------------------------
    def readable(self) -> None:
        budget = READ_BUDGET  # then back to the event loop: the connections want it too
        while budget > 0:
            try:
                data = os.read(self.fd, self._need - self._got)
            except BlockingIOError:
                return
            except OSError as exc:
                self.on_failure(exc)
                return
            if not data:
                code = self.process.poll()
                self.on_failure(
                    DeliveryError(
                        f"filling process {self.number} ended"
                        + (f" (exit code {code})" if code is not None else ""),
                        hint="its error is above; the deliveries it held go back to the queue",
                    )
                )
                return
            budget -= len(data)
            if not self._pieces and len(data) == self._need:
                piece = data
            else:
                self._pieces.append(data)
                self._got += len(data)
                if self._got < self._need:
                    continue
                piece = b"".join(self._pieces)
                self._pieces, self._got = [], 0
            self._take(piece)

    def _take(self, piece: bytes) -> None:
        if self._phase == "prefix":
            _kind, _size, header_size = RESPONSE.unpack(piece)
            self._phase, self._need = "header", header_size
            return
        if self._phase == "header":
            self._header = pickle.loads(piece)
            assert self._header is not None
            self._sizes = [size for _, path, size, at in self._header[1] if path is not None and at < 0]  # type: ignore[misc]
            self._payloads = []
        else:
            self._payloads.append(piece)
        if len(self._payloads) < len(self._sizes):
            self._phase, self._need = "payload", self._sizes[len(self._payloads)]
            return
        assert self._header is not None
        number, entries = self._header
        payloads = iter(self._payloads)
        view = self.view
        filled: list[Filled] = []
        for d, path, size, at in entries:
            if path is None:
                filled.append((d, None, str(size)))
            elif at >= 0:
                assert view is not None and isinstance(size, int)
                filled.append((d, path, view[at : at + size]))
            else:
                filled.append((d, path, next(payloads)))
        self._phase, self._need, self._header, self._payloads = "prefix", RESPONSE.size, None, []
        owed, batch, future = self.owed.popleft()
        assert owed == number, "responses come in the order of the requests"
        self.rows -= len(filled)
        batch.filled = filled
        if not future.done():
            future.set_result(batch)

    def release_memory(self) -> None:
        """Unmap the shared memory (once nothing views it any more; else the views keep it)."""
        self.free.clear()
        if self.view is not None:
            with contextlib.suppress(BufferError):
                self.view.release()
        if self.memory is not None:
            with contextlib.suppress(BufferError):
                self.memory.close()
        self.view = self.memory = None

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(Exception):
            loop.remove_reader(self.fd)
        if self.writer is not None:
            self.writer.close()  # the helper's stdin ends: it exits
        elif self.process.stdin is not None:
            self.process.stdin.close()


class ProcessFillers:
    """``count`` helper processes that fill one campaign's rows; see the module docstring.

    ``template(variant_id)`` gives the template of a variant (built once, in this process).
    ``submit(rows)`` returns a future of the :class:`Batch` of filled rows, in order (call its
    ``done`` once per message whose payload is no longer needed); use ``async with``.
    """

    def __init__(
        self,
        count: int,
        keys: list[str],
        campaign_id: int,
        template: Callable[[int], MessageTemplate],
    ) -> None:
        self.count = count
        self.keys = keys
        self.campaign_id = campaign_id
        self.template = template
        self.helpers: list[_Helper] = []
        self.failure: BaseException | None = None
        self._batches = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> ProcessFillers:
        self._loop = asyncio.get_running_loop()
        try:
            for n in range(self.count):
                helper = _Helper(n + 1, self._fail)
                self.helpers.append(helper)
                await helper.start(self._loop)
                helper.send(request(("setup", self.keys, self.campaign_id, REGION_BYTES)))
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def rows_owed(self) -> int:
        """Rows sent to the helpers and not answered yet."""
        return sum(h.rows for h in self.helpers)

    def submit(self, rows: Sequence[Row]) -> asyncio.Future[Batch]:
        """Send ``rows`` to the least busy helper (with the templates it lacks first)."""
        assert self._loop is not None
        future: asyncio.Future[Batch] = self._loop.create_future()
        if self.failure is not None:
            future.set_exception(self.failure)
            return future
        helper = min(self.helpers, key=lambda h: h.rows)
        for variant_id in dict.fromkeys(r[2] for r in rows):
            if variant_id not in helper.templates:
                helper.send(request(("template", variant_id, self.template(variant_id))))
                helper.templates.add(variant_id)
        self._batches += 1
        batch = Batch(helper, helper.free.popleft() if helper.free else -1)
        helper.owed.append((self._batches, batch, future))
        helper.rows += len(rows)
        helper.send(request(("fill", self._batches, batch.region, list(rows))))
        return future

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        for helper in self.helpers:
            while helper.owed:
                _, _batch, future = helper.owed.popleft()
                if not future.done():
                    future.set_exception(self.failure)
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(helper.fd)

    async def close(self) -> None:
        """Close the helpers' stdin and wait for them to exit (killing one that does not)."""
        loop = self._loop or asyncio.get_running_loop()
        for helper in self.helpers:
            helper.close(loop)
        for helper in self.helpers:
            for _ in range(100):
                if helper.process.poll() is not None:
                    break
                await asyncio.sleep(0.02)
            else:
                helper.process.kill()
                helper.process.wait()
            if helper.process.stdout is not None:
                helper.process.stdout.close()
        for helper in self.helpers:
            while helper.owed:
                _, _batch, future = helper.owed.popleft()
                if not future.done():
                    future.cancel()
            helper.release_memory()
        self.helpers = []
