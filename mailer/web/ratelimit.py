"""Rate limits for the web app: a sliding window of hits per key (a client IP, an address hash).

The counts live in memory, in this process: right for ``mailer serve`` as one process. Several
processes behind a load balancer each count on their own, so a client gets up to N times the limit;
a shared store (the database, Redis) would be needed to count across processes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds for each key.

    ``hit(key)`` records a hit and returns None when it is allowed, or the seconds to wait before the
    next hit would be allowed when it is not (a refused hit is not recorded).
    """

    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 100_000
    _hits: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    def hit(self, key: str) -> float | None:
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._forget_idle(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(hits[0] + self.window - now, 0.001)
        hits.append(now)
        return None

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            del self._hits[key]
