"""A rate limiter for asyncio code: at most `rate` acquisitions per second, evenly spaced."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """Space acquisitions at least 1/rate seconds apart (rate <= 0: no limit).

    It is per instance, so per worker: N workers that each hold one allow N * rate in total.
    Must be used from one event loop.
    """

    def __init__(self, rate: float):
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        self.rate = rate
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock: asyncio.Lock | None = None

    async def acquire(self) -> None:
        if self._interval == 0.0:
            return
        if self._lock is None:  # created lazily, inside the running loop
            self._lock = asyncio.Lock()
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            if wait > 0:
                await asyncio.sleep(wait)
                now = time.monotonic()
            self._next = max(now, self._next) + self._interval
