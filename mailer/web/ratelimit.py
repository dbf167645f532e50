"""The web app's limits, counted in the database (``rate_hits``) so that they hold across every
process and restart: sign-up posts per network, sign-up mails per mailbox, preferences-link mails
per member.

Each allowed action is a row (scope, key, time). A limit of N per window allows an action when fewer
than N rows of its scope and key are younger than the window; a refused action is not recorded. The
check and the insert run in one short write transaction, serialised per (scope, key): on SQLite
every write transaction takes the write lock at its start (``BEGIN IMMEDIATE``, mailer.db), on
PostgreSQL a transaction-scoped advisory lock on the pair. Rows older than the window are deleted as
new hits come in.

Clients are counted by network, not by address: an IPv4 /24 or an IPv6 /64 (what one customer of
a provider usually holds), so that hopping between a network's addresses does not reset a count.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from mailer.models import RateHit


@dataclass(frozen=True)
class Limit:
    """At most ``count`` actions of ``scope`` per key within ``window``; a count of 0 or less means
    no limit."""

    scope: str
    count: int
    window: timedelta


def network_of(host: str) -> str:
    """The network a client address is counted by: ``203.0.113.0/24`` for IPv4 (and IPv4-mapped
    IPv6), ``2001:db8:1:2::/64`` for IPv6; anything that is not an address as itself (cut to 64)."""
    try:
        address = ipaddress.ip_address(host.strip())
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def hashed_key(purpose: str, value: str) -> str:
    """A key for ``rate_hits`` that does not hold ``value`` (an address) in clear."""
    return hashlib.sha256(f"mailer-rate-v1\0{purpose}\0{value}".encode()).hexdigest()


def _lock(session: Session, scope: str, key: str) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: this transaction began with BEGIN IMMEDIATE and holds the write lock
    digest = hashlib.sha256(f"{scope}\0{key}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def hit(session: Session, limit: Limit, key: str, now: datetime) -> float | None:
    """Count one action of ``limit.scope`` by ``key`` at ``now`` (aware) if the limit allows it:
    None when allowed (and recorded), else the seconds until the next one would be allowed."""
    if limit.count <= 0:
        return None
    key = key[:128]
    _lock(session, limit.scope, key)
    since = now - limit.window
    session.execute(delete(RateHit).where(RateHit.scope == limit.scope, RateHit.created_at < since))
    recent = list(
        session.scalars(
            select(RateHit.created_at)
            .where(RateHit.scope == limit.scope, RateHit.key == key, RateHit.created_at >= since)
            .order_by(RateHit.created_at)
            .limit(limit.count)
        )
    )
    if len(recent) >= limit.count:
        return max((recent[0] + limit.window - now).total_seconds(), 1.0)
    session.add(RateHit(scope=limit.scope, key=key, created_at=now))
    session.flush()
    return None
