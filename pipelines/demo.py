"""The whole pipeline offline, in one command: crawl, filter, split, train, evaluate, report.

    python -m pipelines.demo --output runs/demo          (what `make demo` runs)

1. crawl   the local Baidu-format engine (`pipelines.crawl_local`: the real Baidu client and
           downloader against 127.0.0.1, with the web's failure modes) into `raw/`;
2. filter  with the paper's rules into `clean/`, `rejects/`, `funnel.json`, `stats.json` and
           `wordcloud.png` (`pipelines.filter`);
3. split   `clean/` by image sha256 into `split/train` and `split/test` (`pipelines.split`);
4. train   a small LiT model on CPU on `split/train` into `train/` (`training.train`);
5. eval    retrieval R@1/5/10 and MR on the held-out `split/test` into `eval.json`, with the chance
           level of every metric (`training.evaluate retrieval`);
6. report  the dataset report of the filter output into `report/index.html` (`pipelines.report`).

Each stage is the same command a user runs at full scale, started as a subprocess and printed
first, so its output is the progress shown. A rerun after a kill or a failure continues: finished
stages are skipped, and the crawl, filter, split and training resume their own partial work.
`--fresh` starts over.

The demo's images show what their captions say (colours, shapes, counts, backgrounds), and no
weights can be downloaded offline, so the locked image tower is a random resnet18: its features
keep colour and shape well enough for retrieval far above chance. AutoAugment is off in the demo
because its colour operations (solarize, posterize, invert...) contradict captions about colour.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from filters import contract

DEMO_CONFIG_FILE = "demo.json"
EVAL_FILE = "eval.json"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes chosen so the demo runs in about five minutes on two CPU cores."""

    queries: int = 400  # local engine queries (~10% of results are duplicates or web failures)
    per_query: int = 10
    seed: int = 0
    test_share: float = 0.15  # of the clean images, held out for evaluation
    train_steps: int = 500
    global_batch: int = 64
    warmup_steps: int = 25
    image_size: int = 96  # a random resnet18 keeps colour and shape at 96 px
    # A CPU without native bf16 (no AVX512-BF16 or AMX) runs bf16 convolutions far slower than fp32:
    # resnet18 on 64 images of 96 px took 8.7 s in bf16 and 0.37 s in fp32 on a 2-core AMD EPYC.
    precision: str = "fp32"

#: The demo fails when its held-out R@1 is below this multiple of chance.
MIN_R1_OVER_CHANCE = 5.0


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    argv: tuple[str, ...]  # after `python -m`
    done: Callable[[], bool]  # the stage's final output is there


def stages(config: DemoConfig, out: str) -> list[Stage]:
    """The six stages, each a `python -m` command line, and how to tell it finished."""
    raw, split, train = (os.path.join(out, name) for name in ("raw", "split", "train"))
    return [
        Stage("crawl", ("pipelines.crawl_local", "--output", raw, "--queries", str(config.queries),
                        "--per-query", str(config.per_query), "--seed", str(config.seed)),
              lambda: os.path.exists(os.path.join(raw, "crawl_summary.json"))),
        Stage("filter", ("pipelines.filter", "--input", raw, "--output", out),
              lambda: os.path.exists(os.path.join(out, contract.FUNNEL_FILE))),
        Stage("split", ("pipelines.split", "--input", os.path.join(out, contract.CLEAN_DIR), "--output", split,
                        "--test-share", str(config.test_share), "--seed", str(config.seed)),
              lambda: os.path.exists(os.path.join(split, "split.json"))),
        Stage("train", ("training.train", "--data", os.path.join(split, "train"), "--output", train,
                        "--tiny", "--image-size", str(config.image_size), "--no-augment", "--precision", config.precision,
                        "--steps", str(config.train_steps), "--global-batch", str(config.global_batch),
                        "--warmup-steps", str(config.warmup_steps), "--seed", str(config.seed),
                        "--workers", "1", "--log-every", "25", "--save-every", "100", "--resume", "latest"),
              lambda: os.path.exists(os.path.join(train, contract.CHECKPOINT_DIR,
                                                  contract.step_checkpoint_name(config.train_steps)))),
        Stage("eval", ("training.evaluate", "retrieval", "--checkpoint", train, "--layout", "shards",
                       "--data", os.path.join(split, "test"), "--output", os.path.join(out, EVAL_FILE),
                       "--workers", "1"),
              lambda: os.path.exists(os.path.join(out, EVAL_FILE))),
        Stage("report", ("pipelines.report", "--input", out, "--output", os.path.join(out, "report")),
              lambda: os.path.exists(os.path.join(out, "report", "index.html"))),
    ]


class DemoError(RuntimeError):
    """A stage failed or the demo's outputs are not what they must be."""


def log(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def prepare(out: str, config: DemoConfig, fresh: bool) -> None:
    """Create `out`, or check that the run already there used the same settings."""
    path = os.path.join(out, DEMO_CONFIG_FILE)
    wanted = dataclasses.asdict(config)
    if fresh and os.path.exists(out):
        log(f"--fresh: removing {out}")
        shutil.rmtree(out)
    if os.path.exists(path):
        previous = contract.read_json(path)
        if previous != wanted:
            changed = sorted(k for k in wanted if previous.get(k) != wanted[k])
            raise DemoError(f"{out} holds a demo run with other settings ({', '.join(changed)}); "
                            "rerun with --fresh to start over, or pick another --output")
    os.makedirs(out, exist_ok=True)
    contract.write_json(path, wanted, indent=2)


def run_stage(index: int, total: int, stage: Stage, env: dict[str, str]) -> float:
    """Run one stage as a subprocess (its output goes straight through); returns its seconds."""
    if stage.done():
        log(f"{index}/{total} {stage.name}: done in an earlier run, skipped")
        return 0.0
    command = [sys.executable, "-m", *stage.argv]
    log(f"{index}/{total} {stage.name}: python -m {' '.join(stage.argv)}")
    started = time.perf_counter()
    code = subprocess.run(command, env=env, check=False).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        raise DemoError(f"stage {stage.name} failed (exit {code}) after {seconds:.0f}s; its finished work is kept: "
                        "fix the cause and rerun the same command to continue")
    if not stage.done():
        raise DemoError(f"stage {stage.name} exited 0 but its output is missing")
    log(f"{index}/{total} {stage.name}: done in {seconds:.0f}s")
    return seconds


def shared_images(train_dir: str, test_dir: str) -> int:
    """Images (by sha256) on both sides of the split."""
    def hashes(directory: str) -> set[str]:
        found: set[str] = set()
        for path in contract.list_shards(directory):
            found.update(contract.read_shard(path, contract.CLEAN_SCHEMA, columns=["sha256"]).column(0).to_pylist())
        return found

    return len(hashes(train_dir) & hashes(test_dir))


def annotate_eval(out: str) -> dict:
    """Add the held-out split and R@1 over chance to eval.json (atomically) and return it."""
    eval_path, split_dir = os.path.join(out, EVAL_FILE), os.path.join(out, "split")
    result = contract.read_json(eval_path)
    split = contract.read_json(os.path.join(split_dir, "split.json"))
    metrics, chance = result["metrics"], result["chance"]
    r1 = (metrics["i2t_R@1"] + metrics["t2i_R@1"]) / 2
    r1_chance = (chance["i2t_R@1"] + chance["t2i_R@1"]) / 2
    result["held_out"] = {
        "split": "by image sha256 (pipelines.split): no image is on both sides",
        "train_pairs": split["pairs"]["train"],
        "test_pairs": split["pairs"]["test"],
        "images_on_both_sides": shared_images(os.path.join(split_dir, "train"), os.path.join(split_dir, "test")),
    }
    result["chance_note"] = ("chance: the expected value of each metric for a model that ranks at random "
                             "(R@K = K / gallery size per direction; MR = their mean)")
    result["R@1_over_chance"] = round(r1 / r1_chance, 2) if r1_chance else None
    contract.write_json(eval_path, result, indent=2)
    return result


def summary(out: str, result: dict, seconds: float) -> str:
    metrics, chance = result["metrics"], result["chance"]
    lines = [f"finished in {seconds / 60:.1f} min; outputs in {out}/:",
             "  raw/ clean/ rejects/ funnel.json stats.json wordcloud.png split/ train/ eval.json report/index.html",
             f"  held out: {result['held_out']['test_pairs']} pairs "
             f"({result['held_out']['images_on_both_sides']} images on both sides)"]
    for name in ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "MR"):
        lines.append(f"  {name:<9} {metrics[name]:6.2f}   chance {chance[name]:5.2f}")
    lines.append(f"  R@1 is {result['R@1_over_chance']}x chance")
    return "\n".join(lines)


def run_demo(out: str, config: DemoConfig = DemoConfig(), fresh: bool = False,
             min_r1_over_chance: float = MIN_R1_OVER_CHANCE) -> dict:
    """Run (or continue) the demo in `out`; returns eval.json's contents. Raises DemoError when a
    stage fails, when an image is on both sides of the split, or when held-out R@1 is below
    `min_r1_over_chance` times chance (0: no check)."""
    prepare(out, config, fresh)
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    plan = stages(config, out)
    for index, stage in enumerate(plan, 1):
        run_stage(index, len(plan), stage, env)
    result = annotate_eval(out)
    log(summary(out, result, time.perf_counter() - started))
    check_result(result, min_r1_over_chance)
    return result


def check_result(result: dict, min_r1_over_chance: float) -> None:
    """Raise DemoError when an image is on both sides of the split, or when held-out R@1 is below
    `min_r1_over_chance` times chance (0: no bar)."""
    if result["held_out"]["images_on_both_sides"]:
        raise DemoError(f"{result['held_out']['images_on_both_sides']} images are on both sides of the split")
    ratio = result["R@1_over_chance"] or 0.0
    if min_r1_over_chance and ratio < min_r1_over_chance:
        raise DemoError(f"held-out R@1 is {ratio}x chance, below the demo's bar of {min_r1_over_chance}x")


def main(argv: Sequence[str] | None = None) -> int:
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.demo",
        description="Run the whole pipeline offline: crawl a local Baidu-format engine, filter, split by image "
                    "sha256, train a small LiT model on CPU, evaluate retrieval on the held-out split and write "
                    "the dataset report. Each stage's command is printed before it runs; a rerun continues.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--output", default="runs/demo", help="directory for everything the demo writes")
    parser.add_argument("--queries", type=int, default=defaults.queries, help="queries the local engine answers")
    parser.add_argument("--per-query", type=int, default=defaults.per_query, help="results per query")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--test-share", type=float, default=defaults.test_share,
                        help="share of clean images held out for evaluation")
    parser.add_argument("--train-steps", type=int, default=defaults.train_steps)
    parser.add_argument("--global-batch", type=int, default=defaults.global_batch)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="image tower input, px")
    parser.add_argument("--min-r1-over-chance", type=float, default=MIN_R1_OVER_CHANCE,
                        help="exit 1 when held-out R@1 is below this multiple of chance (0: no check)")
    parser.add_argument("--fresh", action="store_true", help="delete OUTPUT first and start over")
    args = parser.parse_args(argv)
    config = DemoConfig(queries=args.queries, per_query=args.per_query, seed=args.seed, test_share=args.test_share,
                        train_steps=args.train_steps, global_batch=args.global_batch,
                        warmup_steps=args.warmup_steps, image_size=args.image_size)
    try:
        run_demo(args.output, config, fresh=args.fresh, min_r1_over_chance=args.min_r1_over_chance)
    except DemoError as error:
        log(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
