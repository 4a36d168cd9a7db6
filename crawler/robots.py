"""robots.txt of image hosts, fetched once per host and cached for the worker's lifetime.

RFC 9309's rules for an unreadable file: a 4xx answer means no restrictions; a 5xx answer or an
unreachable host means "disallow everything" (the image would most likely fail anyway, and a host
that cannot say no is not taken as saying yes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

#: fetch(url) -> (HTTP status, body); status 0 when the host could not be reached.
Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]


def robots_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/robots.txt"


class RobotsCache:
    """Answers "may `agent` fetch this URL?" per host, fetching each robots.txt once."""

    def __init__(self, fetch: Fetch, agent: str):
        self._fetch = fetch
        self.agent = agent
        self._parsers: dict[str, RobotFileParser] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def allowed(self, url: str) -> bool:
        key = robots_url(url)
        parser = self._parsers.get(key)
        if parser is None:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:  # one fetch per host even when many downloads start at once
                parser = self._parsers.get(key)
                if parser is None:
                    parser = await self._load(key)
                    self._parsers[key] = parser
        return parser.can_fetch(self.agent, url)

    async def _load(self, url: str) -> RobotFileParser:
        parser = RobotFileParser(url)
        status, body = await self._fetch(url)
        if 200 <= status < 300:
            parser.parse(body.decode("utf-8", errors="replace").splitlines())
        elif 400 <= status < 500:
            parser.allow_all = True
        else:
            parser.disallow_all = True
        return parser
