"""A local image search engine that speaks Baidu's acjson format, for tests and the offline demo.

It serves a `Catalog` (query -> ranked entries, each with a caption, image bytes and a behaviour)
on 127.0.0.1 and knows nothing about what the images show: whoever builds the catalog decides
(`pipelines.local_catalog` builds one from the synthetic generator). The crawler talks to it with
the same code as to Baidu; only the base URL differs.

Routes:
- `/`                 home page; sets a BAIDUID cookie (the crawler's warm-up);
- `/search/acjson`    Baidu's answer: same fields, obfuscated objURL/fromURL, paging by pn/rn, a
                      trailing `{}`, an invalid `\\'` escape, and per-query special answers
                      (blocked, blocked for the first N requests, captcha redirect, HTML, malformed);
- `/img/<path>`       the entry's image, with its behaviour (see BEHAVIOURS);
- `/robots.txt`       disallows `/img/private/`;
- `/page/<n>.html`    the page a hit was "found on".
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from aiohttp import web

from crawler.baidu import ACJSON_PATH, encode_objurl

#: What an image URL does when fetched.
BEHAVIOURS = (
    "ok",               # 200 with the bytes
    "slow",             # 200 after `slow_s`
    "stall",            # sleeps `stall_s` (longer than any test timeout) before answering
    "404", "500",
    "flaky",            # 503 on the first request, then 200 (a retry succeeds)
    "noai",             # 200 with X-Robots-Tag: noai
    "redirect",         # 302 to another image path of the engine (`redirect_to`)
    "redirect_unsafe",  # 302 to an absolute URL (`redirect_to`), e.g. 169.254.169.254
    "html",             # 200 text/html
    "too_large",        # streams `large_bytes` without Content-Length
    "robots",           # served under /img/private/, which robots.txt disallows
)
#: Special answers of /search/acjson for a query.
SEARCH_MODES = ("normal", "blocked", "blocked_first", "captcha_redirect", "html", "malformed",
                "stall",  # sleeps `stall_s` before answering (a stalled engine)
                "raw")    # answers the query's body from `raw_bodies` as is (hostile answers)


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """One search result. Entries that share `path` share an image URL (duplicates across
    queries). `width`/`height` are what the search answer claims."""

    path: str
    caption: str
    image: bytes
    content_type: str = "image/jpeg"
    behaviour: str = "ok"
    width: int = 0
    height: int = 0
    redirect_to: str = ""

    def __post_init__(self):
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.behaviour!r}; one of {BEHAVIOURS}")
        if self.behaviour in ("redirect", "redirect_unsafe") and not self.redirect_to:
            raise ValueError(f"behaviour {self.behaviour!r} needs redirect_to")
        if not self.path or self.path.startswith("/"):
            raise ValueError(f"path must be relative and non-empty, got {self.path!r}")


@dataclasses.dataclass(frozen=True)
class Catalog:
    """query -> entries in rank order; `search_modes` gives queries a special answer;
    `hidden` entries are served but not found by search (redirect targets);
    `blocked_first` is how many requests a "blocked_first" query answers blocked."""

    results: Mapping[str, Sequence[CatalogEntry]]
    search_modes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    hidden: Sequence[CatalogEntry] = ()  # served (redirect targets) but never a search result
    blocked_first: int = 1
    raw_bodies: Mapping[str, str] = dataclasses.field(default_factory=dict)
    slow_s: float = 0.2
    stall_s: float = 30.0
    large_bytes: int = 4 * 1024 * 1024

    def __post_init__(self):
        for query, mode in self.search_modes.items():
            if mode not in SEARCH_MODES:
                raise ValueError(f"query {query!r}: unknown search mode {mode!r}; one of {SEARCH_MODES}")

    def entries_by_path(self) -> dict[str, CatalogEntry]:
        by_path: dict[str, CatalogEntry] = {}
        for entries in [*self.results.values(), self.hidden]:
            for entry in entries:
                by_path.setdefault(entry.path, entry)
        return by_path


def image_url_path(entry: CatalogEntry) -> str:
    prefix = "/img/private/" if entry.behaviour == "robots" else "/img/"
    return prefix + entry.path


class _Engine:
    """The aiohttp application and its request counters."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.by_path = catalog.entries_by_path()
        self.search_requests: Counter[str] = Counter()
        self.image_requests: Counter[str] = Counter()
        self.search_headers: list[dict[str, str]] = []  # headers (and cookies) of each search request

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.home)
        app.router.add_get(ACJSON_PATH, self.acjson)
        app.router.add_get("/robots.txt", self.robots)
        app.router.add_get("/page/{name}", self.page)
        app.router.add_get("/img/private/{path:.+}", self.image)
        app.router.add_get("/img/{path:.+}", self.image)
        return app

    async def home(self, request: web.Request) -> web.Response:
        response = web.Response(text="<html><body>local image search</body></html>", content_type="text/html")
        response.set_cookie("BAIDUID", "local-engine:FG=1")
        return response

    async def robots(self, request: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nDisallow: /img/private/\n", content_type="text/plain")

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body>page</body></html>", content_type="text/html")

    async def acjson(self, request: web.Request) -> web.StreamResponse:
        query = request.query.get("word", "")
        try:
            pn = int(request.query.get("pn", "0"))
            rn = int(request.query.get("rn", "30"))
        except ValueError:
            return web.Response(status=400, text="bad pn/rn")
        self.search_requests[query] += 1
        self.search_headers.append({**request.headers, "Cookie": request.headers.get("Cookie", "")})
        mode = self.catalog.search_modes.get(query, "normal")
        if mode == "blocked" or (mode == "blocked_first"
                                 and self.search_requests[query] <= self.catalog.blocked_first):
            return web.Response(text='{"antiFlag":1,"message":"Forbid spider access","bfe_log_id":"1"}',
                                content_type="application/json")
        if mode == "captcha_redirect":
            raise web.HTTPFound("https://wappass.baidu.com/static/captcha/tuxing.html?ak=local")
        if mode == "html":
            return web.Response(text="<!DOCTYPE html><html><body>百度图片</body></html>", content_type="text/html")
        if mode == "stall":
            await asyncio.sleep(self.catalog.stall_s)
        if mode == "raw":
            return web.Response(text=self.catalog.raw_bodies[query], content_type="application/json")
        if mode == "malformed":
            return web.Response(text='{"queryEnc":"x","data":[{"objURL": "ippr', content_type="application/json")
        base = f"{request.scheme}://{request.host}"
        entries = list(self.catalog.results.get(query, ()))
        return web.Response(text=self.render_page(base, query, entries, pn, rn),
                            content_type="text/html")  # Baidu labels its JSON text/html too

    def render_page(self, base: str, query: str, entries: Sequence[CatalogEntry], pn: int, rn: int) -> str:
        data = [self._render_entry(base, query, entry, pn + i) for i, entry in enumerate(entries[pn:pn + rn])]
        page = {
            "queryEnc": quote(query), "queryExt": query, "listNum": len(entries),
            "displayNum": len(entries), "gsm": format(pn + rn, "x"), "bdFmtDispNum": f"约{len(entries)}",
            "bdSearchTime": "", "isNeedAsyncRequest": 0, "bdIsClustered": "1",
            "data": data + [{}],  # Baidu ends `data` with an empty object
        }
        text = json.dumps(page, ensure_ascii=False, indent=1)
        # Baidu's bodies carry escapes JSON does not allow; so does ours.
        return text.replace('"bdSearchTime": ""', '"bdSearchTime": "\\\'"', 1)

    def _render_entry(self, base: str, query: str, entry: CatalogEntry, index: int) -> dict:
        image_url = base + image_url_path(entry)
        page_url = f"{base}/page/{index}.html"
        title = entry.caption.replace(query, f"<strong>{query}</strong>", 1) if query else entry.caption
        return {
            "adType": "0", "thumbURL": image_url, "middleURL": image_url, "hoverURL": "",
            "pageNum": index, "objURL": encode_objurl(image_url), "fromURL": encode_objurl(page_url),
            "fromURLHost": base.split("://", 1)[1], "width": entry.width, "height": entry.height,
            "type": entry.content_type.rpartition("/")[2], "is_gif": 0,
            "replaceUrl": [{"ObjURL": image_url, "ObjUrl": image_url, "FromURL": page_url, "FromUrl": page_url}],
            "fromPageTitle": title, "fromPageTitleEnc": entry.caption,
            "cs": f"{index},{index}", "os": f"{index},{index}", "simid": f"{index},{index}", "di": str(index),
        }

    async def image(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        entry = self.by_path.get(path)
        if entry is None or (entry.behaviour == "robots") != request.path.startswith("/img/private/"):
            return web.Response(status=404, text="no such image")
        self.image_requests[path] += 1
        behaviour = entry.behaviour
        if behaviour == "404":
            return web.Response(status=404, text="not found")
        if behaviour == "500":
            return web.Response(status=500, text="server error")
        if behaviour == "flaky" and self.image_requests[path] == 1:
            return web.Response(status=503, text="try again")
        if behaviour == "redirect":
            raise web.HTTPFound(f"/img/{entry.redirect_to}")
        if behaviour == "redirect_unsafe":
            raise web.HTTPFound(entry.redirect_to)
        if behaviour == "html":
            return web.Response(text="<html><body>not an image</body></html>", content_type="text/html")
        if behaviour == "slow":
            await asyncio.sleep(self.catalog.slow_s)
        if behaviour == "stall":
            await asyncio.sleep(self.catalog.stall_s)
        if behaviour == "too_large":
            return await self._stream_large(request, entry)
        headers = {"X-Robots-Tag": "noai"} if behaviour == "noai" else {}
        return web.Response(body=entry.image, content_type=entry.content_type, headers=headers)

    async def _stream_large(self, request: web.Request, entry: CatalogEntry) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": entry.content_type})
        response.enable_chunked_encoding()  # no Content-Length: the cap must hold while reading
        await response.prepare(request)
        chunk = (entry.image or b"\0") * (65536 // max(1, len(entry.image or b"\0")) + 1)
        sent = 0
        try:
            while sent < self.catalog.large_bytes:
                await response.write(chunk[:65536])
                sent += 65536
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading at its byte cap, as it should
        return response


class LocalEngine:
    """Serve a catalog on 127.0.0.1 from a background thread (tests) or the current thread (CLI).

        engine = LocalEngine(catalog).start()     # engine.base_url == "http://127.0.0.1:PORT"
        ...
        engine.stop()
    """

    def __init__(self, catalog: Catalog, port: int = 0, host: str = "127.0.0.1"):
        self._engine = _Engine(catalog)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def allow_host(self) -> str:
        """The --allow-host entry that lets the crawler reach this engine."""
        return f"{self.host}:{self.port}"

    @property
    def search_requests(self) -> Counter[str]:
        return self._engine.search_requests

    @property
    def image_requests(self) -> Counter[str]:
        return self._engine.image_requests

    @property
    def search_headers(self) -> list[dict[str, str]]:
        return self._engine.search_headers

    async def _start(self) -> None:
        # Stopping must not wait for stalled answers (they sleep on purpose).
        self._runner = web.AppRunner(self._engine.app(), access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        """Stop serving and cancel the answers still sleeping (stalled images)."""
        await self._runner.cleanup()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def start(self) -> "LocalEngine":
        """Start serving in a daemon thread; returns when the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._start())
            except BaseException as err:  # reported to the starting thread below
                failure.append(err)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="local-engine", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        future.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._runner = None

    def serve_forever(self, on_ready=None) -> None:
        """Serve in the current thread until interrupted; `on_ready(engine)` runs once bound."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._start())
        if on_ready is not None:
            on_ready(self)
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            pass
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    def __enter__(self) -> "LocalEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
