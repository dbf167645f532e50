"""Is this workspace ready to mail real people? What ``mailer doctor`` (:mod:`mailer.doctor`),
``campaigns check`` and a send to members check.

Each problem is a ``Finding`` with its fix:

- **settings** (``settings_findings``; cheap, no network): a placeholder or local ``base_url``, an
  http one; an example.* (or .test, .invalid, …) list domain or From address; a network without a
  postal address (UK marketing mail must carry one) or with the placeholder name, or without an https
  privacy notice (``privacy_url``, linked from every mail and page); DKIM keys missing
  or readable by others; a missing or weak key for signed links; a Maildir outbox as the relay;
- **relay** (``relay_findings``): each SMTP relay is reached with a TCP connect and a short timeout;
- **workers** (:func:`mailer.doctor.worker_findings`): campaigns queued while no worker is alive;
- **DNS** (:mod:`mailer.dnscheck`): SPF, DKIM, DMARC and MX records missing or different; when the
  machine cannot resolve, the records are printed to publish, and that is a warning.

A workspace marked ``demo = true`` in mailer.toml (``mailer demo``'s, the repository's own, the
tests' and benchmarks') may use example.org, a local base_url and a Maildir outbox, and its DNS is
not looked up. A send to members (not ``--test``, not ``--dry-run``) is refused while a settings
finding stands (:func:`require_ready`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailer.errors import MailerError, NotReady, Problem

if TYPE_CHECKING:
    from mailer.audience.networks import Network
    from mailer.audience.shape import Shape
    from mailer.dnscheck import RecordCheck
    from mailer.settings import Settings

#: Seconds a TCP connect to a relay may take.
RELAY_TIMEOUT = 3.0
PLACEHOLDER_DOMAINS = ("example.org", "example.com", "example.net")
RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".localhost", ".local")
PLACEHOLDER_NAMES = ("Our Network",)
PLACEHOLDER = "not looked up: a placeholder domain"


@dataclass(frozen=True)
class Finding:
    """One problem: which check found it, what is wrong, and the fix. ``severity`` error or warning."""

    check: str
    message: str
    fix: str
    severity: str = "error"

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "message": self.message, "fix": self.fix, "severity": self.severity}

    def problem(self) -> Problem:
        return Problem(self.message, field=self.check, hint=self.fix, severity=self.severity)


@dataclass
class Readiness:
    """What ``diagnose`` found: ``findings`` (errors and warnings) and the DNS records."""

    demo: bool
    findings: list[Finding] = field(default_factory=list)
    records: list[RecordCheck] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ready(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "demo": self.demo,
            "errors": [f.as_dict() for f in self.errors],
            "warnings": [f.as_dict() for f in self.warnings],
            "dns": [r.as_dict() for r in self.records],
        }


def placeholder_domain(domain: str) -> bool:
    """Whether ``domain`` is an example or reserved one (example.org, news.example.com, x.test, …)."""
    domain = domain.strip().lower().rstrip(".")
    if domain in PLACEHOLDER_DOMAINS or any(domain.endswith("." + d) for d in PLACEHOLDER_DOMAINS):
        return True
    return domain in {s[1:] for s in RESERVED_SUFFIXES} or domain.endswith(RESERVED_SUFFIXES)


def _demo_warning(settings: Settings) -> str:
    """What a demo may do without (a postal address, DKIM signatures) is a warning there only."""
    return "warning" if settings.demo else "error"


def _local_host(host: str) -> bool:
    return host in ("localhost", "::1", "0.0.0.0") or host.startswith("127.") or host.endswith(".localhost")


def _base_url_findings(settings: Settings) -> list[Finding]:
    url = settings.base_url.strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    fix = (
        'set base_url = "https://news.your-network.org" in mailer.toml (or MAILER_BASE_URL): the '
        "address members reach the web app at"
    )
    if parts.scheme not in ("http", "https") or not host:
        return [Finding("base_url", f"base_url {url!r} is not an http(s) URL", fix)]
    if settings.demo:
        return []
    if _local_host(host):
        return [
            Finding(
                "base_url", f"base_url {url!r} is this machine: every unsubscribe link would be dead", fix
            )
        ]
    if placeholder_domain(host):
        return [Finding("base_url", f"base_url {url!r} is a placeholder domain", fix)]
    if parts.scheme != "https":
        return [
            Finding(
                "base_url",
                f"base_url {url!r} is http://: one-click unsubscribe needs https",
                "serve the web app over https and set base_url to its https:// address",
            )
        ]
    return []


def _network_findings(settings: Settings, shape: Shape, networks: list[Network]) -> list[Finding]:
    out = []
    declared = bool(shape.networks)
    where = "lists/networks.toml" if declared else "mailer.toml"
    for network in networks:
        label = f"network {network.slug!r}" if declared else "the workspace"
        if not settings.demo and placeholder_domain(network.from_address.rpartition("@")[2]):
            out.append(
                Finding(
                    "from_address",
                    f"{label} sends From {network.from_address}, a placeholder domain",
                    f"set from_address in {where} to an address at your own domain",
                )
            )
        if not settings.demo and network.name in PLACEHOLDER_NAMES:
            out.append(
                Finding("name", f"{label} is still called {network.name!r}", f"set its name in {where}")
            )
        if not network.postal_address.strip():
            out.append(
                Finding(
                    "postal_address",
                    f"{label} has no postal address: UK marketing mail must carry the sender's (PECR)",
                    'set postal_address = "…" for it in lists/networks.toml'
                    + ("" if declared else " (describe the network there: see `mailer init`)"),
                    severity=_demo_warning(settings),
                )
            )
        out += _privacy_findings(settings, network, label)
    return out


def _privacy_findings(settings: Settings, network: Network, label: str) -> list[Finding]:
    """A network's privacy notice: set, a link, and https (a demo's may be missing or http)."""
    from mailer.audience.networks import privacy_url

    given = (network.privacy_url or settings.privacy_url).strip()
    url = privacy_url(network, settings)
    fix = (
        'set privacy_url = "https://…" for it in lists/networks.toml, or in mailer.toml for every '
        "network (a path such as /privacy is on the web app)"
    )
    if not given:
        why = f"{label} has no privacy notice: every mail and page must link to one"
        return [Finding("privacy_url", why, fix, severity=_demo_warning(settings))]
    if not url:
        return [Finding("privacy_url", f"{label}'s privacy_url {given[:80]!r} is not a link", fix)]
    if not url.lower().startswith("https://"):
        why = f"{label}'s privacy notice {url} is not https"
        return [Finding("privacy_url", why, fix, severity=_demo_warning(settings))]
    return []


def _dkim_findings(settings: Settings, networks: list[Network]) -> list[Finding]:
    from mailer.audience.networks import sender_settings
    from mailer.message import dkim_status

    out = []
    for network in networks:
        try:
            status = dkim_status(sender_settings(settings, network))
        except MailerError as exc:
            return [
                Finding("dkim", exc.message + (f" ({exc.path})" if exc.path else ""), exc.problem.hint or "")
            ]
        if status.warning:
            out.append(
                Finding(
                    "dkim",
                    status.warning.partition(". Fix:")[0],
                    "make the keys with `mailer dkim keys` and publish the records of `mailer dns`"
                    if not status.signed
                    else "set dkim_domain to the From domain",
                    severity=_demo_warning(settings),
                )
            )
    return out[:1]


def _secret_findings(settings: Settings) -> list[Finding]:
    from mailer.secret_key import SECRET_HOW_TO, secret_weakness

    keys = settings.secrets
    if not keys:
        return [Finding("secret", "there is no key for signed links", SECRET_HOW_TO)]
    for key in keys:
        reason = secret_weakness(key)
        if reason is not None:
            return [Finding("secret", f"the key for signed links is too weak: {reason}", SECRET_HOW_TO)]
    return []


def _relay_kind_findings(settings: Settings) -> list[Finding]:
    if settings.demo:
        return []
    out = []
    for url in settings.relays:
        if url.startswith("maildir://"):
            out.append(
                Finding(
                    "relay",
                    f"the relay is a Maildir outbox ({url.removeprefix('maildir://')}): "
                    "no mail reaches anyone",
                    'set relay = "smtp+starttls://user@smtp.your-provider.org:587" in mailer.toml (or '
                    "MAILER_RELAY), with MAILER_RELAY_PASSWORD in the environment",
                )
            )
    return out


def settings_findings(settings: Settings, shape: Shape) -> list[Finding]:
    """The problems the settings and lists alone show (no network, no database)."""
    from mailer.audience.networks import networks_of

    networks = networks_of(shape, settings)
    out = _base_url_findings(settings)
    domain = settings.list_domain.strip().lower()
    if not settings.demo and placeholder_domain(domain):
        out.append(
            Finding(
                "list_domain",
                f"list_domain {domain!r} is a placeholder: List-Id, bounces and mailed unsubscribes would "
                "name a domain that is not yours",
                'set list_domain = "lists.your-network.org" in mailer.toml, a domain whose MX reaches mailer',
            )
        )
    out += _network_findings(settings, shape, networks)
    out += _dkim_findings(settings, networks)
    out += _secret_findings(settings)
    out += _relay_kind_findings(settings)
    return out


def relay_findings(settings: Settings, timeout: float = RELAY_TIMEOUT) -> list[Finding]:
    """Each SMTP relay that a TCP connect cannot reach within ``timeout`` seconds."""
    from mailer.transport.smtp.relay import parse_relay

    out = []
    for url in settings.relays:
        if url.startswith("maildir://"):
            continue
        try:
            relay = parse_relay(url)
        except MailerError as exc:
            out.append(Finding("relay", exc.message, exc.problem.hint or "fix relay in mailer.toml"))
            continue
        try:
            with socket.create_connection((relay.host, relay.port), timeout=timeout):
                pass
        except OSError as exc:
            out.append(
                Finding(
                    "relay",
                    f"cannot reach the relay {relay.label}: {exc.strerror or exc}",
                    "check relay in mailer.toml (or MAILER_RELAY), that the relay is running, and that "
                    "this machine may connect to it",
                )
            )
    return out


def dns_findings(checks: list[RecordCheck]) -> list[Finding]:
    """One error for the records missing or different, one warning when the DNS could not be asked."""
    out = []
    wrong = [c for c in checks if c.status in ("missing", "different")]
    if wrong:
        names = ", ".join(f"{c.record.kind} {c.record.name}" for c in wrong)
        out.append(
            Finding(
                "dns",
                f"{len(wrong)} DNS record(s) missing or different: {names}",
                "publish the records listed below (all of them: `mailer dns`); the DNS may take an hour "
                "to show them",
            )
        )
    unchecked = [c for c in checks if c.status == "unchecked" and c.detail != PLACEHOLDER]
    if unchecked:
        out.append(
            Finding(
                "dns",
                f"the DNS could not be checked from this machine ({unchecked[0].detail}): make sure "
                f"{len(unchecked)} record(s) are published",
                "publish the records `mailer dns` prints, then run `mailer doctor` where the DNS resolves",
                severity="warning",
            )
        )
    return out


def require_ready(settings: Settings, shape: Shape) -> None:
    """Raise ``NotReady`` listing every settings finding: a send to members waits until none stands."""
    findings = [f for f in settings_findings(settings, shape) if f.severity == "error"]
    if findings:
        raise NotReady(
            [f.problem() for f in findings],
            summary=f"this workspace is not ready to mail real people ({len(findings)} problem(s); "
            "test sends with --test still work; `mailer doctor` checks everything)",
        )


__all__ = [
    "Finding",
    "Readiness",
    "dns_findings",
    "placeholder_domain",
    "relay_findings",
    "require_ready",
    "settings_findings",
]
