"""Transports: where finished messages go, chosen by URL.

- ``smtp://host:port``, ``smtp+starttls://user@host:587``, ``smtps://user@host:465``: a pool of
  pipelined SMTP connections (:class:`SmtpPool`, see :mod:`mailer.transport.smtp`). Several URLs
  fail over in order. Passwords come from ``MAILER_RELAY_PASSWORD`` (or the URL, for tests).
- ``maildir:///abs/path``: a Maildir outbox (:class:`MaildirTransport`), the embedded default.

Both take ready DATA payloads (:func:`data_payload`) and give a :class:`SendResult` per message,
through the same :class:`Transport` interface, so the delivery engine does not care which it has::

    async with transport_for(settings) as transport:
        stream = transport.send_many(Outgoing(sender, rcpt, payload, key=delivery_id) for ...)
        async for result in stream:
            if result.temporary and not result.unknown and tries[result.key] < 3:
                stream.requeue(result.message, delay=30)
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Protocol, Self

from mailer.errors import ConfigError
from mailer.settings import Settings
from mailer.transport.base import (
    Outgoing,
    SendResult,
    SendStream,
    check_payload,
    data_payload,
    enhanced_status,
    message_from_payload,
)
from mailer.transport.limits import RateLimiter
from mailer.transport.maildir import MaildirTransport, maildir_path
from mailer.transport.smtp import PASSWORD_ENV, Relay, SmtpPool, parse_relay

__all__ = [
    "PASSWORD_ENV",
    "MaildirTransport",
    "Outgoing",
    "RateLimiter",
    "Relay",
    "SendResult",
    "SendStream",
    "SmtpPool",
    "Transport",
    "check_payload",
    "data_payload",
    "enhanced_status",
    "maildir_path",
    "message_from_payload",
    "open_transport",
    "parse_relay",
    "transport_for",
]


class Transport(Protocol):
    """What the delivery engine needs of a transport."""

    @property
    def url(self) -> str:
        """Where messages go now (an SMTP relay's URL without password, or the Maildir's)."""
        ...

    async def open(self) -> None:
        """Get ready; raise TransportError (nothing sent yet) if the destination cannot be used."""
        ...

    async def close(self, abort: bool = False) -> None:
        """Finish queued messages (``abort``: drop them) and let go of connections."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def send(self, sender: str, recipient: str, payload: bytes, *, key: object = None) -> SendResult:
        """Send one ready DATA payload to one recipient."""
        ...

    def send_many(
        self, messages: Iterable[Outgoing] | AsyncIterable[Outgoing], *, window: int | None = None
    ) -> SendStream:
        """Send many, keeping every connection busy; results come out as they complete."""
        ...


def open_transport(
    urls: Sequence[str] | str,
    *,
    concurrency: int = 8,
    rate_per_second: float = 0.0,
    rate_per_hour: int = 0,
    timeout: float = 60.0,
    tls_context: ssl.SSLContext | None = None,
    env: Mapping[str, str] | None = None,
    local_hostname: str | None = None,
) -> Transport:
    """The transport for these relay URLs (not yet opened: use ``async with``). ``local_hostname``
    is the name an SMTP relay is greeted with (``Settings.ehlo_name``)."""
    items = [u.strip() for u in (urls.split(",") if isinstance(urls, str) else urls) if u.strip()]
    if not items:
        raise ConfigError("no relay given", field="relay", hint="set relay in mailer.toml or MAILER_RELAY")
    maildirs = [u for u in items if u.lower().startswith("maildir:")]
    if maildirs:
        if len(items) > 1:
            raise ConfigError(
                "a Maildir outbox cannot be combined with other relays",
                field="relay",
                hint="give either one maildir:///path or one or more SMTP relay URLs",
            )
        return MaildirTransport(items[0], concurrency=min(concurrency, 4))
    return SmtpPool(
        items,
        concurrency=concurrency,
        rate_per_second=rate_per_second,
        rate_per_hour=rate_per_hour,
        timeout=timeout,
        tls_context=tls_context,
        env=env,
        local_hostname=local_hostname,
    )


def transport_for(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    *,
    concurrency: int | None = None,
    timeout: float = 60.0,
) -> Transport:
    """The transport the workspace's settings name (relay, concurrency, rate limits, the name of
    the SMTP greeting)."""
    return open_transport(
        settings.relays,
        concurrency=concurrency or settings.concurrency,
        rate_per_second=settings.rate_per_second,
        rate_per_hour=settings.rate_per_hour,
        timeout=timeout,
        env=os.environ if env is None else env,
        local_hostname=settings.ehlo_name,
    )
