"""Crawl the local search engine offline: start it, crawl it with `pipelines.crawl`, stop it.

    python -m pipelines.crawl_local --output runs/crawl/raw [--queries 20 --per-query 8] [crawl flags...]

The engine (`pipelines.local_catalog`) runs on 127.0.0.1 in this process; the crawl is the same
command as against Baidu, with the engine's base URL, an `--allow-host` for it, no rate limit
and short timeouts (its stalled images wait `--stall` seconds). Flags this module does not know go
to `pipelines.crawl` (and from there to Beam), and override the defaults given here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from crawler.local_engine import LocalEngine
from filters import contract
from pipelines import crawl
from pipelines.local_catalog import build_catalog

#: Where crawl_local keeps the engine's port, so that a rerun binds the same one.
PORT_FILE = ".local_engine_port"

#: Flags for a local engine: no politeness needed towards ourselves, and quick timeouts.
LOCAL_DEFAULTS = ("--search-rate", "0", "--search-backoff", "0.2", "--read-timeout", "0.8", "--total-timeout", "2",
                  "--retries", "1", "--backoff", "0.1", "--max-bytes", "2000000", "--per-host-concurrency", "32",
                  "--chunk-size", "5", "--progress-every", "2")


def local_crawl_argv(base_url: str, allow_host: str, queries_file: str, output: str,
                     extra: Sequence[str]) -> list[str]:
    """The pipelines.crawl command line for the local engine (later flags win in argparse)."""
    return ["--queries", queries_file, "--output", output, "--search-base-url", base_url,
            "--allow-host", allow_host, *LOCAL_DEFAULTS, *extra]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.crawl_local",
        description="Start the local Baidu-format engine with synthetic images, crawl it into raw shards "
                    "with pipelines.crawl, and stop it. Unknown flags go to pipelines.crawl and Beam.")
    parser.add_argument("--output", required=True, help="directory for the raw shards")
    parser.add_argument("--queries", type=int, default=20, help="queries in the local catalog (default 20)")
    parser.add_argument("--per-query", type=int, default=8, help="results per query (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stall", type=float, default=3.0,
                        help="seconds a stalled image waits (default 3; the crawl's read timeout here is 0.8)")
    args, extra = parser.parse_known_args(argv)
    local = build_catalog(args.queries, args.per_query, args.seed, stall_s=args.stall)
    contract.makedirs(args.output)
    queries_file = contract.join(args.output, "..", "local_queries.txt")
    with open(queries_file, "w", encoding="utf-8") as handle:
        handle.write("\n".join(local.queries) + "\n")
    engine = start_engine_on_saved_port(local.catalog, args.output)
    try:
        print(f"[crawl] local engine at {engine.base_url}", file=sys.stderr, flush=True)
        return crawl.main(local_crawl_argv(engine.base_url, engine.allow_host, queries_file, args.output, extra))
    finally:
        engine.stop()


def start_engine_on_saved_port(catalog, output: str, log=None) -> LocalEngine:
    """The local engine, bound to the port an earlier run on `output` used (OUTPUT/PORT_FILE).

    The image URLs name the port, and URLs decide what is already crawled: a rerun after a kill
    on a new port would give the finished shards' images new URLs and crawl them again. When the
    saved port is taken, the engine binds a new one and says what that costs."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    port_file = os.path.join(output, PORT_FILE)
    saved = 0
    if os.path.exists(port_file):
        with open(port_file, encoding="utf-8") as handle:
            text = handle.read().strip()
        saved = int(text) if text.isdigit() and 0 < int(text) < 65536 else 0
    try:
        engine = LocalEngine(catalog, port=saved).start()
    except OSError as err:
        engine = LocalEngine(catalog).start()
        log(f"[crawl] warning: port {saved} of the earlier run is taken ({err.strerror or err}); the engine is "
            f"on port {engine.port}, so image URLs differ from the finished shards' and their pairs may be "
            f"crawled again")
    if engine.port != saved:
        contract.write_bytes(port_file, f"{engine.port}\n".encode())
    return engine


if __name__ == "__main__":
    sys.exit(main())
