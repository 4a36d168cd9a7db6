"""Image download: asyncio + aiohttp, bounded concurrency, per-host politeness, and a status for
every URL.

Policies, in the order a URL meets them:
1. only http(s) (`bad_url`), only public destinations unless allow-listed (`unsafe_destination`,
   checked again at every redirect and at every DNS resolution);
2. robots.txt of the image host, cached per host (`robots_disallowed`; switchable off);
3. the request, with connect/read timeouts; retries with exponential backoff and jitter on
   timeouts, resets, 5xx and 429, none on other 4xx (`timeout`, `connection_error`, `http_error`);
4. `X-Robots-Tag: noai` / `noimageai` (`noai`), the content type (`not_an_image`), the byte cap
   (`too_large`);
5. the image header, read lazily by Pillow with its decompression-bomb guard on (`not_an_image`,
   `decompression_bomb`): width, height and format without decoding the pixels; sha256 of the bytes;
6. optionally img2dataset's `Resizer` (off by default).

Nothing raises for a bad URL or a bad answer: `download` returns a `DownloadResult` whose `status`
is a `DownloadStatus` and whose `error_message` says why.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import io
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from urllib.parse import urljoin

import aiohttp

from crawler.errors import UnsafeDestination
from crawler.http import PROJECT_TOKEN, backoff_delay, read_capped
from crawler.ratelimit import RateLimiter
from crawler.robots import RobotsCache, robots_url
from crawler.safety import AllowList, BadUrl, GuardedResolver, check_destination
from filters.contract.flags import flag
from filters.contract.images import DecompressionBomb, NotAnImage, read_header
from filters.contract.vocabulary import DownloadStatus

_REDIRECTS = (301, 302, 303, 307, 308)
_NOAI_TOKENS = {"noai", "noimageai"}
# Servers label images badly; these types may still hold an image, so the header decides.
_MAYBE_IMAGE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream", "application/x-octet-stream")
RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")


@dataclasses.dataclass(frozen=True)
class ResizeConfig:
    """img2dataset's Resizer options (see its docs). Off unless a ResizeConfig is given."""

    image_size: int = dataclasses.field(default=256, metadata=flag("side of the resized image in px"))
    resize_mode: str = "border"  # the crawl's --resize-mode adds "off" (no ResizeConfig)
    resize_only_if_bigger: bool = dataclasses.field(default=False, metadata=flag(
        "resize only images larger than --image-size"))
    encode_format: str = dataclasses.field(default="jpg", metadata=flag(
        "format of resized images", choices=("jpg", "png", "webp")))
    encode_quality: int = dataclasses.field(default=95, metadata=flag(
        "JPEG/WebP quality, or PNG compression level (0..9)"))
    skip_reencode: bool = dataclasses.field(default=False, metadata=flag(
        "keep the original bytes when no resize is needed"))

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.encode_format not in ("jpg", "png", "webp"):
            raise ValueError(f"encode_format must be jpg, png or webp, got {self.encode_format!r}")
        if self.image_size <= 0:
            raise ValueError("image_size must be positive")
        top = 9 if self.encode_format == "png" else 100  # png: a compression level, else a quality
        if not 0 <= self.encode_quality <= top:
            raise ValueError(f"encode_quality for {self.encode_format} must be in 0..{top}, got {self.encode_quality}")


@dataclasses.dataclass(frozen=True)
class DownloadConfig:
    """How a worker downloads. The defaults are polite to real hosts; the benchmark and the
    tests raise the per-host limits for their single local host."""

    concurrency: int = dataclasses.field(default=64, metadata=flag("downloads in flight per worker"))
    per_host_concurrency: int = dataclasses.field(default=4, metadata=flag("connections per host (politeness)"))
    host_delay_s: float = dataclasses.field(default=0.0, metadata=flag(
        "minimum seconds between two request starts to one host", name="--host-delay"))
    connect_timeout_s: float = dataclasses.field(default=10.0, metadata=flag(
        "seconds to connect", name="--connect-timeout"))
    read_timeout_s: float = dataclasses.field(default=20.0, metadata=flag(
        "seconds between two reads of the body", name="--read-timeout"))
    # A whole attempt, so that a slow drip cannot hold a slot forever.
    total_timeout_s: float = dataclasses.field(default=60.0, metadata=flag(
        "seconds one attempt may take in all", name="--total-timeout"))
    retries: int = dataclasses.field(default=2, metadata=flag("retries on timeouts, resets, 5xx and 429"))
    backoff_s: float = dataclasses.field(default=1.0, metadata=flag(
        "first retry wait in s, doubled each retry, with jitter", name="--backoff"))
    backoff_max_s: float = 30.0
    max_bytes: int = dataclasses.field(default=20 * 1024 * 1024, metadata=flag("byte cap per image"))
    max_redirects: int = 5
    user_agent_token: str = dataclasses.field(default=PROJECT_TOKEN, metadata=flag(
        "identifies the crawler to site owners (robots.txt and User-Agent), so that they can opt out"))
    respect_robots: bool = dataclasses.field(default=True, metadata=flag(
        "do not honour robots.txt of image hosts", negative="--no-robots"))
    honour_noai: bool = True
    allow_hosts: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(
        "let downloads reach this non-public host, e.g. 127.0.0.1:8000", name="--allow-host",
        metavar="HOST[:PORT]"))
    resize: ResizeConfig | None = None

    def __post_init__(self):
        for name in ("concurrency", "per_host_concurrency", "max_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("host_delay_s", "backoff_s", "backoff_max_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.retries < 0 or self.max_redirects < 0:
            raise ValueError("retries and max_redirects must be >= 0")
        if not self.user_agent_token.strip():
            raise ValueError("user_agent_token must not be empty")
        AllowList.parse(self.allow_hosts)  # fail early on a malformed entry

    @property
    def user_agent(self) -> str:
        return f"Mozilla/5.0 (compatible; {self.user_agent_token})"


@dataclasses.dataclass(frozen=True)
class DownloadResult:
    url: str
    status: str
    error_message: str | None = None
    image: bytes | None = None
    width: int | None = None
    height: int | None = None
    image_format: str | None = None
    sha256: str | None = None


class _Failed(Exception):
    """Ends an attempt with a status; `retry` says whether another attempt may help."""

    def __init__(self, status: str, message: str, retry: bool = False):
        super().__init__(message)
        self.status = status
        self.retry = retry


def noai_requested(values: Sequence[str]) -> bool:
    """True when an X-Robots-Tag value holds noai or noimageai (for any or no user agent)."""
    for value in values:
        for part in value.replace(";", ",").split(","):
            token = part.rsplit(":", 1)[-1].strip().lower()
            if token in _NOAI_TOKENS:
                return True
    return False


def _content_type_ok(content_type: str) -> bool:
    content_type = content_type.split(";")[0].strip().lower()
    return not content_type or content_type.startswith(_MAYBE_IMAGE_TYPES)


class Downloader:
    """Downloads URLs in one event loop with one aiohttp session.

        async with Downloader(config) as downloader:
            results = await downloader.download_many(urls)

    Build it inside the loop that will run it (a Beam DoFn does so in `setup`).
    """

    def __init__(self, config: DownloadConfig, seed: int = 0):
        self.config = config
        self.allow = AllowList.parse(config.allow_hosts)
        self._rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._host_limiters: dict[str, RateLimiter] = {}
        self._robots = RobotsCache(self._fetch_robots, config.user_agent_token.split("/")[0])
        self._resizer = None

    async def __aenter__(self) -> "Downloader":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> None:
        cfg = self.config
        connector = aiohttp.TCPConnector(limit=cfg.concurrency, limit_per_host=cfg.per_host_concurrency,
                                         resolver=GuardedResolver(self.allow), ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=cfg.total_timeout_s, sock_connect=cfg.connect_timeout_s,
                                        sock_read=cfg.read_timeout_s)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                              headers={"User-Agent": cfg.user_agent})
        self._slots = asyncio.Semaphore(cfg.concurrency)
        if cfg.resize is not None:
            from img2dataset.resizer import Resizer  # heavy (cv2); only when resizing is asked for

            r = cfg.resize
            self._resizer = Resizer(image_size=r.image_size, resize_mode=r.resize_mode,
                                    resize_only_if_bigger=r.resize_only_if_bigger,
                                    encode_format=r.encode_format, encode_quality=r.encode_quality,
                                    skip_reencode=r.skip_reencode)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def download_many(self, urls: Sequence[str]) -> list[DownloadResult]:
        """Results in the order of `urls`, at most `concurrency` in flight."""
        return list(await asyncio.gather(*(self.download(url) for url in urls)))

    async def iter_ordered(self, urls: Iterable[str], window: int) -> AsyncIterator[DownloadResult]:
        """Results in the order of `urls`, with up to `window` downloads started ahead (at most
        `concurrency` in flight): a slow URL delays its own result, not the others' downloads,
        and memory holds at most `window` images."""
        if window <= 0:
            raise ValueError("window must be positive")
        ahead: collections.deque[asyncio.Task] = collections.deque()
        try:
            for url in urls:
                ahead.append(asyncio.ensure_future(self.download(url)))
                if len(ahead) >= window:
                    yield await ahead.popleft()
            while ahead:
                yield await ahead.popleft()
        finally:
            for task in ahead:  # only when the consumer stopped early
                task.cancel()

    async def download(self, url: str) -> DownloadResult:
        """Download one URL under every policy; never raises for data errors."""
        if self._session is None or self._slots is None:
            raise RuntimeError("Downloader used before start()")
        async with self._slots:
            try:
                check_destination(url, self.allow)
                if self.config.respect_robots and not await self._robots.allowed(url):
                    return DownloadResult(url, DownloadStatus.ROBOTS_DISALLOWED, f"disallowed by {robots_url(url)}")
                body = await self._fetch_with_retries(url)
            except BadUrl as err:
                return DownloadResult(url, DownloadStatus.BAD_URL, str(err))
            except UnsafeDestination as err:
                return DownloadResult(url, DownloadStatus.UNSAFE_DESTINATION, str(err))
            except _Failed as err:
                return DownloadResult(url, err.status, str(err))
            except Exception as err:  # noqa: BLE001 - the per-URL boundary
                # Anything unforeseen about one URL becomes that row's status, so one bad URL
                # never fails its chunk (and every rerun of it).
                return DownloadResult(url, DownloadStatus.ERROR, f"{type(err).__name__}: {err}")
        return self._finish(url, body)

    def _finish(self, url: str, body: bytes) -> DownloadResult:
        try:
            header = read_header(body)
        except DecompressionBomb as err:
            return DownloadResult(url, DownloadStatus.DECOMPRESSION_BOMB, str(err))
        except NotAnImage as err:
            return DownloadResult(url, DownloadStatus.NOT_AN_IMAGE, str(err))
        width, height, fmt = header.width, header.height, header.format
        if self._resizer is not None:
            # Called in the loop's thread on purpose: img2dataset's Resizer silences the process's
            # stdout/stderr file descriptors while it runs, which is unsafe from a worker thread.
            resized, new_w, new_h, _, _, err = self._resizer(io.BytesIO(body))
            if err is not None:
                return DownloadResult(url, DownloadStatus.ERROR, f"resize: {err}")
            body, width, height = resized, new_w or width, new_h or height
            if self.config.resize.encode_format and not self.config.resize.skip_reencode:
                fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[self.config.resize.encode_format]
        return DownloadResult(url, DownloadStatus.SUCCESS, None, body, width, height, fmt,
                              hashlib.sha256(body).hexdigest())

    async def _fetch_with_retries(self, url: str) -> bytes:
        cfg = self.config
        for attempt in range(cfg.retries + 1):
            try:
                return await self._fetch(url)
            except _Failed as err:
                if not err.retry or attempt == cfg.retries:
                    raise
            await asyncio.sleep(backoff_delay(attempt, cfg.backoff_s, cfg.backoff_max_s, self._rng))
        raise AssertionError("unreachable")

    async def _polite(self, url: str) -> None:
        if self.config.host_delay_s <= 0:
            return
        host = robots_url(url)  # scheme://host:port/robots.txt identifies the host
        limiter = self._host_limiters.setdefault(host, RateLimiter(1.0 / self.config.host_delay_s))
        await limiter.acquire()

    async def _fetch(self, url: str) -> bytes:
        """One attempt: follow redirects by hand (each hop is checked), apply the answer's policies
        and read at most max_bytes. Raises _Failed."""
        cfg = self.config
        current = url
        for _ in range(cfg.max_redirects + 1):
            check_destination(current, self.allow)
            await self._polite(current)
            try:
                async with self._session.get(current, allow_redirects=False) as resp:
                    if resp.status in _REDIRECTS:
                        location = resp.headers.get("Location")
                        if not location:
                            raise _Failed(DownloadStatus.HTTP_ERROR, f"HTTP {resp.status} without Location")
                        current = urljoin(current, location)
                        continue
                    return await self._read_answer(resp)
            except _Failed:
                raise
            except aiohttp.ClientConnectorError as err:
                if isinstance(err.os_error, UnsafeDestination):
                    raise err.os_error from None
                raise _Failed(DownloadStatus.CONNECTION_ERROR, f"{type(err).__name__}: {err}", retry=True) from err
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as err:
                raise _Failed(DownloadStatus.TIMEOUT, f"timed out ({type(err).__name__})", retry=True) from err
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as err:
                raise _Failed(DownloadStatus.CONNECTION_ERROR, f"{type(err).__name__}: {err}", retry=True) from err
            except aiohttp.InvalidURL as err:
                raise _Failed(DownloadStatus.BAD_URL, f"invalid URL: {err}") from err
            except aiohttp.ClientError as err:
                raise _Failed(DownloadStatus.ERROR, f"{type(err).__name__}: {err}") from err
        raise _Failed(DownloadStatus.HTTP_ERROR, f"more than {cfg.max_redirects} redirects")

    async def _read_answer(self, resp: aiohttp.ClientResponse) -> bytes:
        cfg = self.config
        if resp.status == 429 or resp.status >= 500:
            raise _Failed(DownloadStatus.HTTP_ERROR, f"HTTP {resp.status}", retry=True)
        if resp.status >= 400 or resp.status < 200:
            raise _Failed(DownloadStatus.HTTP_ERROR, f"HTTP {resp.status}")
        if cfg.honour_noai and noai_requested(resp.headers.getall("X-Robots-Tag", [])):
            raise _Failed(DownloadStatus.NOAI, "X-Robots-Tag: " + ", ".join(resp.headers.getall("X-Robots-Tag")))
        content_type = resp.headers.get("Content-Type", "")
        if not _content_type_ok(content_type):
            raise _Failed(DownloadStatus.NOT_AN_IMAGE, f"content type {content_type!r}")
        if resp.content_length is not None and resp.content_length > cfg.max_bytes:
            raise _Failed(DownloadStatus.TOO_LARGE, f"Content-Length {resp.content_length} > {cfg.max_bytes} bytes")
        body = await read_capped(resp.content, cfg.max_bytes)
        if len(body) > cfg.max_bytes:
            raise _Failed(DownloadStatus.TOO_LARGE, f"body larger than {cfg.max_bytes} bytes")
        return body

    async def _fetch_robots(self, url: str) -> tuple[int, bytes]:
        """GET a robots.txt under the same destination rules, following redirects by hand;
        (0, b"") when it cannot be reached. Raises UnsafeDestination when the image host itself
        may not be reached, so that the URL is recorded as such and not as robots-disallowed."""
        current = url
        for hop in range(self.config.max_redirects + 1):
            try:
                check_destination(current, self.allow)
                async with self._session.get(current, allow_redirects=False) as resp:
                    if resp.status in _REDIRECTS and resp.headers.get("Location"):
                        current = urljoin(current, resp.headers["Location"])
                        continue
                    return resp.status, await read_capped(resp.content, 512 * 1024)
            except (UnsafeDestination, aiohttp.ClientConnectorError) as err:
                unsafe = err if isinstance(err, UnsafeDestination) else err.os_error
                if hop == 0 and isinstance(unsafe, UnsafeDestination):
                    raise unsafe from None
                return 0, b""
            except (BadUrl, aiohttp.ClientError, asyncio.TimeoutError):
                return 0, b""
        return 0, b""


def download_sync(urls: Sequence[str], config: DownloadConfig) -> list[DownloadResult]:
    """Download URLs in a private event loop (scripts and tests)."""

    async def run() -> list[DownloadResult]:
        async with Downloader(config) as downloader:
            return await downloader.download_many(urls)

    return asyncio.run(run())
