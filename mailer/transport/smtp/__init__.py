"""Sending over SMTP relays: a pool of reused, pipelined connections with failover and rate limits.

- :mod:`~mailer.transport.smtp.relay`: relay URLs (``smtp://``, ``smtp+starttls://``, ``smtps://``)
  and where their passwords come from;
- :mod:`~mailer.transport.smtp.connection`: one connection speaking SMTP PIPELINING over ready,
  dot-stuffed payloads, one round trip a message, and why aiosmtplib hands it over once connected;
- :mod:`~mailer.transport.smtp.pool`: :class:`SmtpPool`, the connections reused for message after
  message, replaced when they break, failing over between relays, under each relay's rate limit.
"""

from mailer.transport.smtp.pool import SmtpPool
from mailer.transport.smtp.relay import PASSWORD_ENV, Relay, parse_relay

__all__ = ["PASSWORD_ENV", "Relay", "SmtpPool", "parse_relay"]
