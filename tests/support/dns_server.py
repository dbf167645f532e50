"""A tiny authoritative DNS server on 127.0.0.1 (UDP, a free port) for tests: no outside network.

``DnsTestServer`` answers from ``zone``, a dict of (name, type) to a list of rdata texts in zone-file
form (``'"v=spf1 mx ~all"'``, ``'10 mail.example.net.'``); a name it holds under another type gets
an empty answer, any other NXDOMAIN. Built on dnspython's message API; ``address`` is what the
``dns_resolver`` setting takes (``127.0.0.1:PORT``). ``publish(records)`` adds ``mailer dns --json``'s
records as they are to be published.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsTestServer:
    def __init__(self) -> None:
        self.zone: dict[tuple[str, str], list[str]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str]] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def publish(self, records: list[dict[str, Any]]) -> None:
        """Add records as ``mailer dns --json`` lists them (name, type, value)."""
        for r in records:
            if r["type"] == "TXT":
                value = r["value"]
                text = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
            else:
                text = r["value"]
            self.zone.setdefault((r["name"].lower().rstrip("."), r["type"]), []).append(text)

    def start(self) -> DnsTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        # An empty datagram wakes the thread blocked in recvfrom (closing the socket does not).
        self._stopping = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", ("127.0.0.1", self.port))
        self._thread.join(timeout=2)
        self.sock.close()

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        names = {name for name, _ in self.zone}
        for question in query.question:
            name = question.name.to_text().lower().rstrip(".")
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            texts = self.zone.get((name, rdtype))
            if texts:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN, question.rdtype, texts)
                )
            elif name not in names:
                response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if self._stopping:
                return
            try:
                response = self._answer(dns.message.from_wire(data))
                self.sock.sendto(response.to_wire(), peer)
            except Exception:  # a malformed query: no answer, as a real server might
                continue
