"""SMTP relay URLs.

``smtp://host[:25]``, ``smtp+starttls://user@host[:587]`` (STARTTLS required) and
``smtps://user@host[:465]`` (TLS from the start). With a user name the pool logs in (AUTH); the
password is taken from the ``MAILER_RELAY_PASSWORD`` environment variable, or, for tests and
throwaway relays only, from the URL itself (``smtps://user:secret@host``, percent-encoded); it
never appears in a label, a log line or a result.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from mailer.errors import ConfigError
from mailer.redact import redact_url

PASSWORD_ENV = "MAILER_RELAY_PASSWORD"
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class Relay:
    """One relay from a URL. ``label`` is the URL without any password."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"

    def __str__(self) -> str:
        return self.label


_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def _valid_host(host: str) -> bool:
    if ":" in host:  # an IPv6 address, from inside [ ]
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return False
        return True
    return len(host) <= 253 and _HOST_NAME.fullmatch(host) is not None


def parse_relay(url: str, env: Mapping[str, str] | None = None) -> Relay:
    """Parse an SMTP relay URL; the password comes from the URL or ``MAILER_RELAY_PASSWORD``.

    Any malformed URL is a ``ConfigError`` that shows the URL with its password as ``***``."""
    env = os.environ if env is None else env
    hint = (
        "use smtp://host:25, smtp+starttls://user@host:587 or smtps://user@host:465; in a password "
        "write / @ : as %2F %40 %3A, or set it in MAILER_RELAY_PASSWORD instead"
    )

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{what} {redact_url(url.strip())!r}", field="relay", hint=hint)

    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed [
        raise bad(f"not a URL ({exc}):") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise bad("unknown relay scheme in")
    try:
        port = DEFAULT_PORTS[scheme] if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise bad("bad port (a number from 1 to 65535) in relay")
    if not parts.hostname:
        raise bad("no host in relay")
    if not _valid_host(parts.hostname):
        raise bad("not a host name or address in relay")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad("unexpected path or options in relay")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        password = env.get(PASSWORD_ENV)
        if not password:
            raise ConfigError(
                f"relay {scheme}://{username}@{parts.hostname} needs a password",
                field="relay",
                hint=f"set {PASSWORD_ENV} in the environment",
            )
    return Relay(scheme, parts.hostname, port, username, password)
