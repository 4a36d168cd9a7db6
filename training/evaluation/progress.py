"""Progress notices of an evaluation run. They go to stderr, so stdout keeps only the results table."""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class ThrottledLog:
    """`log(f"{what}: {done}/{total}")` at most every `seconds`, and always at the end."""

    def __init__(self, seconds: float = 10.0):
        self.seconds = seconds
        self.last = time.perf_counter()

    def __call__(self, what: str, done: int, total: int) -> None:
        if done == total or time.perf_counter() - self.last > self.seconds:
            log(f"{what}: {done}/{total}")
            self.last = time.perf_counter()
