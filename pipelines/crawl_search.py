"""The crawl's search phase: query chunks -> hit lists (`pipelines.crawl_hits`), one Beam job.

    SearchTask per pending chunk -> Reshuffle -> SearchAndWrite (writes OUTPUT/hits/<chunk>.parquet)

There is no shuffle after the search: each chunk's hit list is written as soon as its queries are
answered, so a kill loses only the chunks in flight, and a finished chunk is never searched again
(search is the rate-limited resource). A retry (`--retry-blocked`, `--retry-failed`) searches
again only the queries of a chunk that ended with one of those statuses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Iterator, Sequence

import aiohttp
import apache_beam as beam
from apache_beam.metrics import Metrics

from crawler.baidu import QueryResult, SearchClient, new_search_session
from filters import contract
from pipelines.crawl_config import NAMESPACE, CrawlConfig, EventLoopDoFn, progress, shard_path, stats_path
from pipelines.crawl_hits import hit_rows, hits_path, merge_retry, query_record, read_hit_list, write_hit_list
from pipelines.crawl_inputs import Chunk


@dataclasses.dataclass(frozen=True)
class SearchTask:
    """Search a chunk: all its queries (`retry` empty), or again those of its finished hit list
    whose status is in `retry`. Hits found get `round` (see `pipelines.crawl_hits`)."""

    chunk: Chunk
    round: int
    retry: tuple[str, ...] = ()


class SearchAndWriteFn(EventLoopDoFn):
    """SearchTask -> the chunk's hit list, written atomically; yields (chunk name, hits written).

    The aiohttp session and the rate limiter live in the DoFn instance (one per worker thread),
    built in the DoFn's own event loop."""

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

    async def _search_all(self, queries: Sequence[str]) -> list[QueryResult]:
        if self._client is None:
            self._session = new_search_session(self.config.search.base_url)
            self._client = SearchClient(self._session, self.config.search)
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
                progress(f"searching: {done}/{len(queries)} queries of this chunk, "
                         f"{done / (now - started):.2f} queries/s")
            return result

        return list(await asyncio.gather(*(one(q) for q in queries)))

    def _search(self, queries: Sequence[str]) -> list[QueryResult]:
        results = self._loop.run_until_complete(self._search_all(queries))
        for result in results:
            self.queries.inc()
            Metrics.counter(NAMESPACE, f"queries_{result.status}").inc()
            self.pages.inc(result.pages)
            self.hits.inc(len(result.hits))
        return results

    def process(self, task: SearchTask) -> Iterator[tuple[str, int]]:
        chunk = task.chunk
        path = hits_path(self.config.hits_dir, chunk.name)
        started = time.monotonic()
        if task.retry:
            rows, queries = self._retry(task, path)
            if rows is None:
                progress(f"{chunk.name}: searched its {', '.join(task.retry)} queries again: nothing new")
                return
            # The raw shard was built from the old hit list; it goes first, so that a kill between
            # the two writes leaves a chunk to download again, never a stale shard taken for done.
            contract.delete_file(shard_path(self.config.output, chunk.name))
            contract.delete_file(stats_path(self.config.output, chunk.name))
        else:
            results = self._search(chunk.queries)
            rows = [row for position, result in enumerate(results) for row in hit_rows(result, position, task.round)]
            queries = [query_record(result, position) for position, result in enumerate(results)]
        write_hit_list(path, rows, queries)
        statuses = Counter(q["status"] for q in queries)
        progress(f"{chunk.name}: {len(queries)} queries, {len(rows)} hits in {time.monotonic() - started:.1f}s "
                 f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))})")
        yield chunk.name, len(rows)

    def _retry(self, task: SearchTask, path: str) -> tuple[list[dict] | None, list[dict]]:
        """The merged hit list after searching the retried queries again; None when the new
        answers bring no hit and no status that the list does not already have."""
        old_rows, old_queries = read_hit_list(path)
        positions = [q["position"] for q in old_queries if q["status"] in task.retry]
        results = dict(zip(positions, self._search([old_queries[p]["query"] for p in positions])))
        rows, queries = merge_retry(old_rows, old_queries, results, task.round)
        if rows == old_rows and [q["status"] for q in queries] == [q["status"] for q in old_queries]:
            return None, old_queries
        return rows, queries


class SearchPhase(beam.PTransform):
    """Search tasks -> hit lists on disk; the output holds (chunk name, hits) per written list."""

    def __init__(self, config: CrawlConfig, tasks: Sequence[SearchTask]):
        super().__init__()
        self.config = config
        self.tasks = list(tasks)

    def expand(self, pbegin):
        return (pbegin
                | "Tasks" >> beam.Create(self.tasks)
                | "SpreadTasks" >> beam.Reshuffle()
                | "SearchAndWrite" >> beam.ParDo(SearchAndWriteFn(self.config)))
