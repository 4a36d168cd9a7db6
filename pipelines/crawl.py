"""The crawl stage on Apache Beam: queries -> image search -> hits -> de-duplicated by URL ->
downloads -> raw Parquet shards (`pipelines.schema.RAW_SCHEMA`).

    python -m pipelines.crawl --queries queries.txt --output runs/crawl/raw
    python -m pipelines.crawl --url-list 'wukong_release/*.csv' --output runs/crawl/raw

Steps (each a labelled Beam step):
1. the launcher cuts the input into chunks (`pipelines.crawl_inputs`) and skips those whose shard
   already exists (a rerun after a kill resumes; temporaries left by the killed run are removed);
   the pending chunks run in waves, one Beam pipeline per wave (see `run`);
2. `Search`: one element per chunk; a batched async DoFn searches the chunk's queries through an
   aiohttp session built in `setup` (URL-list chunks just read their rows);
3. `Deduplicate`: hits keyed by their normalised URL (`url_identity`); the first by (chunk, query order, rank)
   wins, and keys already in finished shards are claimed by them. Only URLs and captions are
   shuffled here;
4. `DownloadAndWrite`: the chunk's winning hits are downloaded (a batched async DoFn) and written
   atomically as `<chunk>.parquet`, with `stats/<chunk>.json` beside it; image bytes never go
   through a shuffle. Failed downloads stay as rows without bytes, with status and error_message.

Blocked queries are recorded as `blocked` in the chunk's stats, never as "no results". Beam
counters (namespace "crawl") count queries, pages, hits, duplicates and each download status; a
progress line is printed while chunks run, and a summary from the written stats at the end (also
saved as `crawl_summary.json`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import aiohttp
import apache_beam as beam
from apache_beam.metrics import Metrics

from crawler.baidu import QUERY_BLOCKED, QUERY_ERROR, QueryResult, SearchClient, SearchConfig, new_search_session
from crawler.download import RESIZE_MODES, DownloadConfig, Downloader, DownloadResult, ResizeConfig
from crawler.errors import QueryFileError
from filters import contract
from filters.contract.flags import add_flags, config_values, flag
from pipelines.beam_options import RUNNER_HELP, pipeline_options
from pipelines.crawl_inputs import (
    MODE_QUERIES,
    Chunk,
    CrawlInputError,
    iter_url_rows,
    load_queries,
    plan_query_chunks,
    plan_url_chunks,
)

NAMESPACE = "crawl"
STATS_DIR = "stats"
SUMMARY_FILE = "crawl_summary.json"
_CLAIMED = "__claimed__"  # marks a URL that a finished shard already holds


@dataclasses.dataclass(frozen=True)
class CrawlConfig:
    """Everything the crawl's workers need (picklable, validated)."""

    output: str = dataclasses.field(metadata=flag("directory (or gs://... URI) for the raw shards"))
    search: SearchConfig = SearchConfig()
    download: DownloadConfig = DownloadConfig()
    search_concurrency: int = dataclasses.field(default=4, metadata=flag("queries in flight per worker"))
    download_batch: int = dataclasses.field(default=256, metadata=flag(
        "hits downloaded (and held in memory) at once per worker"))
    progress_every_s: float = dataclasses.field(default=10.0, metadata=flag(
        "seconds between progress lines", name="--progress-every"))

    def __post_init__(self):
        if not self.output:
            raise ValueError("output must not be empty")
        if self.search_concurrency <= 0 or self.download_batch <= 0:
            raise ValueError("search_concurrency and download_batch must be positive")
        if self.progress_every_s < 0:
            raise ValueError("progress_every_s must be >= 0")


def shard_path(output: str, name: str) -> str:
    return contract.join(output, name + contract.SHARD_SUFFIX)


def stats_path(output: str, name: str) -> str:
    return contract.join(output, STATS_DIR, name + ".json")


def _progress(message: str) -> None:
    print(f"[crawl] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Step 2: search
# --------------------------------------------------------------------------------------------


def hit_record(chunk: Chunk, position: int, rank: int, url: str, caption: str, query: str,
               page_url: str) -> dict:
    """A hit as it travels to the de-duplication: no image bytes, its order for "first wins".
    The caption is kept as found; the filter normalises it."""
    return {"chunk": chunk.name, "order": (chunk.index, position, rank), "url": url.strip(),
            "caption_raw": caption, "query": query, "rank": rank, "page_url": page_url}


def query_record(result: QueryResult, position: int) -> dict:
    return {"position": position, "query": result.query, "status": result.status, "hits": len(result.hits),
            "pages": result.pages, "error_message": result.error_message}


class _EventLoopDoFn(beam.DoFn):
    """A DoFn that owns an asyncio event loop, made in `setup` (loops and sessions do not
    pickle); subclasses open their aiohttp sessions in it and close them in `_close`."""

    def setup(self):
        self._loop = asyncio.new_event_loop()

    async def _close(self) -> None:
        """Close what the subclass opened in the loop."""

    def teardown(self):
        if getattr(self, "_loop", None) is not None:
            self._loop.run_until_complete(self._close())
            self._loop.close()
            self._loop = None


class SearchChunkFn(_EventLoopDoFn):
    """Chunk -> (normalised URL, hit) on the main output and (chunk name, info) on "info".

    The aiohttp session and the rate limiter live in the DoFn instance (one per worker thread),
    built in `setup` inside the DoFn's own event loop."""

    INFO = "info"

    def __init__(self, config: CrawlConfig):
        super().__init__()
        self.config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client: SearchClient | None = None
        self.queries = Metrics.counter(NAMESPACE, "queries")
        self.pages = Metrics.counter(NAMESPACE, "pages")
        self.hits = Metrics.counter(NAMESPACE, "hits")

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _open(self) -> None:
        self._session = new_search_session(self.config.search.base_url)
        self._client = SearchClient(self._session, self.config.search)

    async def _search_all(self, queries: Sequence[str]) -> list[QueryResult]:
        if self._client is None:
            await self._open()
        slots = asyncio.Semaphore(self.config.search_concurrency)
        started = last = time.monotonic()
        done = 0

        async def one(query: str) -> QueryResult:
            nonlocal done, last
            async with slots:
                result = await self._client.search(query)
            done += 1
            now = time.monotonic()
            if self.config.progress_every_s and now - last >= self.config.progress_every_s:
                last = now
                _progress(f"searching: {done}/{len(queries)} queries of this chunk, "
                          f"{done / (now - started):.2f} queries/s")
            return result

        return list(await asyncio.gather(*(one(q) for q in queries)))

    def process(self, chunk: Chunk) -> Iterator[Any]:
        yield beam.pvalue.TaggedOutput(self.INFO, (chunk.name, {"kind": "chunk", "index": chunk.index,
                                                                "mode": chunk.mode, "size": chunk.size}))
        if chunk.mode != MODE_QUERIES:
            for rank, url, caption in iter_url_rows(chunk):
                self.hits.inc()
                yield url_identity(url), hit_record(chunk, rank, rank, url, caption, "", "")
            return
        started = time.monotonic()
        results = self._loop.run_until_complete(self._search_all(chunk.queries))
        statuses = Counter()
        for position, result in enumerate(results):
            statuses[result.status] += 1
            self.queries.inc()
            Metrics.counter(NAMESPACE, f"queries_{result.status}").inc()
            self.pages.inc(result.pages)
            self.hits.inc(len(result.hits))
            yield beam.pvalue.TaggedOutput(self.INFO, (chunk.name, {"kind": "query", **query_record(result, position)}))
            for hit in result.hits:
                yield url_identity(hit.url), hit_record(chunk, position, hit.rank, hit.url, hit.caption,
                                                         result.query, hit.page_url)
        _progress(f"{chunk.name}: searched {len(results)} queries in {time.monotonic() - started:.1f}s "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))})")


# --------------------------------------------------------------------------------------------
# Step 3: de-duplicate by normalised URL
# --------------------------------------------------------------------------------------------


def url_identity(url: str) -> str:
    """What hits are de-duplicated on: the `key` of the URL, the same for URLs that normalise
    alike (filters.contract.urls owns URL identity)."""
    return contract.url_key(url)


def claimed_urls(path: str) -> Iterator[tuple[str, tuple[str, str]]]:
    """(URL identity, (_CLAIMED, chunk name)) for every row of a finished shard."""
    chunk = path.rpartition("/")[2].removesuffix(contract.SHARD_SUFFIX)
    table = contract.read_shard(path, contract.RAW_SCHEMA, columns=["url"])
    for url in table.column("url").to_pylist():
        yield url_identity(url), (_CLAIMED, chunk)


def _is_claim(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == _CLAIMED


class PickFirstFn(beam.DoFn):
    """(URL identity, [hits and claims]) -> (chunk, ("hit", hit)) for the winner and
    (chunk, ("dup", 1)) for every other hit.

    A claim (the URL is in the finished shard of chunk K) beats every hit except K's own: K's
    shard is only being rewritten when K is crawled again (--retry-blocked), and then its hit
    keeps the URL; no other chunk may take it, so no URL is ever in two shards."""

    def __init__(self):
        super().__init__()
        self.duplicates = Metrics.counter(NAMESPACE, "duplicates")

    def process(self, element: tuple[str, Iterable[Any]]) -> Iterator[tuple[str, tuple[str, Any]]]:
        _, values = element
        claimers = set()
        hits = []
        for value in values:
            if _is_claim(value):
                claimers.add(value[1])
            else:
                hits.append(value)
        hits.sort(key=lambda h: tuple(h["order"]))
        winner = next((h for h in hits if claimers <= {h["chunk"]}), None)
        for hit in hits:
            if hit is winner:
                yield hit["chunk"], ("hit", hit)
            else:
                self.duplicates.inc()
                yield hit["chunk"], ("dup", 1)


# --------------------------------------------------------------------------------------------
# Step 4: download and write one shard per chunk
# --------------------------------------------------------------------------------------------


def raw_row(hit: dict, result: DownloadResult) -> dict:
    """A RAW_SCHEMA record from a hit and its download."""
    return {
        "key": contract.url_key(hit["url"]), "url": hit["url"], "caption_raw": hit["caption_raw"],
        "query": hit["query"], "rank": hit["rank"],
        "page_url": hit["page_url"], "image": result.image, "width": result.width, "height": result.height,
        "image_format": result.image_format, "sha256": result.sha256, "status": result.status,
        "error_message": result.error_message,
    }


class DownloadAndWriteFn(_EventLoopDoFn):
    """(chunk name, {"items": hits and duplicate marks, "info": chunk and query records}) ->
    the chunk's shard, written atomically after its stats; yields the stats."""

    def __init__(self, config: CrawlConfig):
        super().__init__()
        self.config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._downloader: Downloader | None = None

    def setup(self):
        super().setup()
        self._downloader = Downloader(self.config.download)
        self._loop.run_until_complete(self._downloader.start())

    async def _close(self) -> None:
        if self._downloader is not None:
            await self._downloader.close()

    def process(self, element: tuple[str, dict[str, Iterable[Any]]]) -> Iterator[dict]:
        name, grouped = element
        info = list(grouped["info"])
        hits = []
        duplicates = 0
        for kind, value in grouped["items"]:
            if kind == "hit":
                hits.append(value)
            else:
                duplicates += value
        hits.sort(key=lambda h: tuple(h["order"]))
        chunk_info = next(i for i in info if i["kind"] == "chunk")
        query_records = sorted((i for i in info if i["kind"] == "query"), key=lambda r: r["position"])
        statuses: Counter[str] = Counter()
        writer = contract.ShardWriter(shard_path(self.config.output, name), contract.RAW_SCHEMA)
        try:
            self._download_into(name, hits, writer, statuses)
            carried = self._carry_over(name, hits, writer, statuses)
            stats = chunk_stats(name, chunk_info, query_records, len(hits) + duplicates, duplicates, statuses)
            if carried:
                stats["carried_over"] = carried
            contract.write_json(stats_path(self.config.output, name), stats, sort_keys=True)
            writer.close()  # the shard's final name appears last: it marks the chunk as done
        except BaseException:
            writer.abort()
            raise
        yield stats

    def _carry_over(self, name: str, hits: Sequence[dict], writer: contract.ShardWriter,
                    statuses: Counter) -> int:
        """On a re-crawl (--retry-blocked) the chunk's finished shard is being replaced: its rows
        whose URL the new search did not bring again are copied into the new shard, so a retry
        never loses a pair (a query that was fine before may be blocked this time). No other
        chunk can hold those URLs: the old shard's claim kept them for this chunk alone."""
        old = shard_path(self.config.output, name)
        if not contract.exists(old):
            return 0
        found = {url_identity(h["url"]) for h in hits}
        carried = 0
        for batch in contract.iter_shard_batches(old, contract.RAW_SCHEMA):
            rows = [r for r in batch.to_pylist() if url_identity(r["url"]) not in found]
            writer.write_records(rows)
            carried += len(rows)
            statuses.update(r["status"] for r in rows)
        return carried

    def _download_into(self, name: str, hits: Sequence[dict], writer: contract.ShardWriter,
                       statuses: Counter) -> None:
        self._loop.run_until_complete(self._download_and_write(name, hits, writer, statuses))

    async def _download_and_write(self, name: str, hits: Sequence[dict], writer: contract.ShardWriter,
                                  statuses: Counter) -> None:
        """Stream the chunk's downloads in hit order into the shard, `download_batch` rows at a
        time, with twice that many downloads started ahead."""
        batch_size = self.config.download_batch
        started = last = time.monotonic()
        rows: list[dict] = []
        done = 0
        results = self._downloader.iter_ordered((h["url"] for h in hits), window=2 * batch_size)
        async for result in results:
            rows.append(raw_row(hits[done], result))
            done += 1
            statuses[result.status] += 1
            Metrics.counter(NAMESPACE, f"download_{result.status}").inc()
            if len(rows) == batch_size:
                writer.write_records(rows)
                rows = []
            now = time.monotonic()
            if self.config.progress_every_s and now - last >= self.config.progress_every_s:
                last = now
                _progress(f"{name}: {done}/{len(hits)} downloaded ({statuses['success']} ok), "
                          f"{done / max(now - started, 1e-9):.0f} URLs/s")
        writer.write_records(rows)
        _progress(f"{name}: wrote {len(hits)} rows ({statuses['success']} images) "
                  f"in {time.monotonic() - started:.1f}s")


def chunk_stats(name: str, chunk_info: dict, query_records: Sequence[dict], hits: int, duplicates: int,
                statuses: Counter) -> dict:
    """The small record written beside each shard (stats/<chunk>.json)."""
    return {
        "chunk": name, "mode": chunk_info["mode"], "items": chunk_info["size"],
        "queries": dict(Counter(r["status"] for r in query_records)),
        "blocked_queries": [r["query"] for r in query_records if r["status"] == QUERY_BLOCKED],
        "query_results": list(query_records),
        "pages": sum(r["pages"] for r in query_records),
        "hits": hits, "duplicates": duplicates, "rows": sum(statuses.values()),
        "downloads": dict(sorted(statuses.items())),
    }


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


class CrawlChunks(beam.PTransform):
    """Pending chunks (+ finished shards, whose URLs are claimed) -> one raw shard per chunk;
    the output PCollection holds each written chunk's stats."""

    def __init__(self, config: CrawlConfig, chunks: Sequence[Chunk], finished_shards: Sequence[str]):
        super().__init__()
        self.config = config
        self.chunks = list(chunks)
        self.finished_shards = list(finished_shards)

    def expand(self, pbegin):
        searched = (pbegin
                    | "Chunks" >> beam.Create(self.chunks)
                    | "SpreadChunks" >> beam.Reshuffle()
                    | "Search" >> beam.ParDo(SearchChunkFn(self.config)).with_outputs(
                        SearchChunkFn.INFO, main="hits"))
        claims = (pbegin
                  | "FinishedShards" >> beam.Create(self.finished_shards)
                  | "ClaimFinishedUrls" >> beam.FlatMap(claimed_urls))
        winners = ((searched.hits, claims)
                   | "HitsAndClaims" >> beam.Flatten()
                   | "GroupByUrl" >> beam.GroupByKey()
                   | "Deduplicate" >> beam.ParDo(PickFirstFn()))
        return ({"items": winners, "info": searched[SearchChunkFn.INFO]}
                | "GroupByChunk" >> beam.CoGroupByKey()
                | "DownloadAndWrite" >> beam.ParDo(DownloadAndWriteFn(self.config)))


def plan_chunks(args: argparse.Namespace) -> list[Chunk]:
    if args.queries:
        return plan_query_chunks(load_queries(args.queries), args.chunk_size or 100)
    return plan_url_chunks(args.url_list, args.chunk_size or 10_000)


def read_stats(output: str, name: str) -> dict:
    """A finished chunk's stats/<name>.json."""
    return contract.read_json(stats_path(output, name))


def summarise(output: str, chunks: Sequence[Chunk]) -> dict:
    """Totals over the stats of every chunk of this input that has a shard (this run's and
    earlier runs'), from the files written, not from Beam's best-effort metrics."""
    totals: dict[str, Any] = {"chunks": len(chunks), "chunks_done": 0, "queries": Counter(), "pages": 0,
                              "hits": 0, "duplicates": 0, "rows": 0, "downloads": Counter(),
                              "blocked_queries": []}
    for chunk in chunks:
        if not contract.exists(shard_path(output, chunk.name)):
            continue
        stats = read_stats(output, chunk.name)
        totals["chunks_done"] += 1
        totals["queries"].update(stats["queries"])
        totals["downloads"].update(stats["downloads"])
        totals["blocked_queries"] += stats["blocked_queries"]
        for key in ("pages", "hits", "duplicates", "rows"):
            totals[key] += stats[key]
    totals["queries"] = dict(sorted(totals["queries"].items()))
    totals["downloads"] = dict(sorted(totals["downloads"].items()))
    return totals


def format_summary(totals: dict) -> str:
    queries = ", ".join(f"{k} {v}" for k, v in totals["queries"].items()) or "none (URL list)"
    downloads = ", ".join(f"{k} {v}" for k, v in totals["downloads"].items()) or "none"
    return (f"{totals['chunks_done']}/{totals['chunks']} chunks done; queries: {queries}; "
            f"pages {totals['pages']}; hits {totals['hits']}; duplicates {totals['duplicates']}; "
            f"rows {totals['rows']}; downloads: {downloads}")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.crawl",
        description="Crawl image-text pairs into raw Parquet shards (pipelines.schema.RAW_SCHEMA):\n"
                    "  --queries FILE   search each query on a Baidu-format engine, download every hit\n"
                    "  --url-list FILE  download a url,caption list (CSV/TSV/Parquet, a glob for several)\n"
                    "Resumable: rerun the same command after an interruption; finished chunks are skipped.\n"
                    "Every URL becomes a row with a status; stats/ and crawl_summary.json hold the counts.",
        epilog=RUNNER_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--queries", help="UTF-8 file, one query per line (make queries writes the default)")
    source.add_argument("--url-list", help="CSV/TSV/Parquet file or glob with url,caption columns "
                                           "(the Wukong release, img2dataset inputs)")
    add_flags(parser, CrawlConfig, exclude=("search_concurrency", "download_batch", "progress_every_s"),
              required=("output",))
    parser.add_argument("--retry-blocked", action="store_true",
                        help="crawl again the finished chunks that have blocked queries (their shards are "
                             "replaced; their URLs stay theirs)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="crawl again the finished chunks that have queries that failed (search_error: "
                             "timeouts, malformed answers); their shards are replaced, their URLs stay theirs")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="queries (default 100) or URL rows (default 10000) per chunk/shard")
    parser.add_argument("--wave-chunks", type=int, default=16,
                        help="chunks per Beam pipeline run (default 16): a kill loses at most one wave's "
                             "unfinished work; raise it on Dataflow, where each run starts workers")

    search = parser.add_argument_group("search")
    add_flags(search, SearchConfig)
    add_flags(search, CrawlConfig, exclude=("output", "download_batch", "progress_every_s"))

    download = parser.add_argument_group("download")
    add_flags(download, DownloadConfig)
    add_flags(download, CrawlConfig, exclude=("output", "search_concurrency", "progress_every_s"))
    download.add_argument("--resize-mode", choices=("off",) + RESIZE_MODES, default="off",
                          help="resize with img2dataset's Resizer (default off: full size)")
    add_flags(download, ResizeConfig)
    add_flags(parser, CrawlConfig, exclude=("output", "search_concurrency", "download_batch"))
    return parser


def config_from_args(args: argparse.Namespace) -> CrawlConfig:
    resize = None
    if args.resize_mode != "off":
        resize = ResizeConfig(resize_mode=args.resize_mode, **config_values(args, ResizeConfig))
    if args.chunk_size is not None and args.chunk_size <= 0:
        raise ValueError("--chunk-size must be positive")
    return CrawlConfig(search=SearchConfig(**config_values(args, SearchConfig)),
                       download=DownloadConfig(resize=resize, **config_values(args, DownloadConfig)),
                       **config_values(args, CrawlConfig))


@dataclasses.dataclass(frozen=True)
class CrawlOutcome:
    """What run() did: the totals from the written stats, the Beam counters summed over this
    run's waves (best-effort, runner-dependent) and how many chunks this run crawled."""

    totals: dict
    counters: dict[str, int]
    crawled_chunks: int


def run_wave(config: CrawlConfig, chunks: Sequence[Chunk], beam_args: Sequence[str]) -> dict[str, int]:
    """One Beam pipeline over `chunks`, claiming the URLs of every shard finished before it."""
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    _ = pipeline | "Crawl" >> CrawlChunks(config, chunks, contract.list_shards(config.output))
    result = pipeline.run()
    result.wait_until_finish()
    counters: Counter[str] = Counter()
    for record in result.metrics().query()["counters"]:
        value = record.committed if record.committed is not None else record.attempted
        counters[record.key.metric.name] += value or 0
    return dict(counters)


def run(argv: Sequence[str] | None = None) -> CrawlOutcome:
    """Run the crawl; the totals are also written to OUTPUT/crawl_summary.json. Raises
    CrawlInputError/QueryFileError/ValueError on bad input (main() makes them exit status 2).

    Pending chunks run in waves of --wave-chunks, one Beam pipeline each: a GroupByKey is a
    barrier in batch Beam, so one pipeline over all chunks would write no shard before every
    query was searched, and a kill would lose all of it. A wave's shards are final when it ends;
    later waves treat their URLs as claimed, so "first by query order and rank wins" holds
    across waves as within one."""
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    config = config_from_args(args)
    if args.wave_chunks <= 0:
        raise ValueError("--wave-chunks must be positive")
    chunks = plan_chunks(args)
    contract.makedirs(config.output)
    with contract.hold_output_lock(config.output, "crawl"):
        return _run_locked(args, config, chunks, beam_args)


def _chunks_with_queries(output: str, chunks: Sequence[Chunk], status: str) -> list[Chunk]:
    """The finished chunks among `chunks` that recorded a query with `status`."""
    return [c for c in chunks if any(r["status"] == status for r in read_stats(output, c.name)["query_results"])]


def _run_locked(args: argparse.Namespace, config: CrawlConfig, chunks: Sequence[Chunk],
                beam_args: Sequence[str]) -> CrawlOutcome:
    removed = (contract.remove_stale_temporaries(config.output)
               + contract.remove_stale_temporaries(contract.join(config.output, STATS_DIR)))
    finished_names = {path.rpartition("/")[2] for path in contract.list_shards(config.output)}
    pending = [c for c in chunks if c.name + contract.SHARD_SUFFIX not in finished_names]
    pending_names = {c.name for c in pending}
    finished = [c for c in chunks if c.name not in pending_names]
    blocked = _chunks_with_queries(config.output, finished, QUERY_BLOCKED)
    failed = _chunks_with_queries(config.output, finished, QUERY_ERROR)
    retried = sorted({c.name: c for c in (blocked if args.retry_blocked else []) + (failed if args.retry_failed else [])}
                     .values(), key=lambda c: c.index)
    pending = sorted(pending + retried, key=lambda c: c.index)
    _progress(f"{len(chunks)} chunks, {len(chunks) - len(pending)} already done, {len(pending)} to crawl"
              + (f" ({len(retried)} again, for their blocked or failed queries)" if retried else "")
              + (f"; removed {removed} stale temporaries" if removed else ""))
    for left, what, option in ((blocked, "blocked", "--retry-blocked"), (failed, "search_error", "--retry-failed")):
        if left and not getattr(args, option[2:].replace("-", "_")):
            queries = sum(read_stats(config.output, c.name)["queries"].get(what, 0) for c in left)
            _progress(f"left as they are: {queries} {what} queries in {len(left)} finished chunks "
                      f"(add {option} to search them again)")
    counters: Counter[str] = Counter()
    waves = [pending[i:i + args.wave_chunks] for i in range(0, len(pending), args.wave_chunks)]
    for number, wave in enumerate(waves, 1):
        started = time.monotonic()
        counters.update(run_wave(config, wave, beam_args))
        _progress(f"wave {number}/{len(waves)} done in {time.monotonic() - started:.1f}s: "
                  f"{len(chunks) - len(pending) + sum(map(len, waves[:number]))}/{len(chunks)} chunks written")
    if counters:
        _progress("counters: " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())))
    totals = summarise(config.output, chunks)
    contract.write_json(contract.join(config.output, SUMMARY_FILE), totals, sort_keys=True)
    _progress("done: " + format_summary(totals))
    return CrawlOutcome(totals, dict(counters), len(pending))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(argv)
    except (CrawlInputError, QueryFileError, ValueError, contract.OutputLocked) as err:
        print(f"python -m pipelines.crawl: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
