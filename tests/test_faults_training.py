"""kill -9 of training at several moments, then `--resume latest`: the end is the uninterrupted run's.

The crawl and the filter have theirs in tests/test_faults.py. Here `python -m training.train` runs
as a subprocess with the same command line every time (as a job script that always passes
`--resume latest` would), is killed with SIGKILL at one moment after another, and is then run to
the end. The
final checkpoint must equal an uninterrupted run's bit for bit (weights, optimiser, data
position), no temporary may be left, and train.log must hold each step once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from filters import contract
from tests.support.training import clean_records, write_clean_shards
from training.api import load_checkpoint
from training.trainer import checkpoint as ckpt

pytestmark = pytest.mark.e2e  # subprocesses that train

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
STEPS = 8


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("clean")
    write_clean_shards(str(directory), clean_records(80, seed=3, size=64), rows_per_shard=24, row_group_size=8)
    return directory


def _argv(clean_dir: Path, output: Path) -> list[str]:
    return ["-m", "training.train", "--data", str(clean_dir), "--output", str(output), "--tiny",
            "--steps", str(STEPS), "--global-batch", "8", "--warmup-steps", "2", "--seed", "0",
            "--workers", "0", "--precision", "fp32", "--save-every", "2", "--log-every", "1",
            "--keep-checkpoints", "2", "--resume", "latest"]


def _run(argv: list[str]) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=REPO, env=ENV, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stdout.decode()


def _logged_steps(output: Path) -> list[int]:
    lines = (output / "train.log").read_text(encoding="utf-8").splitlines() if (output / "train.log").exists() else []
    return [int(line.split("/")[0].removeprefix("step ")) for line in lines]


def _temporaries(output: Path) -> list[Path]:
    return [p for p in output.rglob("*") if contract.storage.is_temporary(p.name)]


# Each moment is a predicate on the output directory, polled while training runs.
MOMENTS: dict[str, Callable[[Path], bool]] = {
    "after the first step, before any checkpoint": lambda out: len(_logged_steps(out)) >= 1,
    "while a checkpoint is being written": lambda out: bool(_temporaries(out / contract.CHECKPOINT_DIR))
    if (out / contract.CHECKPOINT_DIR).exists() else False,
    "steps after the last checkpoint": lambda out: len(_logged_steps(out)) >= 5,
}


def _kill_when(argv: list[str], output: Path, moment: Callable[[Path], bool]) -> bool:
    """Start training and SIGKILL it when `moment` holds; False when it ended first."""
    process = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if moment(output):
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if process.poll() is None and time.monotonic() >= deadline:
            process.kill()
        process.wait()
    return process.returncode == -signal.SIGKILL


def _assert_same_end(output: Path, reference: Path) -> None:
    a = load_checkpoint(ckpt.step_path(str(reference), STEPS))
    b = load_checkpoint(ckpt.step_path(str(output), STEPS))
    assert a["step"] == b["step"] == STEPS and a["data"] == b["data"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optimizer"]["state"][index][name])), name
    assert a["scheduler"] == b["scheduler"]


def test_training_killed_again_and_again_resumes_to_the_uninterrupted_end(clean_dir, tmp_path):
    """One output directory, killed at each moment in turn (each run resumes what the previous
    killed one left), then run to the end."""
    reference = tmp_path / "reference"
    _run(_argv(clean_dir, reference))
    assert _logged_steps(reference) == list(range(1, STEPS + 1))
    output = tmp_path / "killed"
    argv = _argv(clean_dir, output)
    killed = {name: _kill_when(argv, output, moment) for name, moment in MOMENTS.items()}
    assert any(killed.values()), f"no kill landed before training ended: {killed}"
    _run(argv)
    _assert_same_end(output, reference)
    assert not _temporaries(output)
    assert _logged_steps(output) == list(range(1, STEPS + 1))  # each step once, in order
