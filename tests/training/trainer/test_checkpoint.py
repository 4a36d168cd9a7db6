"""Checkpoints: written whole or not at all, under the run layout's names; `latest` and pruning."""

import os

import pytest
import torch

from filters import contract
from tests.support.damage import DAMAGES, damage_file
from training.api import CheckpointError, load_checkpoint, resolve_checkpoint
from training.trainer import checkpoint as ckpt


def test_names_come_from_the_run_layout(tmp_path):
    out = str(tmp_path)
    assert ckpt.step_path(out, 7) == os.path.join(out, contract.CHECKPOINT_DIR, contract.step_checkpoint_name(7))
    assert ckpt.best_path(out) == os.path.join(out, contract.CHECKPOINT_DIR, contract.BEST_CHECKPOINT)


def test_a_save_leaves_no_temporary_and_a_failed_save_keeps_the_old_file(tmp_path):
    path = ckpt.step_path(str(tmp_path), 1)
    ckpt.save({"step": 1, "weights": torch.ones(2)}, path)
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        ckpt.save({"step": 2, "bad": Unpicklable()}, path)
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]  # the temporary is gone
    assert load_checkpoint(path)["step"] == 1  # the old checkpoint is intact


def test_latest_and_pruning_keep_best(tmp_path):
    out = str(tmp_path)
    assert ckpt.latest_checkpoint(out) is None
    for step in (1, 2, 10):
        ckpt.save({"step": step}, ckpt.step_path(out, step))
    ckpt.save({"step": 2}, ckpt.best_path(out))
    assert ckpt.latest_checkpoint(out) == ckpt.step_path(out, 10)  # by step, not by name
    assert ckpt.prune(out, 0) == []
    assert ckpt.prune(out, 2) == [ckpt.step_path(out, 1)]
    assert sorted(os.listdir(ckpt.checkpoint_dir(out))) == sorted(
        [contract.BEST_CHECKPOINT, contract.step_checkpoint_name(2), contract.step_checkpoint_name(10)])
    assert resolve_checkpoint(out) == ckpt.best_path(out)


@pytest.mark.parametrize("how", DAMAGES)
def test_latest_falls_back_to_the_newest_checkpoint_that_loads_and_names_what_it_skipped(tmp_path, capsys, how):
    out = str(tmp_path)
    for step in (1, 2, 3):
        ckpt.save({"step": step, "weights": torch.full((64,), float(step))}, ckpt.step_path(out, step))
    damage_file(ckpt.step_path(out, 3), how)
    ckpt.save({"weights": torch.zeros(2)}, ckpt.step_path(out, 4))  # loads, but is no training state
    path, state = ckpt.load_latest(out, required=("step", "weights"))
    assert (path, state["step"]) == (ckpt.step_path(out, 2), 2)
    err = capsys.readouterr().err
    assert f"skipping {ckpt.step_path(out, 4)}: not a training checkpoint (no step)" in err
    assert f"skipping {ckpt.step_path(out, 3)}: " in err


def test_latest_with_no_checkpoint_that_loads_is_an_error_listing_them(tmp_path):
    out = str(tmp_path)
    assert ckpt.load_latest(out) is None  # nothing saved yet: a fresh start
    for step in (1, 2):
        ckpt.save({"step": step}, ckpt.step_path(out, step))
        damage_file(ckpt.step_path(out, step), "truncated")
    with pytest.raises(CheckpointError, match="no checkpoint .* loads") as info:
        ckpt.load_latest(out)
    assert ckpt.step_path(out, 1) in str(info.value) and ckpt.step_path(out, 2) in str(info.value)
