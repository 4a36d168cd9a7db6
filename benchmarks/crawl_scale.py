"""Crawl scale benchmark: the cost of one chunk as the number of finished chunks grows, for the
crawl as it runs (one Beam job per phase) against a crawl in waves (one job per wave, each
re-reading what is finished), in the same run, on a local engine and its images.

    python -m benchmarks.crawl_scale --at 10,100,400 --window 20

- The engine (`python -m pipelines.local_catalog --no-web-failures --no-blocking`) runs in its own
  process on 127.0.0.1 and serves `max(at) + window` queries, one per chunk, with `--per-query`
  small images each (some URLs shared between queries, so the de-duplication has work).
- Both sides run `python -m pipelines.crawl` with no search rate limit, no robots.txt and no
  download retries (the engine's HTTP 500 images would only add retry waits).
- Ours: one `python -m pipelines.crawl` over all the queries, in a fresh process. Every hit list
  and raw shard is a file whose modification time says when its chunk finished; the cost of a
  chunk at F finished chunks is the time between the F-th and the (F + window)-th file of a
  phase, divided by `window`, for the search phase and for the download phase. The
  time between the phases (the download job's start-up, reading every hit list once, two
  shuffles) is paid once per run, and reported apart.
- Reference, a crawl in waves: for each F, a fresh output holding ours' first F chunks (hit lists,
  raw shards, stats) and a query file of F + window queries; one `python -m pipelines.crawl` run
  crawls the window's chunks, reading every finished hit list to de-duplicate: this is one wave
  of the design that ran one Beam job per wave. Its cost per chunk is the run's time divided by
  `window` (start-up included, as each wave pays it); its time between the phases, which reads
  every finished hit list, is reported for each F.

Prints a JSON report (and writes it with --report). `growth` is the cost per chunk at the largest
F over that at the smallest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import IO

from filters.contract.flags import add_flags, config_values, flag

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    at: str = dataclasses.field(default="10,50,100", metadata=flag(
        "numbers of finished chunks at which the cost per chunk is measured, comma-separated"))
    window: int = dataclasses.field(default=10, metadata=flag(
        "chunks per measurement, and per wave of the reference"))
    per_query: int = dataclasses.field(default=4, metadata=flag("results per query (one query per chunk)"))
    image_size: int = dataclasses.field(default=32, metadata=flag("side of the served images in px"))

    def __post_init__(self):
        if not self.marks or min(self.marks) <= 0:
            raise ValueError("--at needs positive numbers of finished chunks")
        if self.window <= 0 or self.per_query <= 0 or self.image_size <= 0:
            raise ValueError("--window, --per-query and --image-size must be positive")

    @property
    def marks(self) -> tuple[int, ...]:
        try:
            return tuple(sorted({int(part) for part in self.at.split(",") if part.strip()}))
        except ValueError as err:
            raise ValueError(f"--at takes comma-separated integers, not {self.at!r}") from err

    @property
    def chunks(self) -> int:
        return max(self.marks) + self.window


def _env() -> dict[str, str]:
    return dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=REPO)


def start_engine(config: ScaleConfig, queries_file: str, log: IO[bytes]) -> tuple[subprocess.Popen, str]:
    """The local engine in its own process; `chunks - 1` catalog queries plus its no-results query.
    Its stderr goes to `log`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.local_catalog", "--queries", str(config.chunks - 1), "--per-query",
         str(config.per_query), "--size", str(config.image_size), "--no-web-failures", "--no-blocking",
         "--write-queries", queries_file], cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=log, text=True)
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http://"):
        process.kill()
        process.wait()
        process.stdout.close()
        raise RuntimeError(f"the local engine did not start (see {log.name})")
    return process, base_url


def crawl(queries_file: str, output: str, base_url: str) -> float:
    """One `python -m pipelines.crawl` in a fresh process, one query per chunk; its seconds."""
    command = [sys.executable, "-m", "pipelines.crawl", "--queries", queries_file, "--output", output,
               "--search-base-url", base_url, "--allow-host", base_url.removeprefix("http://"),
               "--search-rate", "0", "--chunk-size", "1", "--no-robots", "--retries", "0", "--progress-every", "0"]
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def finish_times(directory: str) -> list[float]:
    """When each `.parquet` file of `directory` was written, in order (seconds)."""
    return sorted(entry.stat().st_mtime_ns / 1e9 for entry in os.scandir(directory)
                  if entry.name.endswith(".parquet") and not entry.name.startswith("."))


def cost_per_chunk(times: Sequence[float], finished: int, window: int) -> float:
    """Seconds per chunk for the `window` chunks that finish after the first `finished`."""
    return (times[finished + window - 1] - times[finished - 1]) / window


def measure_ours(config: ScaleConfig, queries_file: str, output: str, base_url: str) -> dict:
    seconds = crawl(queries_file, output, base_url)
    searched = finish_times(os.path.join(output, "hits"))
    written = finish_times(output)
    if len(searched) != config.chunks or len(written) != config.chunks:
        raise RuntimeError(f"the crawl wrote {len(searched)} hit lists and {len(written)} raw shards, "
                           f"not {config.chunks} of each")
    search = {f: cost_per_chunk(searched, f, config.window) for f in config.marks}
    download = {f: cost_per_chunk(written, f, config.window) for f in config.marks}
    per_chunk = {f: search[f] + download[f] for f in config.marks}
    between = written[0] - searched[-1]
    return {"seconds": round(seconds, 2),
            "between_phases_s": round(between, 3), "between_phases_per_chunk_s": round(between / config.chunks, 4),
            "search_per_chunk_s": _rounded(search), "download_per_chunk_s": _rounded(download),
            "per_chunk_s": _rounded(per_chunk), "growth": _growth(per_chunk)}


def _first_chunks(source: str, target: str, finished: int) -> None:
    """Copy the first `finished` chunks' hit lists, raw shards and stats from `source`."""
    names = sorted(n.removesuffix(".parquet") for n in os.listdir(os.path.join(source, "hits"))
                   if n.endswith(".parquet") and not n.startswith("."))[:finished]
    for sub in ("hits", "stats"):
        os.makedirs(os.path.join(target, sub), exist_ok=True)
    for name in names:
        shutil.copy2(os.path.join(source, "hits", name + ".parquet"), os.path.join(target, "hits"))
        shutil.copy2(os.path.join(source, name + ".parquet"), target)
        shutil.copy2(os.path.join(source, "stats", name + ".json"), os.path.join(target, "stats"))


def measure_waves(config: ScaleConfig, queries: Sequence[str], ours: str, workdir: str, base_url: str) -> dict:
    per_chunk, between = {}, {}
    for finished in config.marks:
        output = os.path.join(workdir, f"wave-after-{finished}")
        _first_chunks(ours, output, finished)
        queries_file = os.path.join(workdir, f"queries-{finished}.txt")
        with open(queries_file, "w", encoding="utf-8") as handle:
            handle.write("\n".join(queries[:finished + config.window]) + "\n")
        per_chunk[finished] = crawl(queries_file, output, base_url) / config.window
        written = finish_times(output)  # the copies keep ours' times, so this wave's files come last
        if len(written) != finished + config.window:
            raise RuntimeError(f"the wave after {finished} chunks did not write its {config.window} shards")
        between[finished] = written[finished] - finish_times(os.path.join(output, "hits"))[-1]
    return {"per_chunk_s": _rounded(per_chunk), "growth": _growth(per_chunk), "between_phases_s": _rounded(between)}


def _rounded(values: dict[int, float]) -> dict[str, float]:
    return {str(k): round(v, 4) for k, v in values.items()}


def _growth(values: dict[int, float]) -> float:
    return round(values[max(values)] / values[min(values)], 3)


def benchmark(config: ScaleConfig, workdir: str) -> dict:
    queries_file = os.path.join(workdir, "queries.txt")
    with open(os.path.join(workdir, "engine.log"), "wb") as log:
        return _benchmark(config, workdir, queries_file, *start_engine(config, queries_file, log))


def _benchmark(config: ScaleConfig, workdir: str, queries_file: str, engine: subprocess.Popen, base_url: str) -> dict:
    try:
        with open(queries_file, encoding="utf-8") as handle:
            queries = handle.read().splitlines()
        ours_dir = os.path.join(workdir, "ours")
        ours = measure_ours(config, queries_file, ours_dir, base_url)
        waves = measure_waves(config, queries, ours_dir, workdir, base_url)
    finally:
        engine.kill()
        engine.wait()
        engine.stdout.close()
    return {"chunks": config.chunks, "window": config.window, "per_query": config.per_query,
            "finished_at": list(config.marks), "cpus": os.cpu_count(), "ours": ours, "waves": waves}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crawl_scale", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, ScaleConfig)
    parser.add_argument("--workdir", help="keep the outputs here (default: a temporary directory)")
    parser.add_argument("--report", help="also write the JSON report to this file")
    args = parser.parse_args(argv)
    try:
        config = ScaleConfig(**config_values(args, ScaleConfig))
    except ValueError as err:
        parser.error(str(err))
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        report = benchmark(config, args.workdir)
    else:
        with tempfile.TemporaryDirectory() as workdir:
            report = benchmark(config, workdir)
    text = json.dumps(report, indent=1)
    print(text)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
