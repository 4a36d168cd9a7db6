"""Helpers of the crawl tests: a catalog served by the local engine, the crawl's argv against it,
and readers of what the crawl wrote."""

from __future__ import annotations

import contextlib

import pyarrow as pa

from crawler.local_engine import LocalEngine
from filters import contract
from pipelines.local_catalog import build_catalog


@contextlib.contextmanager
def running_catalog(**kw):
    """(catalog, engine): `build_catalog(**kw)` served on 127.0.0.1 for the block's duration."""
    catalog = build_catalog(**kw)
    engine = LocalEngine(catalog.catalog).start()
    try:
        yield catalog, engine
    finally:
        engine.stop()


def crawl_argv(local, tmp_path, *extra, chunk_size=3):
    catalog, engine = local
    tmp_path.mkdir(parents=True, exist_ok=True)
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(catalog.queries) + "\n", encoding="utf-8")
    return ["--queries", str(queries), "--output", str(tmp_path / "raw"), "--search-base-url", engine.base_url,
            "--allow-host", engine.allow_host, "--search-rate", "0", "--search-backoff", "0.01",
            "--search-retries", "1", "--read-timeout", "1", "--total-timeout", "2", "--retries", "1",
            "--backoff", "0.01", "--max-bytes", "1000000", "--per-host-concurrency", "32",
            "--chunk-size", str(chunk_size), "--progress-every", "0", *extra]


def read_raw(output) -> pa.Table:
    shards = contract.list_shards(str(output))
    return pa.concat_tables([contract.read_shard(p, contract.RAW_SCHEMA) for p in shards])


def image_path(url: str) -> str:
    return url.split("/img/", 1)[1].removeprefix("private/")


def expected_paths(catalog) -> dict[str, str]:
    """path -> the first query (in crawl order) that finds it, skipping the always-blocked query."""
    blocked = {q for q, mode in catalog.catalog.search_modes.items() if mode == "blocked"}
    first = {}
    for query in catalog.queries:
        if query in blocked:
            continue
        for entry in catalog.catalog.results[query]:
            first.setdefault(entry.path, query)
    return first
