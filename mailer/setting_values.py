"""Values of settings that need more than a type to check: the database URL (read without
SQLAlchemy, so that loading settings stays cheap) and the name of the SMTP greeting. Both are
checked when settings load, before anything is opened or written."""

from __future__ import annotations

import re
from pathlib import Path

from mailer.errors import ConfigError

# --- the database URL: checked when settings load, before anything is opened or written ---------

DATABASE_URL_FORMS = (
    "sqlite:///mailer.db for a file in the workspace, sqlite:////absolute/path.db, "
    "or postgresql+psycopg://user@host:5432/dbname, with any password as user:password@"
)


def database_url_problem(url: str) -> str | None:
    """Why ``url`` is not a database URL mailer can open, or None when it is one.

    mailer runs on SQLite (Python's own driver) and on PostgreSQL through psycopg 3; ``postgresql://``
    without a driver means psycopg (``Settings.sqlalchemy_url`` adds it). Read without SQLAlchemy, so
    that loading settings stays cheap, and split as SQLAlchemy's ``make_url`` splits it: the password
    ends at the first ``@``, so a second one (an unencoded ``@`` in the password) is refused."""
    import re

    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+._-]*", scheme):
        return "not a database URL"
    dialect, _, driver = scheme.lower().partition("+")
    if dialect == "sqlite":
        if driver not in ("", "pysqlite"):
            return f"the SQLite driver {driver!r} is not one mailer uses (it uses Python's own, sqlite://)"
        if rest and not rest.startswith("/"):
            return "a SQLite URL has three slashes before a relative path and four before an absolute one"
        return None
    if dialect in ("postgres", "pgsql"):
        return f"{dialect!r} is not a database SQLAlchemy knows; PostgreSQL's is spelt postgresql+psycopg"
    if dialect != "postgresql":
        return f"mailer runs on SQLite or PostgreSQL, not {dialect!r}"
    if driver not in ("", "psycopg"):
        return f"mailer talks to PostgreSQL through psycopg 3 only, not the driver {driver!r}"
    authority = rest.partition("?")[0]
    if authority.count("@") > 1:  # SQLAlchemy ends the password at the first '@'
        return "the user or password holds an '@': write it as %40 (and a '/' as %2F, a ':' as %3A)"
    host_part = rest.partition("@")[2] if "@" in authority else rest
    host_port = re.split(r"[/?]", host_part, maxsplit=1)[0]
    if host_port.startswith("["):
        host, bracket, port = host_port[1:].partition("]")
        if not bracket:
            return "the IPv6 address of the host has no closing ']'"
        if port and not port.startswith(":"):
            return "only a :port may follow the ']' of an IPv6 host"
        port = port[1:]
    else:
        host, _, port = host_port.partition(":")
    if re.search(r"[\s'\"<>\\[\]]", host):
        return f"the host {host!r} is not a host name"
    if port and not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
        return f"the port {port!r} is not a number from 1 to 65535"
    return None


def check_database_url(url: str, *, field: str = "database_url", path: Path | None = None) -> None:
    """Raise ``ConfigError`` when ``url`` is not a database URL mailer can open, naming the setting
    (``field``, and ``path`` when it came from mailer.toml), the URL with its password hidden, and
    the forms mailer takes."""
    from mailer.redact import redact_url

    problem = database_url_problem(url)
    if problem is not None:
        raise ConfigError(
            f"{problem}: {redact_url(url)!r}", path=path, field=field, hint=f"write {DATABASE_URL_FORMS}"
        )


# --- the name of the SMTP greeting -------------------------------------------------------------

_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EHLO_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?|\[(?:IPv6:[0-9A-Fa-f:.]+|[0-9.]+)\]")


def check_ehlo_name(name: str, *, path: Path | None = None) -> str:
    """``name`` if it can stand in an SMTP greeting (RFC 5321 4.1.1.1: a domain name, or an address
    literal such as ``[192.0.2.1]``), else ConfigError about ``ehlo_hostname``. White space or a
    line break would end the EHLO line early and put a command of its own on the wire."""
    if len(name) > 253 or not _EHLO_NAME.fullmatch(name):
        raise ConfigError(
            f"not a host name for the SMTP greeting: {name[:100]!r}",
            path=path,
            field="ehlo_hostname",
            hint='give the sending host\'s public name, e.g. ehlo_hostname = "mail.example.org" '
            "(letters, digits, hyphens and dots), or leave it empty for the list domain",
        )
    return name
