"""Whether a mail really comes from the address in its From (docs/decisions.md, Replies asking to
leave): anyone can write "From: a member" to our reply address, so a reply asking to leave acts by
itself only when this says so.

``authenticate(raw, msg, settings)`` answers with an ``Authenticity``: ``aligned`` True only when

- the mail has exactly one From header naming exactly one address (a second From above a signed
  one is the classic way to show one sender and have another one's signature verify), and
- either a **DKIM signature verifies** (dkimpy, its key looked up in the DNS: the machine's
  resolvers, or the ``dns_resolver`` setting's server) that covers the From header, has not expired
  (``x=``), and whose signing domain ``d=`` **aligns** with the From address's domain the way
  DMARC's relaxed alignment says: the same organisational domain (the registrable domain under the
  Public Suffix List: ``mail.example.co.uk`` and ``example.co.uk`` align, ``example.net`` and
  ``example.org`` do not);
- or the **topmost** ``Authentication-Results`` header (RFC 8601: only the one our own MTA added
  on top can be trusted; any below it came with the mail) was written by our own MTA (its authserv-id
  is the ``trusted_authserv_id`` setting, which is empty, so never trusted, until set) and says
  ``dmarc=pass`` for the From domain, or ``dkim=pass`` with an aligned ``header.d``.

At most ``MAX_SIGNATURES`` signatures are tried, and a mail over ``MAX_BYTES`` is not verified at
all (a request to leave is short; a large mail waits for a person). Errors of any kind (a malformed
signature, a key that cannot be found or read, a DNS server that does not answer) mean "not
verified", with the reason: the request then waits for a person.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mailer.settings import Settings

MAX_SIGNATURES: Final = 5
MAX_BYTES: Final = 2 * 1024 * 1024
#: How long the key look-ups of one mail may take, in seconds.
DNS_LIFETIME: Final = 3.0

DnsFunc = Callable[..., bytes | None]

# dkimpy logs each signature that fails at level ERROR; here that is the reason in the request's
# record (``Authenticity.why``), not a line on the terminal.
_dkim_log = logging.getLogger("dkimpy")
_dkim_log.addHandler(logging.NullHandler())
_dkim_log.propagate = False


@dataclass(frozen=True)
class Authenticity:
    """Whether the From address is proved: ``aligned``; ``how`` says by what ("DKIM-aligned",
    "our MTA's Authentication-Results"), ``why`` why not; ``signature`` a fingerprint of the
    signature that proved it (the same signed mail sent again has the same one)."""

    aligned: bool
    sender: str  # the From address, lower-cased ("" when there is not exactly one)
    how: str = ""
    why: str = ""
    signing_domain: str = ""
    signature: str = ""


def sender_of(msg: Message) -> str:
    """The one From address of ``msg``, lower-cased; "" when it has no From, several From headers
    or several addresses in one."""
    values = [str(v) for v in msg.get_all("from", [])]
    if len(values) != 1:
        return ""
    found = [addr for _name, addr in getaddresses(values) if addr]
    if len(found) != 1 or found[0].count("@") != 1:
        return ""
    return found[0].strip().lower()[:320]


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".")


@functools.cache
def _suffixes():  # type: ignore[no-untyped-def]
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """The registrable domain of ``domain`` (``mail.example.co.uk`` → ``example.co.uk``); the
    domain itself when it is a public suffix or unknown."""
    domain = domain.strip().lower().rstrip(".")
    found = _suffixes().privatesuffix(domain)
    return str(found) if found else domain


def aligned(signing_domain: str, from_domain: str) -> bool:
    """DMARC's relaxed alignment: the two domains have the same organisational domain."""
    if not signing_domain or not from_domain:
        return False
    if signing_domain.lower().rstrip(".") == from_domain.lower().rstrip("."):
        return True  # strict alignment, the common case: no need to read the suffix list
    return organisational_domain(signing_domain) == organisational_domain(from_domain)


def authenticate(
    raw: bytes, msg: Message, settings: Settings, *, dnsfunc: DnsFunc | None = None
) -> Authenticity:
    """Whether ``raw`` (``msg`` parsed) proves its From address; see the module docstring."""
    sender = sender_of(msg)
    if not sender:
        return Authenticity(False, "", why="it has no single From address")
    if len(raw) > MAX_BYTES:
        return Authenticity(False, sender, why=f"over {MAX_BYTES // (1024 * 1024)} MiB, not verified")
    from_domain = domain_of(sender)
    by_mta = _trusted_results(msg, settings.trusted_authserv_id, from_domain)
    if by_mta:
        return Authenticity(True, sender, how="our MTA's Authentication-Results", signing_domain=by_mta)
    return _dkim(raw, sender, from_domain, dnsfunc or dns_lookup(settings.dns_resolver))


def _dkim(raw: bytes, sender: str, from_domain: str, dnsfunc: DnsFunc) -> Authenticity:
    import hashlib

    import dkim

    try:
        checker = dkim.DKIM(raw, logger=_dkim_log, timeout=int(DNS_LIFETIME))
        count = sum(1 for name, _value in checker.headers if name.lower() == b"dkim-signature")
    except Exception as exc:  # the headers could not be read at all
        return Authenticity(False, sender, why=f"its DKIM headers cannot be read ({type(exc).__name__})")
    if not count:
        return Authenticity(False, sender, why="no DKIM signature")
    reasons: list[str] = []
    for idx in range(min(count, MAX_SIGNATURES)):
        try:
            good = bool(checker.verify(idx=idx, dnsfunc=dnsfunc))
        except Exception as exc:  # a malformed signature or key, a DNS failure: not verified
            reasons.append(f"a signature that does not verify ({_short(exc)})")
            continue
        fields = getattr(checker, "signature_fields", {}) or {}
        domain = bytes(fields.get(b"d", b"")).decode("ascii", "replace").lower()
        if not good:
            reasons.append(f"a signature by {domain or 'nobody'} that does not verify")
            continue
        signed = [h.strip().lower() for h in bytes(fields.get(b"h", b"")).split(b":")]
        if b"from" not in signed:
            reasons.append(f"a signature by {domain} that does not cover From")
            continue
        if not aligned(domain, from_domain):
            reasons.append(f"a signature by {domain}, not aligned with {from_domain}")
            continue
        mark = hashlib.sha256(b"".join(bytes(fields.get(b"b", b"")).split())).hexdigest()
        return Authenticity(True, sender, how="DKIM-aligned", signing_domain=domain, signature=mark)
    return Authenticity(False, sender, why="; ".join(dict.fromkeys(reasons))[:500])


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_RESULT = re.compile(r"\b(dkim|dmarc)\s*=\s*(\w+)([^;]*)", re.IGNORECASE)
_PROPERTY = re.compile(r"\bheader\.(d|from|i)\s*=\s*\"?([^\s;\"]+)", re.IGNORECASE)


def _trusted_results(msg: Message, authserv_id: str, from_domain: str) -> str:
    """The aligned domain that the topmost Authentication-Results header says passed, when our own
    MTA (``authserv_id``) wrote it; "" otherwise."""
    authserv_id = authserv_id.strip().lower()
    headers = msg.get_all("authentication-results", [])
    if not authserv_id or not headers:
        return ""
    top = re.sub(r"\([^()]*\)", " ", " ".join(str(headers[0]).split()))  # comments dropped
    first, _, rest = top.partition(";")
    if first.strip().split(" ")[0].lower() != authserv_id:
        return ""
    for method, result, props in _RESULT.findall(rest):
        if result.lower() != "pass":
            continue
        for name, value in _PROPERTY.findall(props):
            domain = domain_of(value)
            if method.lower() == "dmarc" and name.lower() == "from" and domain == from_domain:
                return domain
            if method.lower() == "dkim" and name.lower() in ("d", "i") and aligned(domain, from_domain):
                return domain
    return ""


def dns_lookup(resolver_spec: str) -> DnsFunc:
    """dkimpy's ``dnsfunc`` (a name in, the TXT record's text out, or None) asking the machine's
    resolvers, or the server ``resolver_spec`` names (the ``dns_resolver`` setting)."""
    import dns.exception
    import dns.resolver

    from mailer.dnscheck import resolver_for

    def lookup(name: bytes, timeout: float = DNS_LIFETIME) -> bytes | None:
        try:
            resolver = resolver_for(resolver_spec, min(float(timeout), DNS_LIFETIME))
            answer = resolver.resolve(name.decode("ascii", "replace").rstrip("."), "TXT")
        except (dns.exception.DNSException, OSError, ValueError, UnicodeError):
            return None
        for record in answer:
            return b"".join(record.strings)
        return None

    return lookup
