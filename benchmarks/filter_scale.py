"""Filter scale benchmark: the filter's cost per row, and the peak memory of each of its
processes, as the corpus grows.

    python -m benchmarks.filter_scale --rows 50000 --rows 400000 --rows 1600000 [Beam flags]

- Raw shards are generated for each size: `--duplicate-share` of the rows repeat the URL of an
  earlier row, anywhere in the corpus (so across shards); captions follow a Zipf law (the k-th
  most common of `rows` captions has weight k^-s, so a few are far over the frequency threshold
  and most are rare); 2% failed downloads and 5% images too small. The images come from a pool of
  tiny solid-colour JPEGs, so the shards stay small on disk (Parquet stores each distinct image
  once per row group) while every kept row still pays the full decode.
- Each size runs `python -m pipelines.filter` in a fresh process, with the Beam flags given here
  (so the same command measures the FnApiRunner, its multi-processing mode, or a Flink cluster).
  Wall time covers the whole process; pipeline time is the job's own (start-up excluded); CPU
  time is the process's and its reaped workers', which a machine shared with other jobs disturbs
  less. Peak memory of the driver and of every descendant (the SDK workers of
  `--direct_running_mode=multi_processing`): `/proc/PID/status` VmHWM, polled.
- `--source DIR` times the filter of another source tree on the same shards (an older commit
  unpacked with `git archive`), to compare designs in the same run.

Prints a JSON report (and writes it with --json). docs/benchmarks.md#filter-at-scale has the numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from PIL import Image

from filters import contract
from filters.contract.flags import add_flags, config_values, flag

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAILED_SHARE = 0.02
SMALL_SHARE = 0.05
IMAGE_POOL = 32  # distinct images: colours of a solid 224 x 224 (or a too small 150 x 150) JPEG
COLOURS = ("红色", "绿色", "蓝色", "黄色", "紫色", "橙色", "黑色", "白色")
THINGS = ("圆形", "方块", "三角形", "花朵", "小猫", "汽车", "山峰", "杯子")
PLACES = ("背景上的", "桌面上的", "草地上的", "海边的")


@dataclasses.dataclass(frozen=True)
class ScaleCorpus:
    """The generated corpora; the defaults are issue 12's sizes and shares."""

    rows: tuple[int, ...] = dataclasses.field(default=(50_000, 400_000, 1_600_000), metadata=flag(
        "rows of one corpus to filter", metavar="N"))
    rows_per_shard: int = dataclasses.field(default=10_000, metadata=flag(
        "rows per raw shard (the crawl's URL-list chunk)"))
    duplicate_share: float = dataclasses.field(default=0.25, metadata=flag(
        "share of rows that repeat an earlier row's URL"))
    zipf_exponent: float = dataclasses.field(default=1.1, metadata=flag(
        "s of the caption law: the k-th commonest caption has weight k^-s"))
    seed: int = dataclasses.field(default=0, metadata=flag("random seed of the corpora"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(int(n) for n in self.rows))
        if not self.rows or min(self.rows) <= 0 or self.rows_per_shard <= 0:
            raise ValueError("--rows and --rows-per-shard must be positive")
        if not 0 <= self.duplicate_share < 1 or self.zipf_exponent <= 0:
            raise ValueError("--duplicate-share must be in [0, 1) and --zipf-exponent positive")


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------


def image_pool() -> list[tuple[bytes, int, int]]:
    """(JPEG bytes, width, height) of IMAGE_POOL solid colours; the last few are too small."""
    pool = []
    for i in range(IMAGE_POOL):
        side = 150 if i >= IMAGE_POOL - max(1, round(IMAGE_POOL * SMALL_SHARE)) else 224
        colour = ((i * 53) % 256, (i * 97) % 256, (i * 193) % 256)
        out = io.BytesIO()
        Image.new("RGB", (side, side), colour).save(out, format="JPEG", quality=50)
        pool.append((out.getvalue(), side, side))
    return pool


def caption_of(rank: int) -> str:
    """The caption of Zipf rank `rank`: distinct for each rank, with Chinese words to count."""
    colour, rest = COLOURS[rank % 8], rank // 8
    thing, rest = THINGS[rest % 8], rest // 8
    return f"{PLACES[rest % 4]}{colour}{thing}，第{rest // 4}号作品"


def corpus_columns(rows: int, corpus: ScaleCorpus) -> dict[str, np.ndarray]:
    """Per row: the URL number (a repeat takes an earlier row's), the caption's Zipf rank, the
    image of the pool, and whether its download failed."""
    rng = np.random.default_rng(corpus.seed)
    url = np.arange(rows)
    repeat = rng.random(rows) < corpus.duplicate_share
    repeat[0] = False
    earlier = (rng.random(rows) * np.arange(rows)).astype(np.int64)
    for i in np.flatnonzero(repeat):  # in order, so a repeat of a repeat finds the first URL
        url[i] = url[earlier[i]]
    weights = np.arange(1, rows + 1, dtype=np.float64) ** -corpus.zipf_exponent
    cdf = np.cumsum(weights)
    caption_rank = np.searchsorted(cdf, rng.random(rows) * cdf[-1])
    return {"url": url, "caption_rank": caption_rank, "image": url % IMAGE_POOL,
            "failed": rng.random(rows) < FAILED_SHARE}


def write_corpus(directory: str, rows: int, corpus: ScaleCorpus) -> list[str]:
    """Write the corpus of `rows` rows as raw shards; reused when a finished one is there."""
    done = os.path.join(directory, "_generated.json")
    spec = {"rows": rows, **{k: v for k, v in dataclasses.asdict(corpus).items() if k != "rows"}}
    if os.path.exists(done) and contract.read_json(done) == spec:
        return contract.list_shards(directory)
    shutil.rmtree(directory, ignore_errors=True)
    columns = corpus_columns(rows, corpus)
    pool = image_pool()
    shas = [hashlib.sha256(data).hexdigest() for data, _, _ in pool]
    paths = []
    for start in range(0, rows, corpus.rows_per_shard):
        part = slice(start, min(rows, start + corpus.rows_per_shard))
        urls = [f"https://img{n % 97}.scale.example/p/{n}.jpg" for n in columns["url"][part]]
        captions = [caption_of(int(k)) for k in columns["caption_rank"][part]]
        failed = columns["failed"][part]
        images = [None if bad else pool[i] for i, bad in zip(columns["image"][part], failed)]
        table = pa.table({
            "key": [contract.url_key(u) for u in urls],
            "url": urls,
            "caption": [None] * len(urls),
            "caption_raw": captions,
            "query": [c[:6] for c in captions],
            "rank": np.arange(part.start, part.stop),
            "page_url": [""] * len(urls),
            "image": [None if im is None else im[0] for im in images],
            "width": [None if im is None else im[1] for im in images],
            "height": [None if im is None else im[2] for im in images],
            "image_format": [None if im is None else "JPEG" for im in images],
            "sha256": [None if bad else shas[i] for i, bad in zip(columns["image"][part], failed)],
            "status": ["http_error" if bad else "success" for bad in failed],
            "error_message": ["HTTP 404" if bad else None for bad in failed],
        }, schema=contract.RAW_SCHEMA)
        path = contract.join(directory, contract.shard_name(start // corpus.rows_per_shard))
        contract.write_shard(path, table, contract.RAW_SCHEMA)
        paths.append(path)
    contract.write_json(done, spec)
    return paths


# --------------------------------------------------------------------------------------------
# Measuring a run
# --------------------------------------------------------------------------------------------


def _children() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                    stat = handle.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _peak_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()[:160]
    except OSError:
        return ""


class ProcessTreePeaks:
    """Polls the peak resident memory (VmHWM, which only grows) of a process and every descendant
    of it; a growth in the last poll interval before a process exits is missed."""

    def __init__(self, roots: Sequence[int], interval: float = 0.2):
        self.roots, self.interval = set(roots), interval
        self.peaks: dict[int, int] = {}
        self.commands: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "ProcessTreePeaks":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            parents = _children()
            family, frontier = set(self.roots), set(self.roots)
            while frontier:
                frontier = {pid for pid, parent in parents.items() if parent in frontier} - family
                family |= frontier
            for pid in family:
                peak = _peak_kib(pid)
                if peak is not None:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0))
                    self.commands.setdefault(pid, _command(pid))


def run_filter_process(source: str, raw: str, output: str, beam_args: Sequence[str],
                       watch: Sequence[int] = ()) -> dict:
    """Run `python -m pipelines.filter` of `source` in a fresh process; time it and the memory of
    its process tree and of the `watch` trees (workers it did not start, such as an EXTERNAL
    worker pool)."""
    argv = [sys.executable, "-m", "pipelines.filter", "--input", raw, "--output", output, "--no-word-cloud",
            "--overwrite", *beam_args]
    env = dict(os.environ, PYTHONPATH=source, NO_ALBUMENTATIONS_UPDATE="1")
    log_path = output.rstrip("/") + ".log"
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(argv, cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT)
        with ProcessTreePeaks([process.pid, *watch]) as tree:
            _, status, usage = os.wait4(process.pid, 0)  # usage includes the workers it reaped
    wall = time.monotonic() - started
    with open(log_path, encoding="utf-8") as log:
        text = log.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the filter failed; its log: {log_path}\n{text[-3000:]}")
    pipeline = re.search(r"pairs kept in ([0-9.]+)s", text)
    # The `/bin/sh -c` wrappers that start Beam's SDK workers are not workers.
    workers = [{"pid": pid, "peak_mib": round(kib / 1024, 1), "command": tree.commands[pid]}
               for pid, kib in sorted(tree.peaks.items())
               if pid != process.pid and not tree.commands[pid].startswith("/bin/sh ")]
    return {"wall_s": round(wall, 2), "pipeline_s": float(pipeline.group(1)) if pipeline else None,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "driver_peak_mib": round(tree.peaks.get(process.pid, 0) / 1024, 1), "workers": workers}


def measure(rows: int, corpus: ScaleCorpus, work: str, source: str, beam_args: Sequence[str],
            watch: Sequence[int] = ()) -> dict:
    raw = os.path.join(work, f"raw-{rows}")
    started = time.monotonic()
    write_corpus(raw, rows, corpus)
    generated = time.monotonic() - started
    output = os.path.join(work, f"filtered-{rows}")
    result = run_filter_process(source, raw, output, beam_args, watch)
    funnel = contract.read_json(os.path.join(output, contract.FUNNEL_FILE))
    if funnel["input"] != rows:
        raise RuntimeError(f"the funnel counts {funnel['input']} rows, the corpus has {rows}")
    dropped = {reason: n for stage in funnel["stages"] for reason, n in stage["dropped"].items()}
    seconds = result["pipeline_s"] or result["wall_s"]
    cpu_seconds = result["cpu_s"]
    shutil.rmtree(output, ignore_errors=True)
    return {"rows": rows, "shards": -(-rows // corpus.rows_per_shard), "generate_s": round(generated, 1),
            **result, "us_per_row": round(seconds / rows * 1e6, 1),
            "cpu_us_per_row": round(cpu_seconds / rows * 1e6, 1), "kept": funnel["output"],
            "duplicate_url": dropped.get("duplicate_url", 0), "frequent_caption": dropped.get("frequent_caption", 0),
            "worker_peak_mib": max((w["peak_mib"] for w in result["workers"] if is_sdk_worker(w["command"])),
                                   default=None)}


def is_sdk_worker(command: str) -> bool:
    """A Python SDK harness, the process that runs our DoFns: the runner's multi-processing
    workers (`sdk_worker_main`) and the ones a worker pool starts (`from ...sdk_worker import`);
    not the pool itself, the Java job server, or the pip and sdist runs of job submission."""
    return "sdk_worker" in command and "worker_pool_main" not in command


def summarise(runs: Sequence[dict]) -> dict:
    """Per-row time and worker peak of the largest corpus against the smallest."""
    small, large = min(runs, key=lambda r: r["rows"]), max(runs, key=lambda r: r["rows"])
    summary = {"per_row_ratio": round(large["us_per_row"] / small["us_per_row"], 3),
               "cpu_per_row_ratio": round(large["cpu_us_per_row"] / small["cpu_us_per_row"], 3),
               "driver_peak_ratio": round(large["driver_peak_mib"] / small["driver_peak_mib"], 3)}
    if small["worker_peak_mib"] and large["worker_peak_mib"]:
        summary["worker_peak_ratio"] = round(large["worker_peak_mib"] / small["worker_peak_mib"], 3)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.filter_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, ScaleCorpus)
    parser.add_argument("--work", default=None,
                        help="directory for the raw shards, kept and reused (default: a temporary one, removed)")
    parser.add_argument("--source", default=REPO, help="source tree whose pipelines.filter runs (default: this one)")
    parser.add_argument("--watch", type=int, action="append", default=[], metavar="PID",
                        help="also measure this process and its descendants as workers, e.g. the "
                             "worker_pool_main beside a Flink TaskManager (repeatable)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, beam_args = build_parser().parse_known_args(argv)
    corpus = ScaleCorpus(**config_values(args, ScaleCorpus))
    work = args.work or tempfile.mkdtemp(prefix="filter_scale-")
    try:
        runs = []
        for rows in sorted(corpus.rows):
            runs.append(measure(rows, corpus, work, os.path.abspath(args.source), beam_args, args.watch))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report = {"beam_args": list(beam_args), "source": os.path.abspath(args.source),
              "corpus": dataclasses.asdict(corpus), "runs": runs, **summarise(runs)}
    print(json.dumps(report, indent=2))
    if args.json:
        contract.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
