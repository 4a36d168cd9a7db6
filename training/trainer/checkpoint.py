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
import sys
from typing import Any

import torch

from filters import contract
from training.api import DIGEST_KEY, CheckpointError, content_digest, load_checkpoint, step_checkpoints


def checkpoint_dir(output: str) -> str:
    return os.path.join(output, contract.CHECKPOINT_DIR)


def step_path(output: str, step: int) -> str:
    return os.path.join(checkpoint_dir(output), contract.step_checkpoint_name(step))


def best_path(output: str) -> str:
    return os.path.join(checkpoint_dir(output), contract.BEST_CHECKPOINT)


def save(state: dict[str, Any], path: str) -> str:
    """torch.save `state`, with the digest of its contents, to `path`; the file appears whole or
    not at all, and damage done to it later is found when it is loaded (`training.api`)."""
    with contract.atomic_output(path) as out:
        torch.save({**state, DIGEST_KEY: content_digest(state)}, out)
    return path


def remove_stale_temporaries(output: str) -> int:
    """Delete the temporaries that a killed save left (a checkpoint or config.json half written
    under a hidden name); returns how many. Call it before this run writes anything."""
    removed = sum(contract.remove_stale_temporaries(d) for d in (output, checkpoint_dir(output)))
    if removed:
        print(f"removed {removed} temporary file(s) that a killed run left in {output}", flush=True)
    return removed


def latest_checkpoint(output: str) -> str | None:
    """The newest step checkpoint of a training output directory, or None."""
    found = step_checkpoints(checkpoint_dir(output))
    return found[-1][1] if found else None


def load_latest(output: str, required: tuple[str, ...] = ()) -> tuple[str, dict] | None:
    """(path, state) of the newest step checkpoint that loads and holds the `required` keys, or
    None when there is no step checkpoint at all.

    A newer checkpoint that does not load (empty, truncated, corrupt: a disk or copy fault, or a
    file put there by hand) is skipped with a warning on stderr naming it and why. When none of
    them loads, CheckpointError lists every file and reason: starting over would silently discard
    the run."""
    found = step_checkpoints(checkpoint_dir(output))
    problems = []
    for _, path in reversed(found):
        try:
            state = load_checkpoint(path)
            missing = [key for key in required if key not in state]
            if missing:
                raise CheckpointError(f"{path}: not a training checkpoint (no {', '.join(missing)})")
        except CheckpointError as err:
            print(f"warning: --resume latest: skipping {err}", file=sys.stderr, flush=True)
            problems.append(str(err))
            continue
        return path, state
    if problems:
        raise CheckpointError(f"--resume latest: no checkpoint in {checkpoint_dir(output)} loads: "
                              + "; ".join(problems))
    return None


def prune(output: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` step checkpoints (best.pt is never touched); 0 keeps all."""
    if keep <= 0:
        return []
    removed = []
    for _, path in step_checkpoints(checkpoint_dir(output))[:-keep]:
        os.remove(path)
        removed.append(path)
    return removed
