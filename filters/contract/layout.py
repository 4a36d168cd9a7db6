"""The layout of a run: the names that one stage writes and another stage reads.

A filter output directory:

    OUTPUT/clean/part-NNNNN.parquet      clean shards (publishable)
    OUTPUT/rejects/part-NNNNN.parquet    reject shards (internal: they hold captions as found)
    OUTPUT/funnel.json                   counts at each stage (contract.funnel)
    OUTPUT/stats.json                    Table 2 of the paper and the top words
    OUTPUT/wordcloud.png

A split output directory (pipelines.split): OUTPUT/train/, OUTPUT/test/, OUTPUT/split.json.

A training output directory (training.train), read by evaluation and the demo:

    OUTPUT/config.json                   the resolved model and training configuration
    OUTPUT/checkpoints/step-NNNNNNNN.pt  every checkpoint, by optimiser step
    OUTPUT/checkpoints/best.pt           the best one by validation, when validated
"""

from __future__ import annotations

import re

CLEAN_DIR = "clean"
REJECT_DIR = "rejects"
FUNNEL_FILE = "funnel.json"
STATS_FILE = "stats.json"
WORD_CLOUD_FILE = "wordcloud.png"

SPLIT_SIDES = ("train", "test")
SPLIT_MANIFEST_FILE = "split.json"

TRAIN_CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
BEST_CHECKPOINT = "best.pt"
_STEP_CHECKPOINT_RE = re.compile(r"^step-(\d+)\.pt$")


def step_checkpoint_name(step: int) -> str:
    """The file name of the checkpoint saved after optimiser step `step`."""
    return f"step-{step:08d}.pt"


def checkpoint_step(name: str) -> int | None:
    """The step of a step checkpoint's file name, or None for any other name."""
    match = _STEP_CHECKPOINT_RE.match(name)
    return int(match.group(1)) if match else None
