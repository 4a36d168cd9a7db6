"""The training methods side by side on the demo's data: held-out retrieval, speed and memory.

Rows (same steps, global batch and seed for each; the demo's tiny model and settings):

    global                  Wukong's InfoNCE, global similarity (today's demo)
    token-wise              FILIP's token-wise similarity
    siglip                  SigLIP's pairwise sigmoid loss
    moco                    BriVL's momentum encoders and queues
    ranking                 global + R2D2's ranking head, dual-encoder scores
    ranking-rerank          the same checkpoint, top-k re-ranked by the head
    ranking-distill         global + ranking head + R2D2's distillation (target and feature)
    ranking-distill-rerank  the same checkpoint, re-ranked

The data is the demo's split (`runs/demo/split/{train,test}`, made by `make demo`; its crawl, filter
and split stages run here when it is missing). The locked tower runs once over the training split
into a feature cache (`training.cache_features`, one un-augmented view: the demo trains without
augmentation too), so that every row spends its time on its own method; the held-out images go
through the tower at evaluation. Each training and evaluation is the user's command, run as a
subprocess: samples/s is steps x batch over the training command's wall time (start-up included),
peak memory the training process's maximum resident set size.

    python -m benchmarks.methods [--demo runs/demo] [--output runs/bench-methods] [--steps N] [--rows ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from filters import contract
from filters.contract.flags import add_flags, config_values, flag
from pipelines.demo import DemoConfig, run_stage, stages

_DEMO = DemoConfig()
#: The tiny tower's 96 px input gives a 3 x 3 grid of patch tokens: the ranking head reads all 9.
TOKENS = 9


@dataclasses.dataclass(frozen=True)
class MethodsBenchConfig:
    """The demo's training settings, the same for every row."""

    demo: str = dataclasses.field(default="runs/demo", metadata=flag(
        "demo output whose split/train and split/test are used (made here when missing)"))
    output: str = dataclasses.field(default="runs/bench-methods", metadata=flag("work directory and methods.json"))
    steps: int = dataclasses.field(default=_DEMO.train_steps, metadata=flag("optimiser steps per row"))
    global_batch: int = dataclasses.field(default=_DEMO.global_batch, metadata=flag("pairs per step"))
    warmup_steps: int = dataclasses.field(default=_DEMO.warmup_steps, metadata=flag("linear warm-up steps"))
    seed: int = dataclasses.field(default=_DEMO.seed, metadata=flag("seed of every row"))
    image_size: int = dataclasses.field(default=_DEMO.image_size, metadata=flag("image tower input, px"))
    # R2D2 re-ranks 64 to 128 of galleries of 5K to 30K; the demo's test gallery holds about 300 images
    rerank_top_k: int = dataclasses.field(default=16, metadata=flag("candidates re-ranked per query"))
    queue_size: int = dataclasses.field(default=0, metadata=flag(
        "queue size of moco and the distillation teacher (0: the trainer's default)"))


#: row -> (training flags, re-rank?)
ROWS: dict[str, tuple[tuple[str, ...], bool]] = {
    "global": ((), False),
    "token-wise": (("--similarity", "token_wise"), False),
    "siglip": (("--loss", "siglip"), False),
    "moco": (("--loss", "moco"), False),
    "ranking": (("--ranking-head",), False),
    "ranking-rerank": (("--ranking-head",), True),
    "ranking-distill": (("--ranking-head", "--distill", "both"), False),
    "ranking-distill-rerank": (("--ranking-head", "--distill", "both"), True),
}


def _python(*argv: str, env: dict[str, str]) -> tuple[float, int]:
    """Run `python -m ...`; returns (seconds, peak RSS in MiB). Raises on a failure."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", *argv], env=env)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"python -m {' '.join(argv)} failed with exit {process.returncode}")
    return seconds, usage.ru_maxrss // 1024


def demo_split(config: MethodsBenchConfig, env: dict[str, str]) -> tuple[str, str]:
    """split/train and split/test of the demo output, made with the demo's own stages when missing."""
    split = os.path.join(config.demo, "split")
    if not os.path.exists(os.path.join(split, "split.json")):
        plan = stages(DemoConfig(seed=config.seed), config.demo)[:3]  # crawl, filter, split
        os.makedirs(config.demo, exist_ok=True)
        for index, stage in enumerate(plan, 1):
            run_stage(index, len(plan), stage, env)
    return os.path.join(split, "train"), os.path.join(split, "test")


def train_flags(config: MethodsBenchConfig, cache: str, out: str, method: Sequence[str]) -> list[str]:
    flags = ["training.train", "--cache", cache, "--output", out, "--tiny", "--image-size", str(config.image_size),
             "--image-token-pool", str(TOKENS), "--no-augment", "--steps", str(config.steps),
             "--global-batch", str(config.global_batch), "--warmup-steps", str(config.warmup_steps),
             "--seed", str(config.seed), "--workers", "1", "--log-every", "25", "--save-every", str(config.steps),
             *method]
    if config.queue_size and ("moco" in method or "--distill" in method):
        flags += ["--queue-size", str(config.queue_size)]
    return flags


def summarise(metrics: dict[str, float]) -> dict[str, float]:
    """R@K averaged over both directions, and MR."""
    out = {f"R@{k}": round((metrics[f"i2t_R@{k}"] + metrics[f"t2i_R@{k}"]) / 2, 2) for k in (1, 5, 10)}
    out["MR"] = round(metrics["MR"], 2)
    return out


def run(config: MethodsBenchConfig, rows: Sequence[str]) -> dict:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    train_dir, test_dir = demo_split(config, env)
    cache = os.path.join(config.output, "cache")
    if not os.path.exists(os.path.join(cache, "cache.json")):
        _python("training.cache_features", "--data", train_dir, "--output", cache, "--image-tower", "resnet18",
                "--no-pretrained", "--image-size", str(config.image_size), "--token-pool", str(TOKENS),
                "--precision", "fp32", "--seed", str(config.seed), "--device", "cpu", env=env)
    trained: dict[tuple[str, ...], dict] = {}
    table = []
    for name in rows:
        method, rerank = ROWS[name]
        key = "-".join(a.lstrip("-") for a in method) or "global"
        out = os.path.join(config.output, key)
        if method not in trained:
            seconds, peak = _python(*train_flags(config, cache, out, method), env=env)
            trained[method] = {"seconds": round(seconds, 1), "peak_rss_mib": peak,
                               "samples_per_s": round(config.steps * config.global_batch / seconds, 1)}
        result_path = os.path.join(config.output, f"{name}.eval.json")
        evaluate = ["training.evaluate", "retrieval", "--checkpoint", out, "--layout", "shards", "--data", test_dir,
                    "--output", result_path, "--workers", "1", "--no-cache", "--device", "cpu"]
        if rerank:
            evaluate += ["--rerank-top-k", str(config.rerank_top_k)]
        _python(*evaluate, env=env)
        result = contract.read_json(result_path)
        row = {"row": name, "train_flags": list(method), **trained[method],
               **summarise(result["reranked"]["metrics"] if rerank else result["metrics"])}
        if rerank:
            row.update(rerank_top_k=config.rerank_top_k, pairs_scored=result["reranked"]["pairs_scored"],
                       rerank_seconds=result["reranked"]["seconds"])
        row["chance_R@1"] = round((result["chance"]["i2t_R@1"] + result["chance"]["t2i_R@1"]) / 2, 2)
        table.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    report = {"config": dataclasses.asdict(config), "test_images": result["n_images"], "test_texts": result["n_texts"],
              "rows": table}
    contract.write_json(os.path.join(config.output, "methods.json"), report, indent=2)
    return report


def markdown(report: dict) -> str:
    lines = ["| method | R@1 | R@5 | R@10 | MR | samples/s | peak RSS MiB | re-rank cost |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        cost = f"{r['pairs_scored']} pairs, {r['rerank_seconds']:.1f} s" if "pairs_scored" in r else ""
        lines.append(f"| {r['row']} | {r['R@1']:.2f} | {r['R@5']:.2f} | {r['R@10']:.2f} | {r['MR']:.2f} | "
                     f"{r['samples_per_s']:.1f} | {r['peak_rss_mib']} | {cost} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.methods", description=__doc__.split("\n\n")[0])
    add_flags(parser, MethodsBenchConfig)
    parser.add_argument("--rows", nargs="+", choices=tuple(ROWS), default=list(ROWS), help="rows to run (default: all)")
    args = parser.parse_args(argv)
    config = MethodsBenchConfig(**config_values(args, MethodsBenchConfig))
    report = run(config, args.rows)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
