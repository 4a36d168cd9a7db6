"""Writing checkpoints: atomic saves, the newest one for `--resume latest`, pruning.

Layout of a training output directory (names from `filters.contract.layout`):

    OUTPUT/config.json                      the resolved config (model + training)
    OUTPUT/checkpoints/step-00000100.pt     model, optimiser, scheduler, scaler, step, data position, RNG
    OUTPUT/checkpoints/best.pt              the checkpoint with the best zero-shot top-1 (if validated)
    OUTPUT/tensorboard/                     TensorBoard scalars

A checkpoint is a dict saved with `torch.save` through `filters.contract.storage`, so a killed job
never leaves a half-written file under a final name. Reading them (`resolve_checkpoint`,
`load_checkpoint`) is the library's job: `training.api`.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from filters import contract
from training.api import step_checkpoints


def checkpoint_dir(output: str) -> str:
    return os.path.join(output, contract.CHECKPOINT_DIR)


def step_path(output: str, step: int) -> str:
    return os.path.join(checkpoint_dir(output), contract.step_checkpoint_name(step))


def best_path(output: str) -> str:
    return os.path.join(checkpoint_dir(output), contract.BEST_CHECKPOINT)


def save(state: dict[str, Any], path: str) -> str:
    """torch.save `state` to `path`; the file appears whole or not at all."""
    with contract.atomic_output(path) as out:
        torch.save(state, out)
    return path


def latest_checkpoint(output: str) -> str | None:
    """The newest step checkpoint of a training output directory, or None."""
    found = step_checkpoints(checkpoint_dir(output))
    return found[-1][1] if found else None


def prune(output: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` step checkpoints (best.pt is never touched); 0 keeps all."""
    if keep <= 0:
        return []
    removed = []
    for _, path in step_checkpoints(checkpoint_dir(output))[:-keep]:
        os.remove(path)
        removed.append(path)
    return removed
