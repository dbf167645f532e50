"""What every route needs, held by the app (``request.app.state.web``): no global state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from mailer.audience.shape import Shape
from mailer.db import Database, Session, write
from mailer.limits import Limit, Lockout, hit
from mailer.settings import Settings
from mailer.tokens import TokenData
from mailer.web.csrf import Csrf
from mailer.web.pages import Pages
from mailer.web.ratelimit import network_of

T = TypeVar("T")

SendMail = Callable[[EmailMessage], Awaitable[None]]
"""Sends one system mail (a sign-up confirmation) through the configured relay."""


@dataclass(frozen=True)
class Limits:
    """The web app's limits, counted in the database (``mailer.limits``). The defaults of
    the sign-up limits come from the settings (``Limits.from_settings``)."""

    signups_per_client: int = 20
    """Sign-up form posts per client network (IPv4 /24, IPv6 /64) in ``signup_window`` seconds."""
    signup_window: float = 600.0
    mails_per_address: int = 3
    """Sign-up mails (confirmation or "already subscribed") to one mailbox (``consent.mailbox_key``)
    in ``address_window`` seconds."""
    address_window: float = 86400.0
    preference_mails_per_member: int = 3
    """Mailed preferences links per member in ``preference_mail_window`` seconds."""
    preference_mail_window: float = 3600.0
    admin_failures: int = 5
    """Wrong admin passwords from one address before each further one locks it out, for twice as
    long as the last time (1 s, 2 s, 4 s, …), up to ``admin_lock_max`` seconds."""
    admin_lock_max: float = 900.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            signups_per_client=settings.signup_posts_per_network,
            signup_window=settings.signup_network_minutes * 60.0,
            mails_per_address=settings.signup_mails_per_mailbox,
            address_window=settings.signup_mailbox_hours * 3600.0,
        )

    @property
    def network(self) -> Limit:
        return Limit("signup-network", self.signups_per_client, timedelta(seconds=self.signup_window))

    @property
    def mailbox(self) -> Limit:
        return Limit("signup-mailbox", self.mails_per_address, timedelta(seconds=self.address_window))

    @property
    def preference_mails(self) -> Limit:
        return Limit(
            "preferences-mail",
            self.preference_mails_per_member,
            timedelta(seconds=self.preference_mail_window),
        )

    @property
    def admin_lockout(self) -> Lockout:
        return Lockout(self.admin_failures, self.admin_lock_max)


@dataclass
class Web:
    settings: Settings
    shape: Shape
    db: Database
    writer: Database
    pages: Pages
    csrf: Csrf
    limits: Limits
    send_mail: SendMail
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return self.settings.secrets

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a read transaction, off the event loop."""

        def run() -> T:
            with self.db.session() as session:
                return work(session)

        return await run_in_threadpool(run)

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a short write transaction, retried on a busy database."""
        return await run_in_threadpool(write, self.writer, work)

    async def hit(self, limit: Limit, key: str) -> float | None:
        """Count one action against ``limit`` (in the database): None when allowed, else the
        seconds to wait."""
        now = self.clock()
        return await self.write(lambda session: hit(session, limit, key, now))


def web(request: Request) -> Web:
    state: Web = request.app.state.web
    return state


#: Row ids are INTEGER columns; a token may name ids up to 2**53 - 1, which no row can have.
MAX_ROW_ID = 2**31 - 1


def in_range(data: TokenData) -> TokenData:
    """``data`` with a member id no row can have made 0 (no member has it: the answer is as for an
    erased member) and such a campaign id dropped, so no query is asked about an impossible id."""
    member = data.member_id if data.member_id <= MAX_ROW_ID else 0
    campaign = data.campaign if data.campaign is not None and data.campaign <= MAX_ROW_ID else None
    return replace(data, member_id=member, campaign=campaign)


def client_ip(request: Request) -> str:
    """The client's address (behind a proxy, run uvicorn with --proxy-headers to see the real one)."""
    return request.client.host if request.client else "unknown"


def client_network(request: Request) -> str:
    """The client's network, as limits count it (IPv4 /24, IPv6 /64)."""
    return network_of(client_ip(request))
