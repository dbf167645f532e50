"""Filling many recipients' messages: in the sending process, or in helper processes beside it.

A send fills one message per recipient: two link tokens (three when the message has events: the
RSVP token) and the VERP tag (one HMAC each,
:class:`mailer.tokens.RecipientSigner`; the tag serves both the return path and the Message-ID), the
template's slots (:meth:`MessageTemplate.fill_wire`),
and with DKIM one signature per key. :class:`BatchFiller` does that for one recipient after
another, wherever it runs. Unsigned, this is ~20 µs a message and the sending process does it
itself; an RSA-2048 signature alone takes ~300 µs, more than one core can do at line rate, so the
sender (:mod:`mailer.sending.fillers`) runs this module as helper processes
(``python -m mailer.message.filling``), one per core, and feeds them batches.

The helper's protocol, over its stdin and stdout (pipes to the sending process, which alone
touches the database and the relay), with the payloads themselves in shared memory::

    argv     = [shared memory fd]: a memfd of ``regions`` regions of ``region_bytes`` each, which the
               helper fills and the sender reads (no payload crosses a pipe); absent: none
    request  = length (4 bytes, little-endian) + pickle of one of
               ("setup", keys, campaign_id, region_bytes)  the token keys, the campaign, the region size
               ("template", variant_id, template)          a MessageTemplate (DKIM keys are loaded once)
               ("fill", batch, region, rows)               rows: (delivery id, member id, variant id,
                                                           address, name); region: where the payloads go
                                                           (-1: none free, send them inline)
    response = "R" + inline bytes (8) + header length (4) + pickle of (batch, entries) + inline payloads,
               entries: (delivery id, return path, payload size, offset in the shared memory or -1:
               inline, in order) or (delivery id, None, why skipped, -1)

A payload that does not fit in what is left of its region goes inline. The sender gives a region
back (names it in a later request) only once every message in it has its result, so the helper
never overwrites bytes that may still be sent.

The helper never sends mail and holds nothing the sender has not: if the sender dies, its stdin
ends and it exits; its work is lost, never sent, so it cannot add to what a kill can duplicate.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mailer.errors import InvalidInput
from mailer.message.template import MessageTemplate, Recipient
from mailer.tokens import VERP_PREFIX, RecipientSigner

#: One recipient to fill: delivery id, member id, variant id, address, name, first name.
Row = tuple[int, int, int, str, str, str]
#: What filling one row gives: (delivery id, return path, payload), or (delivery id, None, why not).
#: A payload from a helper process is a view of the shared memory it was filled into.
Filled = tuple[int, str, bytes | memoryview] | tuple[int, None, str]

REQUEST = struct.Struct("<I")
RESPONSE = struct.Struct("<cQI")


class BatchFiller:
    """Fills rows of one campaign with the templates it is given (by variant id)."""

    def __init__(
        self, keys: list[str], campaign_id: int, templates: Callable[[int], MessageTemplate]
    ) -> None:
        self.keys = keys
        self.campaign_id = campaign_id
        self.template = templates
        self.signers: dict[str, RecipientSigner] = {}  # per list domain; the issue time follows the clock

    def fill(self, rows: Sequence[Row]) -> list[Filled]:
        """Each row's message; a row mailer cannot send to (a bad address) says why instead.
        Its tokens are issued at the current second."""
        out: list[Filled] = []
        signers = self.signers
        for delivery_id, member_id, variant_id, email, name, first_name in rows:
            template = self.template(variant_id)
            domain = template.list_domain
            signer = signers.get(domain)
            if signer is None:
                signer = signers[domain] = RecipientSigner(
                    keys=self.keys, list_domain=domain, campaign=self.campaign_id
                )
            unsubscribe, preferences = signer.links(member_id or 0)
            tag = signer.verp_tag(max(delivery_id, 0))  # in the Message-ID and the return path
            recipient = Recipient(
                delivery_id, member_id or 0, email, name, unsubscribe, preferences, tag, first_name
            )
            if template.has_rsvp:
                recipient.rsvp_token = signer.rsvp(member_id or 0)
            try:
                payload = template.fill_wire(recipient)
            except InvalidInput as exc:
                out.append((delivery_id, None, str(exc)))
                continue
            out.append((delivery_id, f"{VERP_PREFIX}{tag}@{domain}", payload))
        return out


# -- the helper process ------------------------------------------------------------------------------


def read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd`` (blocking), or None at the end of the stream."""
    pieces: list[bytes] = []
    left = size
    while left:
        data = os.read(fd, left)
        if not data:
            return None
        pieces.append(data)
        left -= len(data)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def write_all(fd: int, buffers: list[bytes]) -> None:
    """Write every buffer to ``fd`` (blocking), however the pipe takes them."""
    views = [memoryview(b) for b in buffers if b]
    while views:
        written = os.writev(fd, views[:512])
        while written and views:
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0] = views[0][written:]
                written = 0


def request(message: tuple[Any, ...]) -> bytes:
    """A request frame: its length, then the pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return REQUEST.pack(len(data)) + data


def serve(stdin: int = 0, stdout: int = 1, shared: int | None = None) -> None:
    """Answer fill requests until stdin ends (the sender closed it, or died). ``shared``: the file
    descriptor of the shared memory the payloads go to."""
    templates: dict[int, MessageTemplate] = {}
    filler: BatchFiller | None = None
    memory = mmap.mmap(shared, 0) if shared is not None else None
    region_bytes = 0
    while True:
        head = read_exactly(stdin, REQUEST.size)
        if head is None:
            return
        body = read_exactly(stdin, REQUEST.unpack(head)[0])
        if body is None:
            return
        message = pickle.loads(body)
        if message[0] == "fill":
            assert filler is not None, "fill before setup"
            _, batch, region, rows = message
            entries: list[tuple[int, str | None, int | str, int]] = []
            inline: list[bytes] = []
            place = region * region_bytes if memory is not None and region >= 0 else -1
            end = place + region_bytes
            for delivery_id, return_path, result in filler.fill(rows):
                if isinstance(result, str):
                    entries.append((delivery_id, None, result, -1))
                    continue
                size = len(result)
                if place >= 0 and place + size <= end:
                    assert memory is not None
                    memory[place : place + size] = result
                    entries.append((delivery_id, return_path, size, place))
                    place += size
                else:
                    entries.append((delivery_id, return_path, size, -1))
                    inline.append(bytes(result))
            header = pickle.dumps((batch, entries), protocol=pickle.HIGHEST_PROTOCOL)
            size = sum(len(p) for p in inline)
            write_all(stdout, [RESPONSE.pack(b"R", size, len(header)), header, *inline])
        elif message[0] == "template":
            templates[message[1]] = message[2]
        elif message[0] == "setup":
            filler = BatchFiller(message[1], message[2], templates.__getitem__)
            region_bytes = message[3]


def main() -> None:
    # Ctrl-C reaches the whole process group: the sender finishes what is in flight and closes
    # our stdin, which is when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shared = int(sys.argv[1]) if len(sys.argv) > 1 else None
    with contextlib.suppress(BrokenPipeError):  # the sender is gone
        serve(shared=shared)


if __name__ == "__main__":
    main()
