"""What every route needs, held by the app (``request.app.state.web``): no global state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.settings import Settings
from mailer.web.csrf import Csrf
from mailer.web.pages import Pages
from mailer.web.ratelimit import RateLimiter
from mailer.web.writes import write

T = TypeVar("T")

SendMail = Callable[[EmailMessage], Awaitable[None]]
"""Sends one system mail (a sign-up confirmation) through the configured relay."""


@dataclass(frozen=True)
class Limits:
    """The web app's rate limits (counted in memory, per process)."""

    signups_per_client: int = 5
    """Sign-up form posts per client IP address in ``signup_window`` seconds."""
    signup_window: float = 600.0
    mails_per_address: int = 3
    """Mails (confirmation or "already subscribed") to one address in ``address_window`` seconds."""
    address_window: float = 3600.0


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
    signup_limiter: RateLimiter = field(init=False)
    address_limiter: RateLimiter = field(init=False)
    cache: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signup_limiter = RateLimiter(self.limits.signups_per_client, self.limits.signup_window)
        self.address_limiter = RateLimiter(self.limits.mails_per_address, self.limits.address_window)

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


def web(request: Request) -> Web:
    state: Web = request.app.state.web
    return state


def client_ip(request: Request) -> str:
    """The client's address (behind a proxy, run uvicorn with --proxy-headers to see the real one)."""
    return request.client.host if request.client else "unknown"
