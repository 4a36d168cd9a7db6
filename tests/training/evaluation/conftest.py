"""Trained checkpoints for the evaluation tests: what `python -m training.evaluate` scores."""

from __future__ import annotations

import os

import pytest

from tests.support.evaluation_sets import write_image_folder
from training.api import load_model, resolve_checkpoint
from training.train import main as train


@pytest.fixture(scope="session")
def runs(tmp_path_factory, clean_dir):
    """A tiny training run per similarity, through the trainer's command line: a few steps on clean
    shards with zero-shot validation (the real `zero_shot_validate`) every 2 steps, keeping best.pt."""
    root = tmp_path_factory.mktemp("runs")
    names = write_image_folder(str(root / "zs"), ["红色", "蓝色", "绿色"], per_class=1)
    directories = {}
    for similarity in ("global", "token_wise"):
        directories[similarity] = str(root / similarity)
        rc = train(["--data", clean_dir, "--output", directories[similarity], "--tiny", "--similarity", similarity,
                    "--steps", "2", "--warmup-steps", "1", "--global-batch", "8", "--workers", "0",
                    "--device", "cpu", "--precision", "fp32", "--save-every", "2", "--val-every", "2",
                    "--val-dir", str(root / "zs" / "val"), "--val-classnames", names])
        assert rc == 0
    return directories


@pytest.fixture(scope="session")
def checkpoints(runs):
    """The checkpoint each run directory resolves to: its best.pt (it was validated)."""
    resolved = {s: resolve_checkpoint(d) for s, d in runs.items()}
    assert all(os.path.basename(p) == "best.pt" for p in resolved.values())
    return resolved


@pytest.fixture(scope="session")
def loaded(checkpoints):
    return {s: load_model(path) for s, path in checkpoints.items()}
