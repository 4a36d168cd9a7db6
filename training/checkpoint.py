"""Checkpoints: atomic writes, `latest`/`best` resolution and pruning.

Layout of a training output directory:

    OUTPUT/config.json                      the resolved config (model + training)
    OUTPUT/checkpoints/step-00000100.pt     model, optimiser, scheduler, scaler, step, data position, RNG
    OUTPUT/checkpoints/best.pt              the checkpoint with the best zero-shot top-1 (if validated)
    OUTPUT/tensorboard/                     TensorBoard scalars

A checkpoint is a dict saved with `torch.save`; it is written to a hidden temporary file in the same
directory and renamed, so a killed job never leaves a half-written file under a final name.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import torch

CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best.pt"
_STEP_RE = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_dir(output: str) -> str:
    return os.path.join(output, CHECKPOINT_DIR)


def step_path(output: str, step: int) -> str:
    return os.path.join(checkpoint_dir(output), f"step-{step:08d}.pt")


def save_atomic(state: dict[str, Any], path: str) -> str:
    """torch.save to a temporary name beside `path`, then rename over it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def step_checkpoints(directory: str) -> list[tuple[int, str]]:
    """(step, path) of the step checkpoints in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _STEP_RE.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found)


def latest_checkpoint(output: str) -> str | None:
    """The newest step checkpoint of a training output directory, or None."""
    found = step_checkpoints(checkpoint_dir(output))
    return found[-1][1] if found else None


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file as is; a training output directory (or its checkpoints/ folder) gives its
    best.pt if any, else its newest step checkpoint. FileNotFoundError when there is none."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint file or training directory at {path}")
    for directory in (checkpoint_dir(path), path):
        best = os.path.join(directory, BEST_NAME)
        if os.path.isfile(best):
            return best
        found = step_checkpoints(directory)
        if found:
            return found[-1][1]
    raise FileNotFoundError(f"{path} holds no checkpoint (looked for {BEST_NAME} and step-*.pt)")


def prune(output: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` step checkpoints (best.pt is never touched)."""
    if keep <= 0:
        return []
    removed = []
    for _, path in step_checkpoints(checkpoint_dir(output))[:-keep]:
        os.remove(path)
        removed.append(path)
    return removed


def load(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict (ours hold RNG states and plain Python values, hence weights_only=False)."""
    return torch.load(path, map_location=map_location, weights_only=False)
