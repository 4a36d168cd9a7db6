"""What the crawl's two phases share: the workers' config, the output's layout, the counters'
namespace, progress lines, and the base of the DoFns that run asyncio code.

The output of a crawl (`--output DIR`):

    DIR/part-NNNNN-<digest>.parquet    raw shards (RAW_SCHEMA), one per chunk: the download phase
    DIR/stats/<chunk>.json             each raw shard's counts, written just before it
    DIR/hits/<chunk>.parquet           hit lists (`pipelines.crawl_hits`), one per query chunk:
                                       the search phase
    DIR/crawl_summary.json             the totals over all chunks
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys

import apache_beam as beam

from crawler.baidu import SearchConfig
from crawler.download import DownloadConfig
from filters import contract
from filters.contract.flags import flag

NAMESPACE = "crawl"
STATS_DIR = "stats"
HITS_DIR = "hits"
SUMMARY_FILE = "crawl_summary.json"


@dataclasses.dataclass(frozen=True)
class CrawlConfig:
    """Everything the crawl's workers need (picklable, validated)."""

    output: str = dataclasses.field(metadata=flag("directory (or gs://... URI) for the raw shards"))
    hits: str = dataclasses.field(default="", metadata=flag(
        "directory of the hit lists (default: OUTPUT/hits); point the download phase of a new output "
        "at another crawl's hit lists to download again without searching"))
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

    @property
    def hits_dir(self) -> str:
        return self.hits or contract.join(self.output, HITS_DIR)


def shard_path(output: str, name: str) -> str:
    return contract.join(output, name + contract.SHARD_SUFFIX)


def stats_path(output: str, name: str) -> str:
    return contract.join(output, STATS_DIR, name + ".json")


def finished_names(directory: str) -> set[str]:
    """The chunk names that have a finished `.parquet` file in `directory`: a listing of names,
    never the files' contents."""
    if not contract.exists(directory):
        return set()
    return {path.rpartition("/")[2].removesuffix(contract.SHARD_SUFFIX) for path in contract.list_shards(directory)}


def progress(message: str) -> None:
    print(f"[crawl] {message}", file=sys.stderr, flush=True)


class EventLoopDoFn(beam.DoFn):
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
