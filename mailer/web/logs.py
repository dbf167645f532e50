"""What the web app writes to its logs: never a whole token, never a password.

Links carry tokens that act for a member (``/u/TOKEN`` unsubscribes, ``/p/TOKEN`` edits a profile,
``/confirm/TOKEN`` subscribes) or an editor (``/desk/sign-in/TOKEN`` signs in), so an access log
holding them would let its readers act for every member and editor in it. ``redact`` cuts every
token in a path to its first ``PREFIX`` characters (enough to tell two requests apart, far too few
to use), masks the password of any ``scheme://user:password@``
URL and any HTTP Basic credentials, and replaces the workspace's own secrets (the token keys, the
admin and relay passwords) wherever they appear.

``RedactingFilter`` applies it to every record a logger passes on, access-log records included
(their path is one of the record's arguments), and to the traceback of an error; ``log_config``
is uvicorn's logging configuration with the filter on every handler, which ``mailer serve`` uses.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from mailer.errors import ConfigError
from mailer.settings import Settings

PREFIX = 6
MASK = "[redacted]"

# /u/TOKEN, /p/TOKEN, /p/TOKEN/leave, /c/TOKEN, /v/TOKEN, /confirm/TOKEN, /desk/sign-in/TOKEN: a
# token segment (longer than PREFIX).
_TOKEN_PATH = re.compile(r"(/(?:u|p|c|v|confirm|desk/sign-in)/)([^/?#\s\"']{7,})")
# ?token=… and the like in a query string.
_TOKEN_QUERY = re.compile(r"([?&](?:token|t|key|code|secret|password)=)([^&#\s\"']+)", re.IGNORECASE)
# scheme://user:password@host
_URL_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.-]*://[^:/@\s\"']*:)([^@\s\"']+)@", re.IGNORECASE)
# Authorization: Basic …, Bearer …
_AUTHORIZATION = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{6,}", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with tokens in paths cut to a prefix and passwords and ``secrets`` masked."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, MASK)
    text = _TOKEN_PATH.sub(lambda m: m.group(1) + m.group(2)[:PREFIX] + "...", text)
    text = _TOKEN_QUERY.sub(lambda m: m.group(1) + m.group(2)[:PREFIX] + "...", text)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + "***@", text)
    return _AUTHORIZATION.sub(lambda m: m.group(1) + " " + MASK, text)


def secrets_of(settings: Settings, env: dict[str, str] | None = None) -> list[str]:
    """Every secret value the web app knows: token keys, the admin and relay passwords."""
    env = dict(os.environ if env is None else env)
    values = [*settings.secrets, settings.admin_password, env.get("MAILER_RELAY_PASSWORD", "")]
    return [v for v in values if v]


class RedactingFilter(logging.Filter):
    """Redacts every record it passes (``redact``): message, arguments and traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def _clean(self, value: Any) -> Any:
        return redact(value, self.secrets) if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text, self.secrets)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line (``log_format = "json"``): time, level, logger, message, and for an
    access-log record its client, method, path and status as fields of their own."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _version, status = record.args
            entry.update(client=client, method=method, path=path, status=status)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


LOG_FORMATS = ("text", "json")


def log_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's logging configuration with ``RedactingFilter`` on every handler, the ``mailer``
    loggers (the embedded sending worker's lines among them) beside uvicorn's, and each line as
    JSON when ``log_format = "json"``."""
    from uvicorn.config import LOGGING_CONFIG

    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(
            f"log_format must be one of {', '.join(LOG_FORMATS)}, not {settings.log_format!r}",
            field="log_format",
            hint='log_format = "json" for a log collector, "text" for people',
        )
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {
        "()": RedactingFilter,
        "secrets": secrets_of(settings),
    }
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    config["loggers"]["mailer"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    if settings.log_format == "json":
        config["formatters"] = {"json": {"()": JsonFormatter}}
        for handler in config["handlers"].values():
            handler["formatter"] = "json"
    return config
