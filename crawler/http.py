"""HTTP helpers shared by the search client and the downloader: who we say we are, how long we
wait before a retry, and how a body is read without letting it grow past a cap.
"""

from __future__ import annotations

import random

import aiohttp

#: In every User-Agent we send, so that site owners can identify the crawler and opt out.
PROJECT_TOKEN = "wukong-pipeline/0.1"


async def read_capped(stream: aiohttp.StreamReader, cap: int) -> bytes:
    """Read a body until its end or until it exceeds `cap` bytes (then cap + 1 bytes are
    returned, and the rest is never read)."""
    parts: list[bytes] = []
    size = 0
    while size <= cap:
        part = await stream.read(cap + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [base*2^attempt/2, base*2^attempt]."""
    ceiling = min(max_s, base_s * (2 ** attempt))
    return rng.uniform(ceiling / 2, ceiling)
