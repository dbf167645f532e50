"""A database that is away for a while is weather: a sender waits, with backoff, and goes on.

A restart, a failover, ``pg_terminate_backend`` or a refused connection raise errors that
:func:`mailer.db.is_transient` recognises. A sender that meets one (:class:`~mailer.sending.worker.Worker`,
:class:`~mailer.sending.engine.Engine`) notes it on its :class:`Outage`, which says so once, waits
longer each time (``FIRST_WAIT`` doubling up to ``LONGEST_WAIT``, with jitter so that many workers do
not knock at once), and says once when the database is back and how long it was away.
What a sender does meanwhile with what it sent and what it holds: docs/decisions.md, Workers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

FIRST_WAIT = 0.2  # seconds before the first try again
LONGEST_WAIT = 2.0  # the wait doubles up to this


def describe(exc: BaseException) -> str:
    """The driver's message on one line, without SQLAlchemy's statement and parameters."""
    orig = getattr(exc, "orig", None) or exc
    words = " ".join(str(orig).split())
    return (words[:200] + "…") if len(words) > 200 else words or type(orig).__name__


class Outage:
    """One sender's view of the database being away: when it began, how many tries since."""

    def __init__(self, who: str, say: Callable[[str], None] | None = None) -> None:
        self.who = who
        self.say = say or (lambda line: log.warning("%s", line))
        self.since: float | None = None
        self.tries = 0
        self.back_at = float("-inf")  # when the database last came back (monotonic)

    @property
    def away(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> float:
        """Note a failure; the seconds to wait before trying again. Said once per outage."""
        if self.since is None:
            self.since = time.monotonic()
            self.tries = 0
            self.say(f"{self.who}: the database is away ({describe(exc)}); trying again with backoff")
        self.tries += 1
        wait: float = min(FIRST_WAIT * 2.0 ** min(self.tries - 1, 20), LONGEST_WAIT)
        return wait * (0.5 + random.random() / 2)

    def back(self) -> None:
        """The database answered: say so, once, if it had been away."""
        if self.since is not None:
            seconds = time.monotonic() - self.since
            self.say(f"{self.who}: the database is back after {seconds:.1f}s ({self.tries} tries)")
            self.since = None
            self.tries = 0
            self.back_at = time.monotonic()

    def settled(self, seconds: float) -> bool:
        """Whether the database has answered for ``seconds`` since it last came back (or never went)."""
        return self.since is None and time.monotonic() - self.back_at >= seconds

    async def wait(self, exc: BaseException, stopping: Callable[[], bool] | None = None) -> None:
        """Note ``exc`` and sleep the backoff, in short steps so that a stop is not kept waiting."""
        end = time.monotonic() + self.failed(exc)
        while (left := end - time.monotonic()) > 0:
            if stopping is not None and stopping():
                return
            await asyncio.sleep(min(left, 0.1))
