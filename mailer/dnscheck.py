"""The DNS records a workspace's mail needs, and whether they are published.

Gmail and Yahoo take bulk mail only from domains that publish them:

- **SPF** at the list domain, the domain of every message's return path (``bounces+…@``), naming
  the machines that send for it;
- **DKIM**, a TXT record per key at ``SELECTOR._domainkey.DOMAIN`` for each network's signing
  domain (:func:`mailer.message.dkim.dns_records`);
- **DMARC** at ``_dmarc.`` each From domain (``p=none`` at least);
- **MX** for the list domain, so that bounces and mailed unsubscribes reach mailer.

``records_to_publish`` lists them for ``mailer dns``; ``check_records`` looks each up with
dnspython (at the machine's resolvers, or the ``dns_resolver`` setting's) and says which are
published, missing or different; when nothing can be resolved at all every record is
``unchecked`` and is only printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailer.message.template import LOCAL_HOSTS

if TYPE_CHECKING:
    import dns.resolver

    from mailer.audience.shape import Shape
    from mailer.settings import Settings

#: How long one look-up may take, in seconds (all of its tries together).
LIFETIME = 2.0
DMARC_VALUE = "v=DMARC1; p=none; adkim=r; aspf=r"


@dataclass(frozen=True)
class Record:
    """One record to publish: ``kind`` SPF, DKIM, DMARC or MX; ``name`` fully qualified, no dot."""

    kind: str
    name: str
    rtype: str  # TXT or MX
    value: str
    why: str
    networks: tuple[str, ...] = ()

    def zone_line(self) -> str:
        """The record as a zone-file line."""
        if self.rtype == "MX":
            return f"{self.name}. IN MX {self.value}"
        chunks = [self.value[i : i + 255] for i in range(0, len(self.value), 255)] or [""]
        return f"{self.name}. IN TXT " + " ".join(f'"{c}"' for c in chunks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "type": self.rtype,
            "value": self.value,
            "zone": self.zone_line(),
            "why": self.why,
            "networks": list(self.networks),
        }


@dataclass(frozen=True)
class RecordCheck:
    """What the DNS holds for a record: ``status`` ok, missing, different or unchecked."""

    record: Record
    status: str
    found: list[str] = field(default_factory=list)
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**self.record.as_dict(), "status": self.status, "found": self.found, "detail": self.detail}


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def _spf_value(settings: Settings) -> str:
    from mailer.transport.smtp.relay import parse_relay

    hosts = []
    for url in settings.relays:
        if url.startswith("maildir://"):
            continue
        try:
            host = parse_relay(url, {}).host
        except Exception:  # a bad relay URL is reported by the relay check
            continue
        if host not in LOCAL_HOSTS and not host.startswith("127."):
            hosts.append(host)
    web = urlsplit(settings.base_url).hostname or ""
    senders = [f"a:{h}" for h in dict.fromkeys(hosts)] or (
        [f"a:{web}"] if web and web not in LOCAL_HOSTS else []
    )
    return " ".join(["v=spf1", "mx", *senders, "~all"])


def records_to_publish(settings: Settings, shape: Shape) -> list[Record]:
    """Every record the workspace's mail needs: SPF and MX for the list domain, DKIM for each
    network's signing domain, DMARC for each From domain. DKIM keys that cannot be read are left
    out (``mailer doctor`` reports them)."""
    from mailer.audience.networks import networks_of
    from mailer.errors import MailerError
    from mailer.message import dns_records

    networks = networks_of(shape, settings)
    list_domain = settings.list_domain.strip().lower()
    web = urlsplit(settings.base_url).hostname or ""
    if not web or web in LOCAL_HOSTS or web.startswith("127."):
        web = f"mail.{list_domain}"
    out = [
        Record(
            "SPF",
            list_domain,
            "TXT",
            _spf_value(settings),
            "the return path's domain: names the machines that send its mail (with a provider's relay, "
            "use the include: it documents)",
        ),
        Record(
            "MX",
            list_domain,
            "MX",
            f"10 {web}.",
            "bounces and mailed unsubscribes to the list domain must reach the machine mailer runs on",
        ),
    ]
    signers: dict[str, list[str]] = {}
    for network in networks:
        signers.setdefault(network.signing_domain, []).append(network.slug)
    try:
        keys = dns_records(settings, list(signers))
    except MailerError:
        keys = []
    for key in keys:
        out.append(
            Record(
                "DKIM",
                key.name,
                "TXT",
                key.value,
                f"the public half of the {key.algorithm} key every message is signed with",
                tuple(signers.get(key.domain, [])),
            )
        )
    senders: dict[str, list[str]] = {}
    for network in networks:
        senders.setdefault(_domain(network.from_address), []).append(network.slug)
    for domain, slugs in senders.items():
        out.append(
            Record(
                "DMARC",
                f"_dmarc.{domain}",
                "TXT",
                DMARC_VALUE,
                "Gmail and Yahoo require a DMARC policy for the From domain of bulk mail (p=none at least)",
                tuple(slugs),
            )
        )
    return out


def resolver_for(spec: str, lifetime: float = LIFETIME) -> dns.resolver.Resolver:
    """A resolver asking ``spec`` (HOST or HOST:PORT, IPv6 in brackets), else the machine's own.
    Raises ``dns.resolver.NoResolverConfiguration`` when the machine has none."""
    import dns.resolver

    spec = spec.strip()
    if spec:
        resolver = dns.resolver.Resolver(configure=False)
        host, port = spec, 53
        if spec.startswith("["):
            host, _, rest = spec[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 53
        elif spec.count(":") == 1:
            host, _, text = spec.partition(":")
            port = int(text)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = lifetime
    resolver.timeout = lifetime
    return resolver


def _tags(value: str) -> dict[str, str]:
    out = {}
    for part in value.split(";"):
        key, sep, val = part.partition("=")
        if sep:
            out[key.strip().lower()] = "".join(val.split())
    return out


def _compare(record: Record, found: list[str]) -> RecordCheck:
    """The check of ``record`` against the values the DNS gave."""
    if record.kind == "MX":
        return RecordCheck(record, "ok" if found else "missing", found)
    prefix = {"SPF": "v=spf1", "DMARC": "v=dmarc1", "DKIM": "v=dkim1"}[record.kind]
    matching = [v for v in found if v.lower().replace(" ", "").startswith(prefix)]
    if record.kind == "DKIM" and not matching:
        matching = [v for v in found if "p=" in v]  # v= is optional in a DKIM record
    if not matching:
        return RecordCheck(record, "missing", found)
    if record.kind == "SPF" and len(matching) > 1:
        return RecordCheck(record, "different", found, "more than one SPF record: receivers ignore both")
    if record.kind == "DKIM":
        want, have = _tags(record.value), _tags(matching[0])
        if have.get("p") != want.get("p") or have.get("k", "rsa") != want.get("k", "rsa"):
            return RecordCheck(record, "different", found, "the published key is not this workspace's key")
    return RecordCheck(record, "ok", found)


def check_records(
    records: list[Record], resolver_spec: str = "", lifetime: float = LIFETIME
) -> list[RecordCheck]:
    """Look each record up; ``unchecked`` for all of them once the DNS cannot be reached at all."""
    import dns.exception
    import dns.resolver

    try:
        resolver = resolver_for(resolver_spec, lifetime)
    except (dns.resolver.NoResolverConfiguration, ValueError, OSError) as exc:
        return [RecordCheck(r, "unchecked", detail=f"no resolver: {exc}") for r in records]
    out: list[RecordCheck] = []
    unreachable = ""
    for record in records:
        if unreachable:
            out.append(RecordCheck(record, "unchecked", detail=unreachable))
            continue
        try:
            answer = resolver.resolve(record.name, record.rtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            out.append(RecordCheck(record, "missing", detail="no such name"))
            continue
        except (dns.resolver.NoNameservers, dns.exception.Timeout, OSError) as exc:
            unreachable = f"the DNS could not be asked: {exc.__class__.__name__}"
            out.append(RecordCheck(record, "unchecked", detail=unreachable))
            continue
        if record.rtype == "MX":
            found = [str(r.exchange).rstrip(".") for r in answer]
        else:
            found = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        out.append(_compare(record, found))
    return out


__all__ = ["Record", "RecordCheck", "check_records", "records_to_publish", "resolver_for"]
