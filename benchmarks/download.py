"""Download benchmark: our crawl in `--url-list` mode + the paper's image rule, against img2dataset,
on the same list of URLs served by a local engine, in the same run.

    NO_ALBUMENTATIONS_UPDATE=1 .venv/bin/python -m benchmarks.download --images 10000 --concurrency 64

- The engine (`python -m pipelines.local_catalog --benchmark-images N`) runs in its own process
  and serves N JPEGs (sizes cycle through `BENCHMARK_SIZES`: most pass the image rule, some are
  too small or too wide) from memory on 127.0.0.1.
- Ours: `python -m pipelines.crawl --url-list urls.csv` (a fresh process, so start-up counts),
  then the paper's image rule (`filters.image.check_image`, both sides > 200 px, long/short <= 3)
  on the widths and heights it wrote; the timer stops when the kept count is known.
- img2dataset (the `img2dataset` command): resize_mode=no, skip_reencode=True, min_image_size=201,
  max_aspect_ratio=3, parquet output; it decodes every image to learn its size.
- Same total concurrency on both sides (ours: `--concurrency` per process; img2dataset:
  processes_count x thread_count), no politeness delay or per-host limit for the single local host,
  no retries. Both must keep the same number of images.

Prints a JSON report (and writes it with --report).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import pyarrow.parquet as pq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from filters.image import check_image


def _env() -> dict[str, str]:
    bin_dir = os.path.dirname(sys.executable)
    return dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=REPO,
                PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))


def start_engine(images: int, url_list: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "pipelines.local_catalog", "--benchmark-images", str(images),
                                "--write-url-list", url_list], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http://"):
        process.kill()
        raise RuntimeError("the local engine did not start")
    return process, base_url


def run_ours(url_list: str, output: str, base_url: str, concurrency: int, workers: int, images: int) -> dict:
    """Our crawl, then the image rule on its output; timed together."""
    host = base_url.removeprefix("http://")
    per_process = max(1, concurrency // workers)
    command = [sys.executable, "-m", "pipelines.crawl", "--url-list", url_list, "--output", output,
               "--allow-host", host, "--concurrency", str(per_process), "--per-host-concurrency", str(per_process),
               "--retries", "0", "--no-robots", "--chunk-size", str(-(-images // workers)),
               "--download-batch", "512", "--progress-every", "0"]
    if workers > 1:
        command += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    downloaded = kept = 0
    for path in sorted(glob.glob(os.path.join(output, "*.parquet"))):
        table = pq.read_table(path, columns=["status", "width", "height"])
        for status, width, height in zip(*(table.column(c).to_pylist() for c in ("status", "width", "height"))):
            if status == "success":
                downloaded += 1
                kept += check_image(width, height) is None
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "downloaded": downloaded, "kept": kept}


def run_img2dataset(url_list: str, output: str, concurrency: int, processes: int) -> dict:
    threads = max(1, concurrency // processes)
    command = ["img2dataset", "--url_list", url_list, "--input_format", "csv", "--url_col", "url",
               "--caption_col", "caption", "--output_format", "parquet", "--output_folder", output,
               "--processes_count", str(processes), "--thread_count", str(threads), "--resize_mode", "no",
               "--skip_reencode", "True", "--min_image_size", "201", "--max_aspect_ratio", "3",
               "--retries", "0", "--timeout", "10", "--enable_wandb", "False",
               "--number_sample_per_shard", "2000", "--distributor", "multiprocessing"]
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    kept = 0
    for path in glob.glob(os.path.join(output, "*.parquet")):
        table = pq.read_table(path, columns=["status"])
        kept += sum(1 for s in table.column("status").to_pylist() if s == "success")
    return {"seconds": round(seconds, 2), "kept": kept}


def benchmark(images: int, concurrency: int, workers: int, workdir: str) -> dict:
    url_list = os.path.join(workdir, "urls.csv")
    engine, base_url = start_engine(images, url_list)
    try:
        ours = run_ours(url_list, os.path.join(workdir, "ours"), base_url, concurrency, workers, images)
        theirs = run_img2dataset(url_list, os.path.join(workdir, "img2dataset"), concurrency, workers)
    finally:
        engine.kill()
        engine.wait()
    ours["urls_per_s"] = round(images / ours["seconds"], 1)
    theirs["urls_per_s"] = round(images / theirs["seconds"], 1)
    return {"images": images, "concurrency": concurrency, "processes": workers, "cpus": os.cpu_count(),
            "ours": ours, "img2dataset": theirs, "speedup": round(theirs["seconds"] / ours["seconds"], 2),
            "same_kept": ours["kept"] == theirs["kept"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.download", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000, help="URLs in the list (default 10000)")
    parser.add_argument("--concurrency", type=int, default=64, help="downloads in flight in total, each side")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes on each side (ours: Beam workers; img2dataset: processes_count)")
    parser.add_argument("--workdir", help="keep the outputs here (default: a temporary directory)")
    parser.add_argument("--report", help="also write the JSON report to this file")
    args = parser.parse_args(argv)
    if args.images <= 0 or args.concurrency <= 0 or args.workers <= 0:
        parser.error("--images, --concurrency and --workers must be positive")
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        report = benchmark(args.images, args.concurrency, args.workers, args.workdir)
    else:
        with tempfile.TemporaryDirectory() as workdir:
            report = benchmark(args.images, args.concurrency, args.workers, workdir)
    text = json.dumps(report, indent=1)
    print(text)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0 if report["same_kept"] else 1


if __name__ == "__main__":
    sys.exit(main())
