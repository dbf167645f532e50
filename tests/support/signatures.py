"""DKIM signatures checked the way a receiver checks them: dkimpy's verdict on each signature of a
message (``verified``), against a stub DNS publishing the keys given (``dns_for``) or the records
``mailer dkim dns`` prints (``parse_zone``)."""

from __future__ import annotations

import re
from collections.abc import Callable

import dkim

from mailer.message import DkimKey
from mailer.message.dkim import load_private_key, txt_record

DnsFunc = Callable[..., bytes | None]


def dns_for(*published: DkimKey) -> DnsFunc:
    """dkimpy's ``dnsfunc``: the TXT record of each key, at SELECTOR._domainkey.DOMAIN."""
    records = {
        f"{k.selector}._domainkey.{k.domain}.".encode(): txt_record(load_private_key(k)).encode()
        for k in published
    }

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return dnsfunc


def verified(raw: bytes, dnsfunc: DnsFunc) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of ``raw``, in order."""
    count = len(re.findall(rb"(?m)^DKIM-Signature:", raw.split(b"\r\n\r\n", 1)[0]))
    checker = dkim.DKIM(raw)
    verdicts = []
    for i in range(count):
        try:
            verdicts.append(bool(checker.verify(idx=i, dnsfunc=dnsfunc)))
        except dkim.DKIMException:  # DKIM.verify raises for a bad body hash (dkim.verify says False)
            verdicts.append(False)
    return verdicts


ZONE_LINE = re.compile(r'^(\S+)\. IN TXT ((?:"[^"]*" ?)+)$')


def parse_zone(output: str) -> dict[bytes, bytes]:
    """The records of `mailer dkim dns`, as a resolver would return them (strings joined)."""
    records = {}
    for line in output.splitlines():
        if line.startswith(";") or not line.strip():
            continue
        match = ZONE_LINE.match(line)
        assert match, line
        strings = re.findall(r'"([^"]*)"', match[2])
        assert all(0 < len(s.encode()) <= 255 for s in strings)
        records[(match[1] + ".").encode()] = "".join(strings).encode()
    return records
