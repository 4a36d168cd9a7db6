"""A catalog for the local search engine, built from the synthetic generator, and its CLI.

The images show what their captions say (`pipelines.synthetic`), and the captions break each filter
rule in the generator's proportions, so a crawl of this engine feeds the filter stage everything
it must handle. On top, clean pairs get the web's failure modes (slow, stalled, 404/500, flaky 503,
noai, redirects, a redirect to 169.254.169.254, HTML, an oversized body, robots.txt), and two
queries are answered with Baidu's anti-spider page (one only at first, one always).

    python -m pipelines.local_catalog --port 8123 --queries 20 --write-queries runs/local/queries.txt

prints the engine's base URL on stdout and serves until interrupted; crawl it with

    python -m pipelines.crawl --queries runs/local/queries.txt --output runs/local/raw \\
        --search-base-url http://127.0.0.1:8123 --allow-host 127.0.0.1:8123 --search-rate 0
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import random
import sys
from collections.abc import Sequence

from crawler.local_engine import Catalog, CatalogEntry, LocalEngine, image_url_path
from filters import contract
from pipelines.synthetic import COLOURS, SHAPES, Scene, SyntheticPair, draw_scene, encode_image, generate_pairs

QUERY_SUFFIXES = ("", "图片", "素材", "壁纸", "大全", "高清")
NO_RESULTS_QUERY = "不存在的图片"
UNSAFE_TARGET = "http://169.254.169.254/latest/meta-data/"
#: Web failures given to clean pairs, by their ordinal among clean pairs modulo 40 (so 12 clean
#: pairs already meet every one): behaviour, and the status the crawl must record.
WEB_BEHAVIOURS = {
    1: ("slow", "success"), 2: ("404", "http_error"), 3: ("500", "http_error"),
    4: ("flaky", "success"), 5: ("noai", "noai"), 6: ("redirect", "success"),
    7: ("redirect_unsafe", "unsafe_destination"), 8: ("html", "not_an_image"),
    9: ("too_large", "too_large"), 10: ("robots", "robots_disallowed"), 11: ("stall", "timeout"),
}
_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclasses.dataclass(frozen=True)
class LocalCatalog:
    """The catalog, the query list to crawl it with (in order), and the download status each
    image path should end with (for tests)."""

    catalog: Catalog
    queries: tuple[str, ...]
    expected_status: dict[str, str]
    pairs: tuple[SyntheticPair, ...]


def query_names(n: int) -> list[str]:
    names = [f"{colour}{shape}{suffix}" for suffix in QUERY_SUFFIXES for colour in COLOURS for shape in SHAPES]
    names += [f"{colour}{shape}{i}" for i in range(n) for colour in COLOURS for shape in SHAPES]
    return names[:n]


def _path_of(pair: SyntheticPair) -> str:
    return pair.url.rpartition("/")[2]


def build_catalog(n_queries: int = 20, per_query: int = 8, seed: int = 0, web_failures: bool = True,
                  blocking: bool = True, size: int = 256, large_bytes: int = 4 * 1024 * 1024,
                  stall_s: float = 30.0) -> LocalCatalog:
    """n_queries x per_query synthetic pairs, dealt to the queries in turn (query i gets pairs
    i, i + n, ...). With `blocking` (and at least 4 queries) the second query is blocked at its
    first request and the last is always blocked; a query without results is appended."""
    if n_queries <= 0 or per_query <= 0:
        raise ValueError("n_queries and per_query must be positive")
    pairs = generate_pairs(n_queries * per_query, seed=seed, size=size)
    names = query_names(n_queries)
    results: dict[str, list[CatalogEntry]] = {name: [] for name in names}
    hidden: list[CatalogEntry] = []
    expected: dict[str, str] = {}
    clean = 0
    by_path: dict[str, CatalogEntry] = {}
    for pair in pairs:
        if _path_of(pair) in by_path:  # a duplicate URL is the same entry (same behaviour) again
            results[names[pair.index % n_queries]].append(by_path[_path_of(pair)])
            continue
        entry, extra, status = _entry_for(pair, clean if web_failures else None)
        clean += pair.expected_reason is None and pair.status == contract.DownloadStatus.SUCCESS
        results[names[pair.index % n_queries]].append(entry)
        by_path[entry.path] = entry
        hidden += extra
        expected[entry.path] = status
    results[NO_RESULTS_QUERY] = []
    modes = {}
    if blocking and n_queries >= 4:
        modes = {names[1]: "blocked_first", names[-1]: "blocked"}
    catalog = Catalog(results=results, search_modes=modes, hidden=hidden, large_bytes=large_bytes,
                      stall_s=stall_s)
    return LocalCatalog(catalog, tuple(names) + (NO_RESULTS_QUERY,), expected, tuple(pairs))


def _entry_for(pair: SyntheticPair, clean_ordinal: int | None) -> tuple[CatalogEntry, list[CatalogEntry], str]:
    """The pair's entry, hidden entries it needs and the status its download should end with;
    `clean_ordinal` picks a web behaviour for clean pairs (None: no web failures)."""
    path = _path_of(pair)
    content_type = _CONTENT_TYPES.get(pair.image_format or "", "image/jpeg")
    base = dict(path=path, caption=pair.caption, image=pair.image or b"", content_type=content_type,
                width=pair.width, height=pair.height)
    if pair.status != contract.DownloadStatus.SUCCESS:  # the generator's download failures: 404 or 500
        behaviour = "404" if pair.index % 2 == 0 else "500"
        return CatalogEntry(**base, behaviour=behaviour), [], "http_error"
    if clean_ordinal is None or pair.expected_reason is not None:
        # pairs that test a filter rule download fine, so the filter sees every rule broken
        return CatalogEntry(**base), [], contract.DownloadStatus.SUCCESS
    behaviour, status = WEB_BEHAVIOURS.get(clean_ordinal % 40, ("ok", contract.DownloadStatus.SUCCESS))
    if behaviour == "redirect":
        target = CatalogEntry(**{**base, "path": f"moved/{path}"})
        return CatalogEntry(**base, behaviour="redirect", redirect_to=target.path), [target], status
    if behaviour == "redirect_unsafe":
        return CatalogEntry(**base, behaviour="redirect_unsafe", redirect_to=UNSAFE_TARGET), [], status
    return CatalogEntry(**base, behaviour=behaviour), [], status


# --------------------------------------------------------------------------------------------
# A URL-list catalog for the download benchmark
# --------------------------------------------------------------------------------------------

#: Image sizes the benchmark's images cycle through: most pass the paper's image rule,
#: some are too small and some too wide.
BENCHMARK_SIZES = ((320, 240), (256, 256), (640, 480), (500, 375), (150, 150), (800, 250), (201, 201), (300, 900))


def benchmark_catalog(n_images: int, distinct: int = 64, seed: int = 0) -> tuple[Catalog, list[tuple[str, str]]]:
    """n_images image URLs (all "ok"), cycling through `distinct` generated images of
    BENCHMARK_SIZES; returns the catalog and (URL path, caption) rows for a URL list."""
    rng = random.Random(seed)
    images = []
    for i in range(distinct):
        width, height = BENCHMARK_SIZES[i % len(BENCHMARK_SIZES)]
        scene = Scene(colour=rng.choice(list(COLOURS)), shape=rng.choice(SHAPES), count=1 + i % 4,
                      background="灰色")
        images.append(encode_image(draw_scene(scene, width, height, rng), "JPEG"))
    entries = [CatalogEntry(path=f"{i:07d}.jpg", caption=f"第{i}张图片", image=images[i % distinct])
               for i in range(n_images)]
    return Catalog(results={"benchmark": entries}), [(image_url_path(e), e.caption) for e in entries]


def write_url_list(path: str, base_url: str, rows: Sequence[tuple[str, str]]) -> None:
    """A url,caption CSV (the Wukong release's layout) of (URL path, caption) rows."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "caption"])
        for image_path, caption in rows:
            writer.writerow([base_url + image_path, caption])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.local_catalog",
        description="Serve a local Baidu-format image search engine on 127.0.0.1 with synthetic images "
                    "whose captions exercise every filter rule; prints its base URL, then serves until "
                    "interrupted (Ctrl-C).")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--queries", type=int, default=20, help="number of queries (default 20)")
    parser.add_argument("--per-query", type=int, default=8, help="results per query (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256, help="side of a clean image in px")
    parser.add_argument("--no-web-failures", action="store_true",
                        help="serve every image normally (no 404/slow/noai/... behaviours)")
    parser.add_argument("--no-blocking", action="store_true", help="never answer with the anti-spider page")
    parser.add_argument("--stall", type=float, default=30.0, help="seconds a stalled image waits (default 30)")
    parser.add_argument("--write-queries", help="write the query list (UTF-8, one per line) here")
    parser.add_argument("--benchmark-images", type=int, default=0,
                        help="instead: serve N plain images for the download benchmark")
    parser.add_argument("--write-url-list", help="write a url,caption CSV of the served images here")
    args = parser.parse_args(argv)

    if args.benchmark_images:
        catalog, rows = benchmark_catalog(args.benchmark_images)
        queries: Sequence[str] = ()
    else:
        local = build_catalog(args.queries, args.per_query, args.seed, web_failures=not args.no_web_failures,
                              blocking=not args.no_blocking, size=args.size, stall_s=args.stall)
        catalog, queries = local.catalog, local.queries
        rows = [(image_url_path(e), e.caption) for es in catalog.results.values() for e in es]
    if args.write_queries:
        with open(args.write_queries, "w", encoding="utf-8") as handle:
            handle.write("\n".join(queries) + "\n")

    def ready(engine: LocalEngine) -> None:
        if args.write_url_list:
            write_url_list(args.write_url_list, engine.base_url, rows)
        print(engine.base_url, flush=True)

    LocalEngine(catalog, port=args.port).serve_forever(on_ready=ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
