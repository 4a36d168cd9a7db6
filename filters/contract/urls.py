"""URL identity: when two URLs name the same pair, and the `key` that names it in every shard.

The crawl de-duplicates by `normalise_url`, the filter's `duplicate_url` rule compares
`normalise_url`, and the `key` column is derived from it, so the three agree: two URLs that differ
only in the case of their host are one pair everywhere.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(url: str) -> str:
    """The form two URLs of the same resource share: scheme and host lower-cased, the default
    port and the fragment removed, an empty path made "/". Path and query are kept as they are
    (they are case-sensitive on most servers). An unparsable URL comes back stripped."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return url
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username or parts.password:
        userinfo = parts.username or ""
        if parts.password:
            userinfo += ":" + parts.password
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def url_key(url: str) -> str:
    """A stable 16-hex-digit key for a URL: URLs that normalise alike get the same key."""
    return hashlib.sha1(normalise_url(url).encode("utf-8")).hexdigest()[:16]
