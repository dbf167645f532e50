"""The workspace and its settings, declared once here with their help text.

A workspace is a folder with ``mailer.toml``, ``templates/``, ``lists/`` and ``campaigns/``. Settings
come from ``mailer.toml``; the ``MAILER_*`` environment variables named below override them. Secrets
(the token key, relay passwords) never sit in ``mailer.toml``: they come from the environment or from
a file that only its owner can read.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mailer.errors import ConfigError, toml_error_location
from mailer.secret_key import check_secrets, new_secret, read_secret_file, write_secret_file
from mailer.setting_values import check_database_url, check_ehlo_name

SETTINGS_FILE = "mailer.toml"
SECRET_FILE = ".mailer-secret"
ADDRESS_KEY_FILE = ".mailer-address-key"  # the suppression hash's key (docs/data.md, The suppression hash)
#: The default templates: ``mailer/templates/`` when installed from the wheel (pyproject.toml's
#: force-include puts them there), else ``templates/`` at the top of the source checkout (an
#: editable install), where the repository root is itself a workspace whose ``templates/`` they are.
_INSTALLED_TEMPLATES = Path(__file__).resolve().parent / "templates"
PACKAGED_TEMPLATES = (
    _INSTALLED_TEMPLATES
    if (_INSTALLED_TEMPLATES / "newsletter.mjml.j2").is_file()
    else _INSTALLED_TEMPLATES.parent.parent / "templates"
)


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
        "Domain for List-Id, signed VERP return paths (bounces+ID-MAC@) and mailto unsubscribes "
        "(unsubscribe+TOKEN@).",
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
    ehlo_hostname: str = _setting(
        "",
        "The name mailer gives itself when it greets a relay (SMTP EHLO); empty means the list "
        "domain. Receiving servers distrust a greeting of localhost or a bare machine name: give the "
        "sending host's public name (the one its address resolves back to), e.g. mail.example.org.",
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
    # --- sending at line rate (docs/decisions.md, The send's budget): filling and DKIM signing beside the sen
    fill_processes: int = _setting(
        -1,
        "Helper processes that fill in and DKIM-sign messages for the process that sends, so that "
        "a send uses every core: -1 (auto) starts, when at least 1,000 messages are to go, one per "
        "core when they are DKIM-signed and one when they are not on a machine of 3 or more cores, "
        "none otherwise (with 2 cores and a relay on another machine, 1 pays unsigned too); 0 fills "
        "and signs in the sending process.",
    )
    # --- retries (docs/decisions.md, Retries): temporary failures wait and are tried again, like an MTA's que
    retry_first_minutes: float = _setting(
        5.0,
        "After a temporary failure (a 4xx reply at any stage, or the connection lost before the whole "
        "message went out) a delivery is deferred this long before its next attempt; each further "
        "wait doubles, up to retry_max_hours.",
    )
    retry_max_hours: float = _setting(2.0, "The longest wait between two attempts at one delivery.")
    queue_lifetime_hours: float = _setting(
        72.0,
        "How long a delivery is retried: once its waits add up to this, its next temporary failure "
        "fails it for good ('gave up after 3 days of temporary failures'); "
        "`mailer campaigns retry SLUG` re-queues such deliveries.",
    )
    consent_wording: str = _setting(
        "",
        "What members agree to at sign-up, for a network without its own consent_text in "
        "lists/networks.toml; empty means wording that names the network and its charity line "
        '("I agree that <network> may send me …"). Recorded, with a version, in the consent log '
        "with each sign-up.",
    )
    privacy_url: str = _setting(
        "",
        "The privacy notice every mail and page links to, for a network without its own privacy_url "
        "in lists/networks.toml: an https:// address, or a path on the web app (/privacy). Required "
        "before mail goes to members (`mailer doctor` checks it).",
    )
    timezone: str = _setting("Europe/London", "Time zone of event times and the issue date.")
    event_default_minutes: int = _setting(
        120,
        "How long a timed event without an end lasts, in minutes: its DTEND in calendars, and when it "
        "is over for answers.",
    )
    events_clock: str = _setting(
        "",
        "For rehearsals and tests only: the time the events' chores (reminders, change mails, "
        "digests) take as now, e.g. 2025-11-17 19:30 in the timezone; empty: the real time.",
        env="MAILER_EVENTS_CLOCK",
    )
    soft_bounce_limit: int = _setting(
        3,
        "Soft bounces (4.x.x, 5.2.2 mailbox full, other non-address failures) within soft_bounce_days "
        "that suppress an address. Hard bounces (5.1.x) suppress at once.",
    )
    soft_bounce_days: int = _setting(30, "The window, in days, in which soft bounces are counted.")
    # --- the web app's trust (docs/decisions.md, Trust boundaries): link expiry, sign-up limits, hosts ------
    preferences_link_days: int = _setting(
        90,
        "How many days a preferences link works after it was sent. An older link shows a page that "
        "offers to mail the member a fresh one. Unsubscribe links never expire.",
    )
    signup_mails_per_mailbox: int = _setting(
        3,
        "Sign-up mails (confirmation or 'already subscribed') to one mailbox within "
        "signup_mailbox_hours. Counted per mailbox with plus-tags (and dots at gmail.com) stripped, "
        "so victim+1@ and v.ictim@ count as one; stored in the database, so every process shares it.",
    )
    signup_mailbox_hours: int = _setting(24, "The window, in hours, of signup_mails_per_mailbox.")
    signup_posts_per_network: int = _setting(
        20,
        "Sign-up form posts from one network (IPv4 /24, IPv6 /64) within signup_network_minutes; "
        "more get 429 Too Many Requests. Stored in the database.",
    )
    signup_network_minutes: int = _setting(10, "The window, in minutes, of signup_posts_per_network.")
    web_hosts: str = _setting(
        "",
        "Host names the web app answers to besides base_url's, comma-separated (e.g. a second "
        "domain). Requests for any other Host get 400. localhost and 127.0.0.1 are allowed when "
        "base_url is local.",
    )
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
    # --- serving (docs/decisions.md, Serving): health, metrics, logs, load
    metrics_allow: str = _setting(
        "",
        "Addresses or networks (CIDR) besides this machine that may read /metrics, comma-separated, "
        "e.g. 10.0.0.5, 192.168.1.0/24. Without it (and without MAILER_METRICS_TOKEN) only "
        "localhost may.",
    )
    metrics_token: str = field(
        default="",
        repr=False,
        metadata={
            "help": "A bearer token that opens /metrics from anywhere (Authorization: Bearer …). "
            "Set MAILER_METRICS_TOKEN; never in mailer.toml.",
            "env": "MAILER_METRICS_TOKEN",
            "internal": True,
        },
    )
    log_format: str = _setting(
        "text",
        'How `mailer serve` writes its logs: "text" (a line each) or "json" (one JSON object a '
        "line, for a log collector). Tokens and passwords are cut out either way.",
    )
    web_max_requests: int = _setting(
        100,
        "Requests one web process works on at once; more get 503 with Retry-After at once, so that "
        "an overloaded server answers rather than leaving clients without an answer.",
    )
    # --- DKIM and inbox placement (docs/decisions.md, The send's budget): signatures, greeting, one-click ove
    dkim_algorithms: str = _setting(
        "auto",
        'DKIM: which signatures every message carries: "auto" (each key that exists: `mailer init` '
        'makes both), "rsa-sha256", "ed25519-sha256", "rsa-sha256,ed25519-sha256" (both, required), '
        'or "off". Publish the public keys with `mailer dkim dns`.',
    )
    dkim_selector: str = _setting(
        "mailer-rsa",
        "DKIM: the selector of the RSA key (its public key is at SELECTOR._domainkey.DOMAIN); "
        "empty turns RSA signing off.",
    )
    dkim_ed25519_selector: str = _setting(
        "mailer-ed25519",
        "DKIM: the selector of the Ed25519 key (RFC 8463); empty turns Ed25519 signing off.",
    )
    dkim_domain: str = _setting("", "DKIM: the signing domain (d=); empty means the From address's domain.")
    dkim_key_file: str = field(
        default=".mailer-dkim.pem",
        metadata={
            "help": "DKIM: the RSA private key (PEM), readable only by its owner. Set MAILER_DKIM_KEY_FILE, "
            "or keep it in .mailer-dkim.pem in the workspace (`mailer dkim keys` makes it).",
            "env": "MAILER_DKIM_KEY_FILE",
            "internal": True,
        },
    )
    dkim_ed25519_key_file: str = field(
        default=".mailer-dkim-ed25519.pem",
        metadata={
            "help": "DKIM: the Ed25519 private key (PEM, or dkimpy's base64 seed), readable only by its "
            "owner. Set MAILER_DKIM_ED25519_KEY_FILE, or keep it in .mailer-dkim-ed25519.pem.",
            "env": "MAILER_DKIM_ED25519_KEY_FILE",
            "internal": True,
        },
    )
    relay_signs_dkim: bool = _setting(
        False,
        "The relay signs our mail with DKIM for the From domain (some providers' SMTP services do): "
        "then a send without mailer's own signature is not warned about.",
    )
    greeting: str = _setting("Dear {name},", "The first line of every message; {name} is the member's name.")
    greeting_without_name: str = _setting(
        "Hello,", "The first line for a member without a name (and for test sends to nobody's address)."
    )
    demo: bool = _setting(
        False,
        "This workspace is a demo or a test bench, not a network's own: `mailer doctor`, `campaigns "
        "check` and a send then allow example.org addresses, a local base_url and a Maildir outbox. "
        "`mailer demo` sets it; a workspace that mails real people must not.",
    )
    dns_resolver: str = _setting(
        "",
        "The DNS server `mailer doctor` asks for the records to publish (SPF, DKIM, DMARC, MX), and "
        "`mailer inbound process` for the DKIM keys of replies, as HOST or HOST:PORT; empty means the "
        "machine's own resolvers.",
        env="MAILER_DNS_RESOLVER",
    )
    reply_sources: str = _setting(
        "",
        "The mailboxes `mailer inbound process` reads when given none: where mail to the networks' "
        "From and Reply-To addresses (and bounces) arrives, as a list or comma-separated: a Maildir "
        '("maildir:/var/mail/kent-replies"), an mbox file ("mbox:/var/mail/replies") or an IMAP '
        'folder ("imaps://user@host/INBOX", password from MAILER_IMAP_PASSWORD).',
        env="MAILER_REPLY_SOURCES",
    )
    trusted_authserv_id: str = _setting(
        "",
        "The authserv-id our own MTA writes in the Authentication-Results header it adds on top "
        "(e.g. mail.example.org): a reply asking to leave whose topmost such header is by it and says "
        "dkim=pass or dmarc=pass for its From domain is honoured as if its DKIM signature were checked "
        "here. Empty: no such header is trusted.",
    )
    allow_http_unsubscribe: bool = _setting(
        False,
        "Allow an http:// base_url outside localhost. One-click unsubscribe (RFC 8058) needs https, and "
        "providers show no unsubscribe button without it: only for demos and tests.",
    )
    # --- members' data (docs/data.md): how long each kind of record is kept. `mailer purge` and the
    # workers' daily chore delete what is older; the suppressions themselves are never deleted.
    retain_deliveries_days: int = _setting(
        730, "Days a delivery record (who was sent which campaign, and what became of it) is kept."
    )
    retain_inbound_days: int = _setting(
        183,
        "Days inbound mail records, bounce and complaint details, and the inbound Maildir's processed "
        "folder are kept (the suppressions they caused stay).",
    )
    retain_quarantine_days: int = _setting(
        30, "Days a quarantined inbound mail (one that could not be read) is kept for a person to look at."
    )
    retain_sessions_days: int = _setting(
        7, "Days an expired or revoked desk session (with its browser's user agent) or sign-in link is kept."
    )
    retain_audit_days: int = _setting(730, "Days a line of the audit log is kept.")
    retain_outbox_days: int = _setting(
        30, "Days a message in a Maildir outbox (relay = maildir://…) is kept."
    )
    retain_consent_days: int = _setting(
        2190,
        "Days the consent log of a person who is no longer a member is kept after its last line, as "
        "evidence of what they agreed to (6 years, the limitation period). The line that proves a "
        "suppression is never deleted.",
    )
    inbound_maildir: str = _setting(
        "",
        "The Maildir `mailer inbound process` reads (relative to the workspace), so that subject access "
        "and erasure find mail from a person in it, and retention empties its processed and quarantine "
        "folders; empty: none.",
        env="MAILER_INBOUND_MAILDIR",
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

    address_key: str = field(
        default="",
        repr=False,
        metadata={
            "help": "Key of the suppression hash (HMAC-SHA256 of a normalised address). Set "
            "MAILER_ADDRESS_KEY (several, comma-separated, newest first) or keep it in "
            ".mailer-address-key readable only by its owner (`mailer secret rotate-address-key`).",
            "env": "MAILER_ADDRESS_KEY",
            "internal": True,
        },
    )

    @property
    def address_keys(self) -> list[str]:
        """The suppression hash's keys, newest first: the first hashes, any of them is checked."""
        return [s.strip() for s in self.address_key.split(",") if s.strip()]

    @property
    def reply_source_list(self) -> list[str]:
        """The ``reply_sources`` setting as a list; relative paths are in the workspace."""
        out = []
        for spec in (s.strip() for s in self.reply_sources.split(",")):
            if not spec:
                continue
            kind, sep, rest = spec.partition(":")
            if sep and kind in ("maildir", "mbox") and not rest.startswith("/"):
                spec = f"{kind}:{self.workspace / rest}"
            out.append(spec)
        return out

    @property
    def secrets(self) -> list[str]:
        """The token keys, newest first: the first signs, any of them verifies."""
        return [s.strip() for s in self.secret.split(",") if s.strip()]

    def path(self, *parts: str) -> Path:
        return self.workspace.joinpath(*parts)

    @property
    def template_folders(self) -> list[Path]:
        """Where templates are looked up, in order: the workspace's ``templates/``, then the packaged
        defaults (``PACKAGED_TEMPLATES``); these once, when the workspace is the repository root,
        whose ``templates/`` they are."""
        own = self.path("templates")
        return [PACKAGED_TEMPLATES] if own.resolve() == PACKAGED_TEMPLATES else [own, PACKAGED_TEMPLATES]

    @property
    def ehlo_name(self) -> str:
        """The name of the SMTP greeting: ``ehlo_hostname``, else the list domain."""
        return (self.ehlo_hostname or self.list_domain).strip().lower()

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
        """``database_url`` as SQLAlchemy takes it: a relative SQLite path made absolute inside the
        workspace, and ``postgresql://`` given its driver, psycopg 3 (the one mailer ships with)."""
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


def default_toml(organisation: str | None = None, from_address: str | None = None, **values: Any) -> str:
    """The text of a new mailer.toml: every setting, commented with its help; ``values`` (by
    setting name) replace the defaults."""
    import tomli_w

    lines = [
        "# mailer settings for this workspace. Each setting's comment says what it does.",
        "# Secrets do not belong here: set MAILER_SECRET and MAILER_RELAY_PASSWORD in the environment,",
        "# or keep the token key in .mailer-secret (readable only by you).",
        "",
    ]
    for name, default, help_, env in declared():
        given = {**values, "organisation": organisation, "from_address": from_address}.get(name)
        value = given if given not in (None, "") else default
        lines.append(f"# {help_}" + (f" Overridden by {env}." if env else ""))
        lines.append(tomli_w.dumps({name: value}).strip())
        lines.append("")
    return "\n".join(lines)


#: Settings written in mailer.toml as a list of strings or one comma-separated string.
LIST_SETTINGS = frozenset({"reply_sources"})


def _coerce(name: str, value: Any, default: Any, path: Path) -> Any:
    kind = type(default)
    if name in LIST_SETTINGS and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(v.strip() for v in value)
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


def _read_secret_file(workspace: Path) -> str:
    return ",".join(read_secret_file(workspace / SECRET_FILE))


def ensure_secret(settings: Settings) -> Settings:
    """Return settings with a token key and a suppression-hash key, creating .mailer-secret and
    .mailer-address-key (mode 600) on first use."""
    settings = ensure_address_key(settings)
    if settings.secrets:
        return settings
    key = new_secret()
    write_secret_file(settings.path(SECRET_FILE), [key])
    return replace(settings, secret=key)


ADDRESS_KEY_WHAT = "the key of the suppression hash"


def ensure_address_key(settings: Settings) -> Settings:
    """Return settings with a key of the suppression hash, creating .mailer-address-key (mode 600)
    in the workspace when there is none (a workspace made before keyed hashes: its members are
    hashed again under it when the database is next used; docs/data.md, The suppression hash)."""
    if settings.address_keys:
        return settings
    address_key = new_secret()
    write_secret_file(settings.path(ADDRESS_KEY_FILE), [address_key], what=ADDRESS_KEY_WHAT)
    return replace(settings, address_key=address_key)


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
            if key in ("secret", "secrets", "password", "relay_password", "address_key"):
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
    if "database_url" in values:
        from_env = env.get("MAILER_DATABASE_URL")
        check_database_url(
            values["database_url"],
            field="MAILER_DATABASE_URL" if from_env else "database_url",
            path=None if from_env else toml_path,
        )
    if values.get("ehlo_hostname"):
        check_ehlo_name(values["ehlo_hostname"].strip(), path=toml_path)
    secret_path = None
    if not values.get("secret"):
        values["secret"] = _read_secret_file(root)
        secret_path = root / SECRET_FILE
    check_secrets(values["secret"], path=secret_path)
    address_key_path = None
    if not values.get("address_key"):
        values["address_key"] = ",".join(read_secret_file(root / ADDRESS_KEY_FILE))
        address_key_path = root / ADDRESS_KEY_FILE
    if values["address_key"]:
        check_secrets(values["address_key"], path=address_key_path, what=ADDRESS_KEY_WHAT)
    return Settings(**values)
