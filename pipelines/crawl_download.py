"""The crawl's download phase: hit lists (or URL-list rows) -> de-duplicated by URL -> downloads ->
raw shards (RAW_SCHEMA), one Beam job.

1. `ReadHits`: every chunk's hits, keyed by URL identity (`url_identity`); only URLs, captions and
   their order travel, never image bytes;
2. `GroupByUrl` + `Deduplicate`: the first hit by (round, query order, rank) wins; the others
   count as duplicates of their chunk. This is a pure function of the hit lists, so a rerun
   picks the same winners, and the shards already written stay right without being read;
3. `GroupByChunk`: the winners are joined, through a shuffle, with the chunks still to download
   (those without a raw shard); winners of finished chunks are dropped here;
4. `DownloadAndWrite`: each pending chunk's winners are downloaded (a batched async DoFn) and
   written atomically as `<chunk>.parquet`, after `stats/<chunk>.json`. Failed downloads stay as
   rows without bytes, with status and error_message.

Every hit list is read once per run: the de-duplication needs every URL, but it is once per run,
not once per unit of work, so the total work stays linear in the corpus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from crawler.baidu import QUERY_BLOCKED
from crawler.download import Downloader, DownloadResult
from filters import contract
from pipelines.crawl_config import NAMESPACE, CrawlConfig, EventLoopDoFn, progress, shard_path, stats_path
from pipelines.crawl_hits import hit_order, read_hit_list, read_query_records
from pipelines.crawl_inputs import MODE_QUERIES, Chunk, iter_url_rows


@dataclasses.dataclass(frozen=True)
class HitSource:
    """Where a chunk's hits are: its hit list (query chunks) or its rows of a URL list."""

    chunk: Chunk
    hits: str = ""


def url_identity(url: str) -> str:
    """What hits are de-duplicated on: the `key` of the URL, the same for URLs that normalise
    alike (filters.contract.urls owns URL identity)."""
    return contract.url_key(url)


def hit_record(chunk: Chunk, order: tuple, url: str, caption: str, query: str, rank: int, page_url: str) -> dict:
    """A hit as it travels to the de-duplication: no image bytes, its order for "first wins".
    The caption is kept as found; the filter normalises it."""
    return {"chunk": chunk.name, "order": order, "url": url.strip(), "caption_raw": caption, "query": query,
            "rank": rank, "page_url": page_url}


def read_hits(source: HitSource) -> Iterator[tuple[str, dict]]:
    """(URL identity, hit) for every hit of the source's chunk."""
    chunk = source.chunk
    if chunk.mode == MODE_QUERIES:
        rows, _ = read_hit_list(source.hits)
        for row in rows:
            order = hit_order(row["round"], chunk.index, row["position"], row["rank"])
            yield url_identity(row["url"]), hit_record(chunk, order, row["url"], row["caption"], row["query"],
                                                       row["rank"], row["page_url"])
        return
    hits = Metrics.counter(NAMESPACE, "hits")  # a URL list's rows are its hits (no search counted them)
    for rank, url, caption in iter_url_rows(chunk):
        hits.inc()
        yield url_identity(url), hit_record(chunk, hit_order(0, chunk.index, rank, rank), url, caption, "", rank, "")


class PickFirstFn(beam.DoFn):
    """(URL identity, [hits]) -> (chunk, ("hit", hit)) for the first hit by order, and
    (chunk, ("dup", 1)) for every other one."""

    def __init__(self):
        super().__init__()
        self.duplicates = Metrics.counter(NAMESPACE, "duplicates")

    def process(self, element: tuple[str, Iterable[dict]]) -> Iterator[tuple[str, tuple[str, Any]]]:
        _, hits = element
        ordered = sorted(hits, key=lambda h: tuple(h["order"]))
        yield ordered[0]["chunk"], ("hit", ordered[0])
        for hit in ordered[1:]:
            self.duplicates.inc()
            yield hit["chunk"], ("dup", 1)


def raw_row(hit: dict, result: DownloadResult) -> dict:
    """A RAW_SCHEMA record from a hit and its download."""
    return {
        "key": contract.url_key(hit["url"]), "url": hit["url"], "caption_raw": hit["caption_raw"],
        "query": hit["query"], "rank": hit["rank"],
        "page_url": hit["page_url"], "image": result.image, "width": result.width, "height": result.height,
        "image_format": result.image_format, "sha256": result.sha256, "status": result.status,
        "error_message": result.error_message,
    }


def chunk_stats(source: HitSource, query_records: Sequence[dict], hits: int, duplicates: int,
                statuses: Counter) -> dict:
    """The small record written beside each shard (stats/<chunk>.json)."""
    chunk = source.chunk
    return {
        "chunk": chunk.name, "mode": chunk.mode, "items": chunk.size,
        "queries": dict(Counter(r["status"] for r in query_records)),
        "blocked_queries": [r["query"] for r in query_records if r["status"] == QUERY_BLOCKED],
        "query_results": list(query_records),
        "pages": sum(r["pages"] for r in query_records),
        "hits": hits, "duplicates": duplicates, "rows": sum(statuses.values()),
        "downloads": dict(sorted(statuses.items())),
    }


class DownloadAndWriteFn(EventLoopDoFn):
    """(chunk name, {"items": winners and duplicate marks, "pending": [HitSource] or []}) -> the
    chunk's shard, written atomically after its stats; yields the stats. A chunk that is not
    pending (its shard exists) is skipped."""

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
        pending = list(grouped["pending"])
        if not pending:
            return
        source = pending[0]
        hits = []
        duplicates = 0
        for kind, value in grouped["items"]:
            if kind == "hit":
                hits.append(value)
            else:
                duplicates += value
        hits.sort(key=lambda h: tuple(h["order"]))
        query_records = read_query_records(source.hits) if source.chunk.mode == MODE_QUERIES else []
        statuses: Counter[str] = Counter()
        writer = contract.ShardWriter(shard_path(self.config.output, name), contract.RAW_SCHEMA)
        try:
            self._loop.run_until_complete(self._download_and_write(name, hits, writer, statuses))
            stats = chunk_stats(source, query_records, len(hits) + duplicates, duplicates, statuses)
            contract.write_json(stats_path(self.config.output, name), stats, sort_keys=True)
            writer.close()  # the shard's final name appears last: it marks the chunk as done
        except BaseException:
            writer.abort()
            raise
        yield stats

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
                progress(f"{name}: {done}/{len(hits)} downloaded ({statuses['success']} ok), "
                         f"{done / max(now - started, 1e-9):.0f} URLs/s")
        writer.write_records(rows)
        progress(f"{name}: wrote {len(hits)} rows ({statuses['success']} images) "
                 f"in {time.monotonic() - started:.1f}s")


class DownloadPhase(beam.PTransform):
    """Every chunk's hits (`sources`) and the chunks still to download (`pending`) -> one raw
    shard per pending chunk; the output holds each written chunk's stats."""

    def __init__(self, config: CrawlConfig, sources: Sequence[HitSource], pending: Sequence[HitSource]):
        super().__init__()
        self.config = config
        self.sources = list(sources)
        self.pending = list(pending)

    def expand(self, pbegin):
        winners = (pbegin
                   | "Sources" >> beam.Create(self.sources)
                   | "SpreadSources" >> beam.Reshuffle()
                   | "ReadHits" >> beam.FlatMap(read_hits)
                   | "GroupByUrl" >> beam.GroupByKey()
                   | "Deduplicate" >> beam.ParDo(PickFirstFn()))
        pending = (pbegin
                   | "Pending" >> beam.Create([(s.chunk.name, s) for s in self.pending]))
        return ({"items": winners, "pending": pending}
                | "GroupByChunk" >> beam.CoGroupByKey()
                | "DownloadAndWrite" >> beam.ParDo(DownloadAndWriteFn(self.config)))
