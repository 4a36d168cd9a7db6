"""Baidu image search through its acjson endpoint (the JSON the result page loads while scrolling).

    GET {base}/search/acjson?tn=resultjson_com&ipn=rj&word=QUERY&pn=OFFSET&rn=30&...

Contracts (docs/design.md): `decode_objurl`, `parse_acjson` and `SearchHit`. The same client talks to
the real engine (`https://image.baidu.com`) and to the local engine of the tests and the demo; only
the base URL differs.

What Baidu does that a parser must survive:
- `objURL`/`fromURL` are obfuscated with a substring map and then a per-character map;
- bodies may hold invalid JSON escapes (`\\'`) and end `data` with an empty object `{}`;
- an anti-spider answer is `{"antiFlag":1,"message":"Forbid spider access"}`, or a redirect to a
  captcha page: both raise `SearchBlocked`, never "no results".
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from crawler.captions import collapse_whitespace, strip_markup
from crawler.errors import SearchBlocked, SearchResponseError, UnsafeDestination
from crawler.http import PROJECT_TOKEN, backoff_delay, read_capped
from crawler.ratelimit import RateLimiter
from crawler.safety import AllowList, BadUrl, GuardedResolver, check_destination, split_url
from filters.contract.flags import flag

BAIDU_BASE_URL = "https://image.baidu.com"
ACJSON_PATH = "/search/acjson"
BROWSER_USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/120.0.0.0 Safari/537.36")

# --------------------------------------------------------------------------------------------
# objURL cipher (as documented by public crawlers such as icrawler)
# --------------------------------------------------------------------------------------------

_SUBSTRINGS = (("_z2C$q", ":"), ("_z&e3B", "."), ("AzdH3F", "/"))
_CHARS = dict(zip("wkv1ju2it3hs4g5rq6fp7eo8dn9cm0bla", "abcdefghijklmnopqrstuvw1234567890"))
_DECODE_TABLE = str.maketrans(_CHARS)
_ENCODE_TABLE = str.maketrans({v: k for k, v in _CHARS.items()})


def decode_objurl(s: str) -> str:
    """Baidu's obfuscated objURL/fromURL to a plain URL. A URL that is already plain
    (starts with http:// or https://) is returned unchanged."""
    if s.startswith(("http://", "https://")):
        return s
    for cipher, plain in _SUBSTRINGS:
        s = s.replace(cipher, plain)
    return s.translate(_DECODE_TABLE)


def encode_objurl(url: str) -> str:
    """The inverse of `decode_objurl`, for engines that serve Baidu's format (the local engine).

    Only URLs whose characters the cipher maps back one to one round-trip: lower-case letters
    a-w, digits and the characters the cipher leaves alone (x, y, z, '-', '_', ...)."""
    s = url.translate(_ENCODE_TABLE)
    for cipher, plain in _SUBSTRINGS:
        s = s.replace(plain, cipher)
    return s


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SearchHit:
    """One image result: the image URL, its caption (the page title), the size the engine claims
    (0 when it does not say), the page it was found on (may be ""), the query and the 0-based
    rank within the query's results."""

    url: str
    caption: str
    width: int
    height: int
    page_url: str
    query: str
    rank: int


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_VALID_ESCAPES = set('"\\/bfnrtu')
_BLOCK_MARKERS = ("antiFlag", "Forbid spider access", "wappass.baidu.com", "captcha", "安全验证")


def _repair_escapes(text: str) -> str:
    """Drop the backslash of escapes JSON does not know (Baidu writes \\' for ')."""
    return _ESCAPE.sub(lambda m: m.group(0) if m.group(1) in _VALID_ESCAPES else m.group(1), text)


#: Bounds of what a result page may be: a real acjson page is about 100 KB and 5 levels deep.
MAX_PAGE_CHARS = 8 * 1024 * 1024
MAX_JSON_DEPTH = 64
_JSON_STRUCTURE = re.compile(r'\\.|[\[\]{}"]', re.DOTALL)  # escapes, brackets and quotes


def _json_depth_exceeds(text: str, limit: int) -> bool:
    """True when brackets (outside strings) nest deeper than `limit`; one linear scan, so that
    json.loads never recurses into a hostile 200,000-deep body."""
    depth = 0
    in_string = False
    for match in _JSON_STRUCTURE.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or len(token) == 2:  # inside a string, or an escape
            continue
        elif token in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise SearchResponseError(f"JSON constant {name} is not a number")


def _load_json(body: str | bytes) -> Any:
    if len(body) > MAX_PAGE_CHARS:
        raise SearchResponseError(f"answer of {len(body)} bytes is larger than {MAX_PAGE_CHARS}")
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = text.strip().lstrip("\ufeff")  # a byte-order mark is not part of the JSON
    if not text.startswith(("{", "[")):
        if any(marker in text for marker in _BLOCK_MARKERS):
            raise SearchBlocked(f"captcha/anti-spider page instead of JSON: {text[:80]!r}")
        raise SearchResponseError(f"not JSON (starts with {text[:40]!r})")
    if _json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise SearchResponseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return _decode(text)
    except json.JSONDecodeError:
        pass
    try:
        return _decode(_repair_escapes(text))
    except (json.JSONDecodeError, ValueError, RecursionError) as err:
        # ValueError: an integer of more digits than Python converts; RecursionError: a
        # nesting the depth scan could not see.
        raise SearchResponseError(f"malformed JSON: {type(err).__name__}: {err}"[:300]) from err


def _decode(text: str) -> Any:
    """json.loads with NaN/Infinity refused and numbers out of float range (1e400) as errors."""
    try:
        return json.loads(text, strict=False, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as err:
        raise SearchResponseError(f"malformed JSON: {type(err).__name__}: {err}"[:300]) from err


def _finite_float(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise SearchResponseError(f"number {literal[:40]} is out of range")
    return value


def parse_acjson(body: str | bytes, query: str | None = None, start_rank: int = 0) -> list[SearchHit]:
    """The image hits of one acjson page, in page order.

    Raises `SearchBlocked` on an anti-spider answer and `SearchResponseError` on a body that is
    not a result page. Tolerates invalid escapes and empty objects in `data`; an entry without
    any usable image URL is skipped. `query` defaults to the page's own `queryExt`; ranks count
    from `start_rank`.
    """
    page = _load_json(body)
    if not isinstance(page, dict):
        raise SearchResponseError(f"top-level JSON is a {type(page).__name__}, not an object")
    if _flag_set(page.get("antiFlag")):
        raise SearchBlocked(str(page.get("message") or "antiFlag set"))
    data = page.get("data", [])
    if data is None:
        data = []
    if not isinstance(data, list):
        raise SearchResponseError(f"'data' is a {type(data).__name__}, not a list")
    if query is None:
        query = str(page.get("queryExt") or "")
    hits = []
    for entry in data:
        hit = _hit_from_entry(entry, query, start_rank + len(hits))
        if hit is not None:
            hits.append(hit)
    return hits


def _flag_set(value: Any) -> bool:
    """Baidu writes flags as 1 or "1"; "0", 0, "", false and null mean not set."""
    return str(value).strip().lower() not in ("", "0", "false", "none", "null")


def _hit_from_entry(entry: Any, query: str, rank: int) -> SearchHit | None:
    if not isinstance(entry, dict) or not entry:
        return None
    url = _image_url(entry)
    if not url:
        return None
    return SearchHit(url=_valid_text(url), caption=_valid_text(_caption(entry)), width=_int(entry.get("width")),
                     height=_int(entry.get("height")), page_url=_valid_text(_page_url(entry)), query=query,
                     rank=rank)


def _valid_text(text: str) -> str:
    """`text` with lone UTF-16 surrogates (a `\\ud83d` escape without its pair) replaced by '?':
    they cannot be encoded as UTF-8, so a shard holding one could not be written."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _first_replace(entry: Mapping[str, Any], field: str) -> str:
    replaced = entry.get("replaceUrl")
    if isinstance(replaced, list):
        for item in replaced:
            if isinstance(item, dict) and isinstance(item.get(field), str) and item[field]:
                return item[field]
    return ""


def _plain(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _decoded(entry: Mapping[str, Any], field: str) -> str:
    """The entry's obfuscated `field` decoded, or "" when that does not give an http(s) URL."""
    value = entry.get(field)
    decoded = decode_objurl(value) if isinstance(value, str) and value else ""
    return decoded if _plain(decoded) else ""


def _image_url(entry: Mapping[str, Any]) -> str:
    """objURL decoded; else replaceUrl[].ObjURL; else middleURL; else thumbURL."""
    for candidate in (_decoded(entry, "objURL"), _first_replace(entry, "ObjURL"), entry.get("middleURL"),
                      entry.get("thumbURL")):
        if isinstance(candidate, str) and _plain(candidate):
            return candidate
    return ""


def _page_url(entry: Mapping[str, Any]) -> str:
    """fromURL decoded; else replaceUrl[].FromURL; else ""."""
    for candidate in (_decoded(entry, "fromURL"), _first_replace(entry, "FromURL")):
        if _plain(candidate):
            return candidate
    return ""


def _caption(entry: Mapping[str, Any]) -> str:
    """fromPageTitleEnc, else fromPageTitle without its tags; entities decoded, spaces collapsed."""
    title = entry.get("fromPageTitleEnc")
    if not isinstance(title, str) or not title.strip():
        title = entry.get("fromPageTitle")
    if not isinstance(title, str):
        return ""
    return collapse_whitespace(strip_markup(title))


#: A claimed width or height above this is not a size (0: the engine does not say).
_MAX_CLAIMED_SIDE = 1_000_000


def _int(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return number if 0 <= number <= _MAX_CLAIMED_SIDE else 0


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def acjson_params(query: str, pn: int, rn: int) -> dict[str, str]:
    """The query string the result page's own scrolling sends (the browser's usual parameters)."""
    return {
        "tn": "resultjson_com", "ipn": "rj", "ct": "201326592", "is": "", "fp": "result",
        "queryWord": query, "cl": "2", "lm": "-1", "ie": "utf-8", "oe": "utf-8", "adpicid": "",
        "st": "-1", "z": "", "ic": "0", "hd": "", "latest": "", "copyright": "", "word": query,
        "s": "", "se": "", "tab": "", "width": "", "height": "", "face": "0", "istype": "2",
        "qc": "", "nc": "1", "fr": "", "expermode": "", "force": "", "pn": str(pn), "rn": str(rn),
        "gsm": format(pn, "x"),
    }


def acjson_url(base_url: str, query: str, pn: int, rn: int) -> str:
    return f"{base_url.rstrip('/')}{ACJSON_PATH}?{urlencode(acjson_params(query, pn, rn))}"


def search_headers(user_agent: str, base_url: str) -> dict[str, str]:
    """The headers the result page's requests carry."""
    return {
        "User-Agent": user_agent,
        "Accept": "text/plain, */*; q=0.01",
        "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8",
        "Referer": base_url.rstrip("/") + "/",
        "X-Requested-With": "XMLHttpRequest",
    }


QUERY_OK = "ok"
QUERY_NO_RESULTS = "no_results"
QUERY_BLOCKED = "blocked"
QUERY_ERROR = "search_error"
QUERY_STATUSES = (QUERY_OK, QUERY_NO_RESULTS, QUERY_BLOCKED, QUERY_ERROR)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """How one worker searches. Defaults follow the paper (at most 1000 results per query) and
    are polite to the real engine: one page request per second per worker."""

    base_url: str = dataclasses.field(default=BAIDU_BASE_URL, metadata=flag(
        "the engine (the local engine prints its own)", name="--search-base-url"))
    max_results: int = dataclasses.field(default=1000, metadata=flag("results kept per query (the paper: 1000)"))
    page_size: int = dataclasses.field(default=30, metadata=flag("rn: results per page"))
    requests_per_second: float = dataclasses.field(default=1.0, metadata=flag(
        "search page requests per second per worker; 0 = unlimited (local engines only)", name="--search-rate"))
    retries: int = dataclasses.field(default=3, metadata=flag(
        "retries of a blocked or failed page before the query is recorded", name="--search-retries"))
    backoff_s: float = dataclasses.field(default=30.0, metadata=flag(
        "first wait in s after a blocked answer, doubled each retry, with jitter", name="--search-backoff"))
    backoff_max_s: float = 600.0
    timeout_s: float = dataclasses.field(default=20.0, metadata=flag(
        "seconds one search page request may take", name="--search-timeout"))
    query_timeout_s: float = dataclasses.field(default=300.0, metadata=flag(
        "seconds one query may take in all (pages, retries, backoff); then it is a search_error",
        name="--search-query-timeout"))
    max_body_bytes: int = 8 * 1024 * 1024
    user_agent: str = f"{BROWSER_USER_AGENT} {PROJECT_TOKEN}"
    warm_up: bool = True  # GET the home page first so the session carries Baidu's cookies

    def __post_init__(self):
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.max_results <= 0:
            raise ValueError("max_results must be positive")
        if not 1 <= self.page_size <= 100:
            raise ValueError("page_size must be in 1..100 (Baidu serves 30 or 60)")
        for name in ("requests_per_second", "backoff_s", "backoff_max_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.timeout_s <= 0 or self.query_timeout_s <= 0 or self.max_body_bytes <= 0:
            raise ValueError("timeout_s, query_timeout_s and max_body_bytes must be positive")


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """What searching one query gave: its hits (ranked 0..n-1, URLs unique within the query),
    a status from QUERY_STATUSES, the number of pages fetched and an error message."""

    query: str
    status: str
    hits: tuple[SearchHit, ...]
    pages: int
    error_message: str | None = None


class _Transient(Exception):
    """A page request that may succeed when repeated (timeout, reset, 5xx, 429)."""


_MAX_WARM_UP_REDIRECTS = 5


def engine_allow_list(base_url: str) -> AllowList:
    """The search engine the user named (host and port of `base_url`) is the one non-public
    destination a search session may reach: the local engine of the tests and the demo."""
    _, host, port = split_url(base_url)
    return AllowList(frozenset({(host.strip("[]"), port)}))


class SearchClient:
    """Searches queries on a Baidu-format engine through one aiohttp session (built by the
    caller inside its event loop). One instance per worker: its rate limiter is per worker."""

    def __init__(self, session: aiohttp.ClientSession, config: SearchConfig, seed: int = 0):
        self.session = session
        self.config = config
        self.limiter = RateLimiter(config.requests_per_second)
        self._rng = random.Random(seed)
        self._warmed = False
        self.allow = engine_allow_list(config.base_url)

    async def warm_up(self) -> None:
        """GET the home page once so that the session has the engine's cookies. Failure is not
        fatal (the first page request will tell). Redirects are followed by hand, and every hop
        passes the destination guard (crawler.safety): only the engine itself (host and port of
        `base_url`) and public addresses may be reached."""
        self._warmed = True
        if not self.config.warm_up:
            return
        current = self.config.base_url.rstrip("/") + "/"
        try:
            for _ in range(_MAX_WARM_UP_REDIRECTS + 1):
                check_destination(current, self.allow)
                await self.limiter.acquire()
                async with self.session.get(current, allow_redirects=False,
                                            headers=search_headers(self.config.user_agent, self.config.base_url),
                                            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s)) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                        current = urljoin(current, resp.headers["Location"])
                        continue
                    await read_capped(resp.content, self.config.max_body_bytes)
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError, BadUrl, UnsafeDestination):
            pass

    async def search(self, query: str) -> QueryResult:
        """Page through `query` by `pn` until max_results, or until a page brings no new URL.

        The whole query, warm-up, pages, retries and backoff included, is bounded by
        `query_timeout_s`: a stalled engine costs that much per query at most, and the query is
        then a search_error (with the hits of the pages it got)."""
        hits: list[SearchHit] = []
        progress = {"pages": 0, "pn": 0}
        try:
            return await asyncio.wait_for(self._search(query, hits, progress), self.config.query_timeout_s)
        except asyncio.TimeoutError:
            return QueryResult(query, QUERY_ERROR, tuple(hits), progress["pages"],
                               f"pn={progress['pn']}: query took more than {self.config.query_timeout_s} s")

    async def _search(self, query: str, hits: list[SearchHit], progress: dict[str, int]) -> QueryResult:
        if not self._warmed:
            await self.warm_up()
        cfg = self.config
        seen: set[str] = set()
        pages = 0
        for pn in range(0, cfg.max_results, cfg.page_size):
            progress["pn"] = pn
            try:
                page = await self._page_with_retries(query, pn)
            except SearchBlocked as err:
                return QueryResult(query, QUERY_BLOCKED, tuple(hits), pages, f"blocked at pn={pn}: {err}")
            except (SearchResponseError, _Transient) as err:
                return QueryResult(query, QUERY_ERROR, tuple(hits), pages, f"pn={pn}: {err}"[:500])
            pages += 1
            progress["pages"] = pages
            new = [h for h in page if h.url not in seen]
            if not new:
                break
            for hit in new:
                if len(hits) == cfg.max_results:
                    break
                seen.add(hit.url)
                hits.append(dataclasses.replace(hit, rank=len(hits), query=query))
            if len(hits) >= cfg.max_results:
                break
        return QueryResult(query, QUERY_OK if hits else QUERY_NO_RESULTS, tuple(hits), pages)

    async def _page_with_retries(self, query: str, pn: int) -> list[SearchHit]:
        cfg = self.config
        for attempt in range(cfg.retries + 1):
            try:
                return await self._page(query, pn)
            except (SearchBlocked, _Transient):
                if attempt == cfg.retries:
                    raise
                await asyncio.sleep(backoff_delay(attempt, cfg.backoff_s, cfg.backoff_max_s, self._rng))
                self._warmed = False  # new cookies before the next try
                await self.warm_up()
        raise AssertionError("unreachable")

    async def _page(self, query: str, pn: int) -> list[SearchHit]:
        cfg = self.config
        await self.limiter.acquire()
        url = acjson_url(cfg.base_url, query, pn, cfg.page_size)
        check_destination(url, self.allow)
        try:
            async with self.session.get(url, headers=search_headers(cfg.user_agent, cfg.base_url),
                                        allow_redirects=False,
                                        timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)) as resp:
                if 300 <= resp.status < 400:
                    location = resp.headers.get("Location", "")
                    if any(marker in location for marker in _BLOCK_MARKERS):
                        raise SearchBlocked(f"redirected to {location}")
                    raise SearchResponseError(f"unexpected redirect {resp.status} to {location!r}")
                if resp.status == 429 or resp.status >= 500:
                    raise _Transient(f"HTTP {resp.status}")
                if resp.status >= 400:
                    raise SearchResponseError(f"HTTP {resp.status}")
                body = await read_capped(resp.content, cfg.max_body_bytes)
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:
            raise _Transient(f"{type(err).__name__}: {err}") from err
        if len(body) > cfg.max_body_bytes:
            raise SearchResponseError(f"answer larger than {cfg.max_body_bytes} bytes")
        return parse_acjson(body, query=query, start_rank=pn)


def new_search_session(base_url: str = BAIDU_BASE_URL) -> aiohttp.ClientSession:
    """A session for a SearchClient of the engine at `base_url`; call inside the event loop that
    will use it. Its resolver refuses host names that resolve to non-public addresses (except
    the engine's own host and port), and its cookie jar also keeps cookies of IP-address hosts
    (aiohttp drops them by default), so the warm-up works against a local engine on 127.0.0.1
    exactly as against Baidu."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(engine_allow_list(base_url)))
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))


def search_many_sync(queries: Sequence[str], config: SearchConfig) -> list[QueryResult]:
    """Search queries one after another in a private event loop (for scripts and tests)."""

    async def run() -> list[QueryResult]:
        async with new_search_session(config.base_url) as session:
            client = SearchClient(session, config)
            return [await client.search(q) for q in queries]

    return asyncio.run(run())
