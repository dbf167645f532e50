"""The workspace and its settings, declared once here with their help text.

A workspace is a folder with ``mailer.toml``, ``templates/``, ``lists/`` and ``campaigns/``. Settings
come from ``mailer.toml``; the ``MAILER_*`` environment variables named below override them. Secrets
(the token key, relay passwords) never sit in ``mailer.toml``: they come from the environment or from
a file that only its owner can read.
"""

from __future__ import annotations

import os
import secrets as _secrets
import stat
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mailer.errors import ConfigError, toml_error_location

SETTINGS_FILE = "mailer.toml"
SECRET_FILE = ".mailer-secret"


def _setting(default: Any, help: str, env: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "env": env})


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a workspace. Paths are absolute once loaded."""

    workspace: Path = field(default=Path("."), metadata={"help": "The workspace folder.", "internal": True})
    organisation: str = _setting("Kent Network", "The sender's name, shown in From, footers and web pages.")
    from_address: str = _setting("newsletter@example.org", "The From address of every mailing.")
    reply_to: str = _setting("", "Where replies go; empty means the From address.")
    list_domain: str = _setting(
        "lists.example.org",
        "Domain for List-Id, VERP return paths (bounces+ID@) and mailto unsubscribes (unsubscribe+TOKEN@).",
    )
    database_url: str = _setting(
        "sqlite:///mailer.db",
        "SQLAlchemy URL. A relative SQLite path is inside the workspace; "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
        env="MAILER_DATABASE_URL",
    )
    base_url: str = _setting(
        "http://127.0.0.1:8000",
        "Public base URL of the web app (unsubscribe, preferences, archive, calendars).",
        env="MAILER_BASE_URL",
    )
    relay: str = _setting(
        "maildir:///outbox",
        "Where mail goes: smtp://host:port, smtp+starttls://user@host:587, smtps://user@host:465, or "
        "maildir:///path (relative to the workspace). Several, comma-separated, fail over in order. "
        "Passwords come from MAILER_RELAY_PASSWORD, never from this file.",
        env="MAILER_RELAY",
    )
    rate_per_second: float = _setting(0.0, "Most messages per second per relay; 0 means no limit.")
    rate_per_hour: int = _setting(0, "Most messages per hour per relay; 0 means no limit.")
    concurrency: int = _setting(8, "SMTP connections per relay.")
    batch_size: int = _setting(500, "Deliveries claimed and checked against suppressions at a time.")
    lease_seconds: float = _setting(
        60.0,
        "How long a claim on a batch of deliveries lasts unless renewed; a dead worker's unsent "
        "messages go to other workers after this. Keep it well above heartbeat_seconds.",
    )
    heartbeat_seconds: float = _setting(
        5.0, "How often a sender renews its leases and a worker reports that it is alive."
    )
    consent_wording: str = _setting(
        "I agree to receive the network's newsletter and action alerts by email. "
        "I can unsubscribe at any time with the link in every message.",
        "What members agree to at sign-up; recorded in the consent log with each sign-up.",
    )
    timezone: str = _setting("Europe/London", "Time zone of event times and the issue date.")
    soft_bounce_limit: int = _setting(
        3,
        "Soft bounces (4.x.x, 5.2.2 mailbox full, other non-address failures) within soft_bounce_days "
        "that suppress an address. Hard bounces (5.1.x) suppress at once.",
    )
    soft_bounce_days: int = _setting(30, "The window, in days, in which soft bounces are counted.")
    admin_password: str = field(
        default="",
        repr=False,
        metadata={
            "help": "Password of the web app's /admin/ report pages (HTTP Basic). Set "
            "MAILER_ADMIN_PASSWORD; without it the admin pages are closed.",
            "env": "MAILER_ADMIN_PASSWORD",
            "internal": True,
        },
    )
    dkim_selector: str = _setting(
        "",
        "DKIM: the selector of the signing key (its public key is at SELECTOR._domainkey.DOMAIN); "
        "empty means no DKIM signature (e.g. when the relay signs).",
    )
    dkim_domain: str = _setting("", "DKIM: the signing domain (d=); empty means the From address's domain.")
    dkim_key_file: str = field(
        default=".mailer-dkim.pem",
        metadata={
            "help": "DKIM: the private key (PEM), readable only by its owner. Set MAILER_DKIM_KEY_FILE, or "
            "keep it in .mailer-dkim.pem in the workspace.",
            "env": "MAILER_DKIM_KEY_FILE",
            "internal": True,
        },
    )
    secret: str = field(
        default="",
        repr=False,
        metadata={
            "help": "Key for signed links. Set MAILER_SECRET (several, comma-separated, newest first, "
            "to rotate) or keep it in .mailer-secret readable only by its owner.",
            "env": "MAILER_SECRET",
            "internal": True,
        },
    )

    @property
    def secrets(self) -> list[str]:
        """The token keys, newest first: the first signs, any of them verifies."""
        return [s.strip() for s in self.secret.split(",") if s.strip()]

    def path(self, *parts: str) -> Path:
        return self.workspace.joinpath(*parts)

    @property
    def zone(self) -> ZoneInfo:
        """The ``timezone`` setting as a zone: event times, issue dates and ``--at`` are wall-clock in it."""
        return ZoneInfo(self.timezone)

    @property
    def relays(self) -> list[str]:
        out = []
        for url in (u.strip() for u in self.relay.split(",")):
            if url.startswith("maildir://") and not url.startswith("maildir:////"):
                rel = url.removeprefix("maildir://").lstrip("/")
                url = "maildir://" + str(self.workspace / rel)
            if url:
                out.append(url)
        return out

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                url = "sqlite:///" + str(self.workspace / rel)
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url


def declared() -> list[tuple[str, Any, str, str | None]]:
    """(name, default, help, env) of every setting that belongs in mailer.toml."""
    out = []
    for f in fields(Settings):
        if f.metadata.get("internal"):
            continue
        out.append((f.name, f.default, f.metadata["help"], f.metadata.get("env")))
    return out


def default_toml(organisation: str | None = None) -> str:
    """The text of a new mailer.toml: every setting, commented with its help."""
    import tomli_w

    lines = [
        "# mailer settings for this workspace. Each setting's comment says what it does.",
        "# Secrets do not belong here: set MAILER_SECRET and MAILER_RELAY_PASSWORD in the environment,",
        "# or keep the token key in .mailer-secret (readable only by you).",
        "",
    ]
    for name, default, help_, env in declared():
        value = organisation if (name == "organisation" and organisation) else default
        lines.append(f"# {help_}" + (f" Overridden by {env}." if env else ""))
        lines.append(tomli_w.dumps({name: value}).strip())
        lines.append("")
    return "\n".join(lines)


def _coerce(name: str, value: Any, default: Any, path: Path) -> Any:
    kind = type(default)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool) != isinstance(default, bool):
        raise ConfigError(
            f"expected {kind.__name__}, got {type(value).__name__} {value!r}",
            path=path,
            field=name,
            hint=f"see `mailer init` for an example; default is {default!r}",
        )
    return value


def _from_env(var: str, text: str, default: Any) -> Any:
    """An environment variable's text as the type of the setting it overrides."""
    if isinstance(default, str):
        return text
    try:
        return type(default)(text)
    except ValueError as exc:
        raise ConfigError(
            f"expected {type(default).__name__}, got {text!r}", field=var, hint=f"default is {default!r}"
        ) from exc


def _private_file(path: Path) -> bytes:
    """The content of a file that must be readable only by its owner (a key)."""
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("the key file is readable by others", path=path, hint=f"run: chmod 600 {path}")
    return path.read_bytes()


def dkim_private_key(settings: Settings) -> bytes | None:
    """The DKIM private key (PEM) when DKIM is configured (``dkim_selector``), else None."""
    if not settings.dkim_selector:
        return None
    path = settings.workspace / settings.dkim_key_file
    if not path.exists():
        raise ConfigError(
            "dkim_selector is set but there is no private key",
            path=path,
            hint="write the PEM key there (chmod 600) or set MAILER_DKIM_KEY_FILE",
        )
    return _private_file(path)


def _read_secret_file(workspace: Path) -> str:
    path = workspace / SECRET_FILE
    if not path.exists():
        return ""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            "the secret file is readable by others",
            path=path,
            hint=f"run: chmod 600 {path}",
        )
    return path.read_text(encoding="utf-8").strip()


def ensure_secret(settings: Settings) -> Settings:
    """Return settings with a token key, creating .mailer-secret (mode 600) on first use."""
    if settings.secrets:
        return settings
    path = settings.path(SECRET_FILE)
    key = _secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return replace(settings, secret=key)


def load(workspace: Path | str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read the workspace's mailer.toml and the environment into Settings.

    ``workspace`` defaults to ``MAILER_WORKSPACE`` or the current folder. A workspace without a
    mailer.toml uses the defaults (the embedded SQLite database and Maildir outbox).
    """
    env = dict(os.environ if env is None else env)
    root = Path(workspace or env.get("MAILER_WORKSPACE") or ".").expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(
            "the workspace folder does not exist", path=root, hint="create one with `mailer init DIR`"
        )
    values: dict[str, Any] = {"workspace": root}
    known = {name: default for name, default, _, _ in declared()}
    toml_path = root / SETTINGS_FILE
    if toml_path.exists():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            msg, line, col = toml_error_location(exc)
            raise ConfigError(f"not valid TOML: {msg}", path=toml_path, line=line, column=col) from exc
        for key, value in data.items():
            if key in ("secret", "secrets", "password", "relay_password"):
                raise ConfigError(
                    "secrets never sit in mailer.toml",
                    path=toml_path,
                    field=key,
                    hint="remove it and set MAILER_SECRET (or .mailer-secret, mode 600) instead",
                )
            if key not in known:
                raise ConfigError(
                    "unknown setting",
                    path=toml_path,
                    field=key,
                    hint="known settings: " + ", ".join(sorted(known)),
                )
            values[key] = _coerce(key, value, known[key], toml_path)
    for f in fields(Settings):
        var = f.metadata.get("env")
        if var and env.get(var):
            values[f.name] = _from_env(var, env[var], f.default)
    if not values.get("secret"):
        values["secret"] = _read_secret_file(root)
    return Settings(**values)
