"""SMTP relay URLs.

``smtp://host[:25]``, ``smtp+starttls://user@host[:587]`` (STARTTLS required) and
``smtps://user@host[:465]`` (TLS from the start). With a user name the pool logs in (AUTH); the
password is taken from the ``MAILER_RELAY_PASSWORD`` environment variable, or, for tests and
throwaway relays only, from the URL itself (``smtps://user:secret@host``, percent-encoded); it
never appears in a label, a log line or a result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from mailer.errors import ConfigError

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


def parse_relay(url: str, env: Mapping[str, str] | None = None) -> Relay:
    """Parse an SMTP relay URL; the password comes from the URL or ``MAILER_RELAY_PASSWORD``."""
    env = os.environ if env is None else env
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    hint = "use smtp://host:25, smtp+starttls://user@host:587 or smtps://user@host:465"
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(f"unknown relay scheme in {url!r}", field="relay", hint=hint)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ConfigError(f"bad port in relay {url!r}", field="relay", hint=hint) from exc
    if not parts.hostname:
        raise ConfigError(f"no host in relay {url!r}", field="relay", hint=hint)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"unexpected path or options in relay {url!r}", field="relay", hint=hint)
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
