"""Rate limits for a relay: messages per second and per hour, shared by all its connections.

- **Per second** is a token bucket: it refills at ``per_second`` tokens a second and holds at most
  ``max(1, per_second)``, so sends are spread evenly and a burst never exceeds one second's worth.
  Fractional rates work (0.5 means one message every two seconds).
- **Per hour** is a sliding window: never more than ``per_hour`` messages in any 3,600 seconds.
  Relays count hourly quotas that way, and a token bucket would let up to twice the quota through
  in the first hour. It keeps one timestamp per message of the last hour.

The clock and the sleep are parameters, so tests drive the limiter with a clock of their own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

HOUR = 3600.0


class RateLimiter:
    """Grants sends within the limits; ``0`` for a limit means no limit."""

    def __init__(
        self,
        per_second: float = 0.0,
        per_hour: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if per_second < 0 or per_hour < 0:
            raise ValueError("rate limits cannot be negative")
        self.per_second = float(per_second)
        self.per_hour = int(per_hour)
        self.clock = clock
        self.sleep = sleep
        self.unlimited = not per_second and not per_hour
        self._capacity = max(1.0, self.per_second)
        self._tokens = self._capacity
        self._stamp = clock()
        self._sent: deque[float] = deque()

    def reserve(self, take: bool = True) -> float:
        """Take a send now and return 0.0, or take nothing and return how long to wait first.

        With ``take=False`` only say how long the wait would be (0.0: a send is allowed now).
        """
        if self.unlimited:
            return 0.0
        now = self.clock()
        wait = 0.0
        if self.per_second:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self.per_second)
            self._stamp = now
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self.per_second
        if self.per_hour:
            sent = self._sent
            while sent and sent[0] <= now - HOUR:
                sent.popleft()
            if len(sent) >= self.per_hour:
                wait = max(wait, sent[0] + HOUR - now)
        if wait > 0.0 or not take:
            return wait
        if self.per_second:
            self._tokens -= 1.0
        if self.per_hour:
            self._sent.append(now)
        return 0.0

    async def acquire(self) -> None:
        """Wait until a send is allowed, and take it."""
        while (wait := self.reserve()) > 0.0:
            await self.sleep(wait)
