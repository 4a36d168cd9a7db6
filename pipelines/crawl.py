"""The crawl stage on Apache Beam, in two phases, each one Beam job:

    python -m pipelines.crawl --queries queries.txt --output runs/crawl/raw
    python -m pipelines.crawl --url-list 'wukong_release/*.csv' --output runs/crawl/raw

1. search (`pipelines.crawl_search`): the query file is cut into chunks (`pipelines.crawl_inputs`);
   each chunk's queries go to a Baidu-format engine and its hits are written as a hit list,
   OUTPUT/hits/<chunk>.parquet (`pipelines.crawl_hits`). A URL list has no search phase.
2. download (`pipelines.crawl_download`): every chunk's hits are de-duplicated by normalised URL
   (the first by query order and rank wins), downloaded, and written as one raw shard per chunk,
   OUTPUT/<chunk>.parquet (`pipelines.schema.RAW_SCHEMA`), with stats/<chunk>.json beside it.

`--phase search` or `--phase download` runs one of them. What is finished is known from file names
alone: a rerun searches only the chunks without a hit list and downloads only those without a raw
shard; temporaries left by a killed run are removed. A finished search is never repeated, except
for the blocked or failed queries that `--retry-blocked`/`--retry-failed` ask for. Downloads can
be redone without searching: a new `--output` with `--hits OLD_OUTPUT/hits --phase download`.

Blocked queries are recorded as `blocked`, never as "no results". Beam counters (namespace
"crawl") count queries, pages, hits, duplicates and each download status; progress lines are
printed while chunks run, and a summary from the written stats at the end (also saved as
`crawl_summary.json`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import apache_beam as beam

from crawler.baidu import QUERY_BLOCKED, QUERY_ERROR, SearchConfig
from crawler.download import RESIZE_MODES, DownloadConfig, ResizeConfig
from crawler.errors import QueryFileError
from filters import contract
from filters.contract.flags import add_flags, config_values, flag
from pipelines.beam_options import RUNNER_HELP, pipeline_options
from pipelines.crawl_config import (
    HITS_DIR,
    STATS_DIR,
    SUMMARY_FILE,
    CrawlConfig,
    finished_names,
    progress,
    shard_path,
    stats_path,
)
from pipelines.crawl_download import DownloadPhase, HitSource
from pipelines.crawl_hits import HitListError, hits_path, read_query_records
from pipelines.crawl_inputs import (
    Chunk,
    CrawlInputError,
    load_queries,
    plan_query_chunks,
    plan_url_chunks,
)
from pipelines.crawl_search import SearchPhase, SearchTask

__all__ = ["CrawlConfig", "CrawlOutcome", "CrawlPlan", "HITS_DIR", "STATS_DIR", "SUMMARY_FILE", "build_parser",
           "main", "run", "shard_path", "stats_path", "summarise"]

PHASES = ("all", "search", "download")


@dataclasses.dataclass(frozen=True)
class CrawlPlan:
    """What this run of the launcher does (the workers never see it)."""

    phase: str = dataclasses.field(default="all", metadata=flag(
        "all: search, then download; search: only write hit lists; download: only download the hit "
        "lists (or the URL list) into raw shards, never searching", choices=PHASES))
    retry_blocked: bool = dataclasses.field(default=False, metadata=flag(
        "search again the blocked queries of finished chunks; a chunk whose hits change is downloaded "
        "again (its earlier hits stay, and its URLs stay its own)"))
    retry_failed: bool = dataclasses.field(default=False, metadata=flag(
        "search again the queries of finished chunks that failed (search_error: timeouts, malformed "
        "answers); a chunk whose hits change is downloaded again"))

    def __post_init__(self):
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, not {self.phase!r}")

    @property
    def retry_statuses(self) -> tuple[str, ...]:
        return tuple(status for status, on in ((QUERY_BLOCKED, self.retry_blocked), (QUERY_ERROR, self.retry_failed))
                     if on)


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
    done = finished_names(output)
    for chunk in chunks:
        if chunk.name not in done:
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
                    "  --queries FILE   search each query on a Baidu-format engine (hit lists in OUTPUT/hits),\n"
                    "                   then download every hit\n"
                    "  --url-list FILE  download a url,caption list (CSV/TSV/Parquet, a glob for several)\n"
                    "Resumable: rerun the same command after an interruption; finished chunks are skipped,\n"
                    "and a finished search is never repeated. Every URL becomes a row with a status;\n"
                    "stats/ and crawl_summary.json hold the counts.",
        epilog=RUNNER_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--queries", help="UTF-8 file, one query per line (make queries writes the default)")
    source.add_argument("--url-list", help="CSV/TSV/Parquet file or glob with url,caption columns "
                                           "(the Wukong release, img2dataset inputs)")
    add_flags(parser, CrawlConfig, only=("output", "hits"), required=("output",))
    add_flags(parser, CrawlPlan)
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="queries (default 100) or URL rows (default 10000) per chunk/shard")
    parser.add_argument("--wave-chunks", type=int, default=None,
                        help="ignored, kept so that older command lines still run: each phase is now one "
                             "Beam job over all pending chunks")

    search = parser.add_argument_group("search")
    add_flags(search, SearchConfig)
    add_flags(search, CrawlConfig, only=("search_concurrency",))

    download = parser.add_argument_group("download")
    add_flags(download, DownloadConfig)
    add_flags(download, CrawlConfig, only=("download_batch",))
    download.add_argument("--resize-mode", choices=("off",) + RESIZE_MODES, default="off",
                          help="resize with img2dataset's Resizer (default off: full size)")
    add_flags(download, ResizeConfig)
    add_flags(parser, CrawlConfig, only=("progress_every_s",))
    return parser


def own_values(argv: Sequence[str], config_cls: type) -> dict[str, Any]:
    """The values of `config_cls`'s flags in `argv`, parsed by a parser that knows only them.

    SearchConfig and DownloadConfig share field names (`retries`, `backoff_s`), and a flag's
    destination is its field's name: in one parser, `--search-backoff` and `--backoff` would fill
    one value, and the download's retries would wait the search's 30 s. Abbreviations are read
    as the full parser reads them."""
    parser = argparse.ArgumentParser(add_help=False)
    add_flags(parser, config_cls)
    known, _ = parser.parse_known_args(list(argv))
    return config_values(known, config_cls)


def config_from_args(args: argparse.Namespace, argv: Sequence[str]) -> CrawlConfig:
    """The workers' config from the parsed command line `args` and the `argv` it came from."""
    resize = None
    if args.resize_mode != "off":
        resize = ResizeConfig(resize_mode=args.resize_mode, **config_values(args, ResizeConfig))
    if args.chunk_size is not None and args.chunk_size <= 0:
        raise ValueError("--chunk-size must be positive")
    return CrawlConfig(search=SearchConfig(**own_values(argv, SearchConfig)),
                       download=DownloadConfig(resize=resize, **own_values(argv, DownloadConfig)),
                       **config_values(args, CrawlConfig))


@dataclasses.dataclass(frozen=True)
class CrawlOutcome:
    """What run() did: the totals from the written stats, the Beam counters summed over this
    run's jobs (best-effort, runner-dependent), how many chunks this run downloaded (raw shards
    written) and how many it searched (hit lists written or searched again)."""

    totals: dict
    counters: dict[str, int]
    crawled_chunks: int
    searched_chunks: int = 0


def run_job(transform: beam.PTransform, beam_args: Sequence[str]) -> dict[str, int]:
    """Run one Beam job; its counters (committed where the runner has them)."""
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    _ = pipeline | "Crawl" >> transform
    result = pipeline.run()
    result.wait_until_finish()
    counters: Counter[str] = Counter()
    for record in result.metrics().query()["counters"]:
        value = record.committed if record.committed is not None else record.attempted
        counters[record.key.metric.name] += value or 0
    return dict(counters)


def run(argv: Sequence[str] | None = None) -> CrawlOutcome:
    """Run the crawl's phases; the totals are also written to OUTPUT/crawl_summary.json. Raises
    CrawlInputError/QueryFileError/ValueError on bad input (main() makes them exit status 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    config = config_from_args(args, argv)
    plan = CrawlPlan(**config_values(args, CrawlPlan))
    if args.wave_chunks is not None:
        progress("--wave-chunks is ignored: each phase is one Beam job over all pending chunks")
    if not args.queries and plan.phase == "search":
        raise CrawlInputError("--phase search needs --queries: a URL list has nothing to search")
    if not args.queries and (plan.retry_blocked or plan.retry_failed):
        progress("--retry-blocked and --retry-failed do nothing with a URL list: it has no search")
    chunks = plan_chunks(args)
    contract.makedirs(config.output)
    with contract.hold_output_lock(config.output, "crawl"):
        return _run_locked(args, plan, config, chunks, beam_args)


def _run_locked(args: argparse.Namespace, plan: CrawlPlan, config: CrawlConfig, chunks: Sequence[Chunk],
                beam_args: Sequence[str]) -> CrawlOutcome:
    directories = [config.output, contract.join(config.output, STATS_DIR)]
    if plan.phase != "download":
        directories.append(config.hits_dir)  # a download-only run may read another crawl's hits: never touch them
    removed = sum(contract.remove_stale_temporaries(d) for d in directories)
    if removed:
        progress(f"removed {removed} temporaries of an interrupted run")
    _warn_foreign_shards(config.output, chunks)
    counters: Counter[str] = Counter()
    searched = crawled = 0
    if args.queries and plan.phase != "download":
        searched, found = search_phase(config, plan, chunks, beam_args)
        counters.update(found)
    if plan.phase == "search":
        _progress_counters(counters)
        return CrawlOutcome(summarise(config.output, chunks), dict(counters), 0, searched)
    crawled, downloaded = download_phase(config, chunks, bool(args.queries), beam_args)
    counters.update(downloaded)
    _progress_counters(counters)
    totals = summarise(config.output, chunks)
    contract.write_json(contract.join(config.output, SUMMARY_FILE), totals, sort_keys=True)
    progress("done: " + format_summary(totals))
    return CrawlOutcome(totals, dict(counters), crawled, searched)


def _progress_counters(counters: Counter) -> None:
    if counters:
        progress("counters: " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())))


def _warn_foreign_shards(output: str, chunks: Sequence[Chunk]) -> None:
    """Say so when the output holds raw shards of another input (an edited query file): they stay,
    and the filter reads them too."""
    foreign = sorted(finished_names(output) - {c.name for c in chunks})
    if foreign:
        progress(f"warning: {len(foreign)} raw shards in {output} belong to no chunk of this input "
                 f"(first: {foreign[0]}); an edited input gives new chunk names: remove them, or crawl into "
                 f"a new output")


def search_phase(config: CrawlConfig, plan: CrawlPlan, chunks: Sequence[Chunk],
                 beam_args: Sequence[str]) -> tuple[int, dict[str, int]]:
    """One Beam job that searches the chunks without a hit list and, when asked, the failed
    queries of the others; returns (chunks searched, counters)."""
    listed = finished_names(config.hits_dir)
    first = [c for c in chunks if c.name not in listed]
    statuses = _query_statuses(config.hits_dir, [c for c in chunks if c.name in listed])
    retry = plan.retry_statuses
    retried = [c for c in chunks if c.name in statuses and set(statuses[c.name]) & set(retry)]
    for status, option in ((QUERY_BLOCKED, "--retry-blocked"), (QUERY_ERROR, "--retry-failed")):
        left = {name: found[status] for name, found in statuses.items() if found[status]}
        if left and status not in retry:
            progress(f"left as they are: {sum(left.values())} {status} queries in {len(left)} finished chunks "
                     f"(add {option} to search them again)")
    # Hits found after a raw shard was written come after every earlier hit (crawl_hits: rounds).
    round_ = time.time_ns() // 1000 if finished_names(config.output) else 0
    tasks = sorted([SearchTask(c, round_) for c in first] + [SearchTask(c, round_, retry) for c in retried],
                   key=lambda t: t.chunk.index)
    progress(f"search: {len(chunks)} chunks, {len(chunks) - len(first)} with a hit list, {len(first)} to search"
             + (f", {len(retried)} to search again for their {' or '.join(retry)} queries" if retried else ""))
    if not tasks:
        return 0, {}
    started = time.monotonic()
    counters = run_job(SearchPhase(config, tasks), beam_args)
    progress(f"search: {len(tasks)} chunks in {time.monotonic() - started:.1f}s")
    return len(tasks), counters


def _query_statuses(hits_dir: str, chunks: Sequence[Chunk]) -> dict[str, Counter]:
    """chunk name -> its queries' statuses, from the hit lists' footers."""
    return {c.name: Counter(r["status"] for r in read_query_records(hits_path(hits_dir, c.name))) for c in chunks}


def download_phase(config: CrawlConfig, chunks: Sequence[Chunk], searched: bool,
                   beam_args: Sequence[str]) -> tuple[int, dict[str, int]]:
    """One Beam job that downloads the chunks without a raw shard; returns (chunks written,
    counters). Query chunks need their hit lists: it never searches."""
    if searched:
        listed = finished_names(config.hits_dir)
        missing = [c for c in chunks if c.name not in listed]
        if missing:
            raise CrawlInputError(f"{len(missing)} of {len(chunks)} chunks have no hit list in {config.hits_dir} "
                                  f"(first: {missing[0].name}); run the search phase first (--phase search)")
        sources = [HitSource(c, hits_path(config.hits_dir, c.name)) for c in chunks]
    else:
        sources = [HitSource(c) for c in chunks]
    done = finished_names(config.output)
    pending = [s for s in sources if s.chunk.name not in done]
    progress(f"download: {len(chunks)} chunks, {len(chunks) - len(pending)} with a raw shard, "
             f"{len(pending)} to download")
    if not pending:
        return 0, {}
    started = time.monotonic()
    counters = run_job(DownloadPhase(config, sources, pending), beam_args)
    progress(f"download: {len(pending)} chunks in {time.monotonic() - started:.1f}s")
    return len(pending), counters


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(argv)
    except (CrawlInputError, QueryFileError, HitListError, ValueError, contract.OutputLocked) as err:
        print(f"python -m pipelines.crawl: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
