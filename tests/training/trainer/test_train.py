"""The step loop end to end, through `python -m training.train`'s main (in process, and once under
torchrun): learning, locked tower, outputs, exact resume, validation keeping best.pt."""

import io
import json
import os

import pytest
import torch
from PIL import Image

from filters import contract
from tests.support.damage import damage_file
from tests.support.images import jpeg
from tests.support.training import tiny_model
from training.api import load_checkpoint, load_model, resolve_checkpoint, step_checkpoints
from training.model import LiTConfig, LiTModel
from training.tokenizer import default_tokenizer
from training.train import main
from training.trainer import checkpoint as ckpt
from training.trainer.train import forget_steps_after, trim_padding

TINY = ["--tiny", "--global-batch", "16", "--warmup-steps", "2", "--log-every", "10", "--seed", "0"]


def _run(clean_dir, out, *extra):
    return main(["--data", clean_dir, "--output", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, clean_dir):
    """A tiny model trained for 80 steps (workers 0, fp32, no augmentation for a quick signal)."""
    out = tmp_path_factory.mktemp("trained")
    assert _run(clean_dir, out, "--steps", "80", "--lr", "5e-3", "--workers", "0", "--precision", "fp32",
                "--no-augment", "--save-every", "40") == 0
    return out


def _in_batch_top1(model_or_loaded, clean_pairs, groups=6, size=16):
    hits = 0
    for g in range(groups):
        rows = clean_pairs[g * size:(g + 1) * size]
        sims = model_or_loaded.similarity([Image.open(io.BytesIO(r["image"])) for r in rows],
                                          [r["caption"] for r in rows])
        hits += (sims.argmax(dim=1) == torch.arange(size)).sum().item()
    return hits / (groups * size)


@pytest.mark.e2e
def test_training_lowers_the_loss_and_lifts_retrieval_above_chance(trained, clean_pairs):
    first = load_model(str(ckpt.step_path(str(trained), 40)))
    last = load_model(str(trained))
    assert last.config["step"] == 80
    # the logged losses went down: chance level is ln(16) = 2.77
    lines = (trained / "train.log").read_text(encoding="utf-8").splitlines()
    losses = [float(l.split("loss ")[1].split()[0]) for l in lines]
    assert losses[0] > 2.7 and min(losses[-3:]) < 2.4, lines
    top1 = _in_batch_top1(last, clean_pairs)
    assert top1 > 2 / 16, top1  # chance is 1/16
    assert top1 >= _in_batch_top1(first, clean_pairs) - 0.05


@pytest.mark.e2e
def test_the_image_tower_is_bit_identical_after_training(trained):
    state = load_checkpoint(resolve_checkpoint(str(trained)))["model"]
    torch.manual_seed(0)  # the trainer seeds with --seed before building the model
    fresh = LiTModel(LiTConfig.tiny()).state_dict()
    tower_keys = [k for k in fresh if k.startswith("image_tower.")]
    assert tower_keys and all(torch.equal(state[k], fresh[k]) for k in tower_keys)
    assert not torch.equal(state["text_proj.weight"], fresh["text_proj.weight"])  # the rest did train


@pytest.mark.e2e
def test_outputs_config_checkpoints_and_tensorboard(trained):
    assert os.path.isfile(trained / "config.json")
    assert [s for s, _ in step_checkpoints(ckpt.checkpoint_dir(str(trained)))] == [40, 80]
    assert any(name.startswith("events.") for name in os.listdir(trained / "tensorboard"))
    state = load_checkpoint(ckpt.step_path(str(trained), 80))
    assert {"model", "optimizer", "scheduler", "scaler", "step", "data", "rng", "model_config"} <= set(state)


@pytest.mark.e2e
def test_four_steps_equal_two_steps_resume_two_steps(tmp_path, clean_dir):
    """bf16, AutoAugment, 2 DataLoader workers and GradCache accumulation, all resumed exactly."""
    common = ["--steps", "4", "--workers", "2", "--accum-freq", "2", "--precision", "bf16", "--save-every", "100",
              "--text-dropout", "0.1", "--shuffle-buffer", "32"]
    assert _run(clean_dir, tmp_path / "straight", *common) == 0
    assert _run(clean_dir, tmp_path / "split", *common, "--stop-at", "2") == 0
    assert ckpt.latest_checkpoint(str(tmp_path / "split")).endswith("step-00000002.pt")
    assert _run(clean_dir, tmp_path / "split", *common, "--resume", "latest") == 0
    a = load_checkpoint(ckpt.step_path(str(tmp_path / "straight"), 4))
    b = load_checkpoint(ckpt.step_path(str(tmp_path / "split"), 4))
    assert a["data"] == b["data"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optimizer"]["state"][index][name]))


def _logged(out) -> list[str]:
    """The progress lines of a run without their samples/s, which is the one thing that varies."""
    lines = (out / "train.log").read_text(encoding="utf-8").splitlines()
    return [" | ".join(part for part in line.split(" | ") if "samples/s" not in part) for line in lines]


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_resume_latest_skips_a_damaged_newest_checkpoint_and_still_ends_exactly(tmp_path, clean_dir, capsys, how):
    """A killed run's leftovers: a damaged newest checkpoint, a save's temporary, logged steps
    after the checkpoint it resumes from. The rerun ends as an uninterrupted run does."""
    common = ["--steps", "4", "--workers", "0", "--save-every", "1", "--log-every", "1", "--precision", "fp32"]
    assert _run(clean_dir, tmp_path / "straight", *common) == 0
    split = tmp_path / "split"
    assert _run(clean_dir, split, *common, "--stop-at", "3") == 0
    damage_file(ckpt.step_path(str(split), 3), how)
    stale = contract.storage.temporary_for(ckpt.step_path(str(split), 4))
    with open(stale, "wb") as f:
        f.write(b"half a checkpoint")
    capsys.readouterr()
    assert _run(clean_dir, split, *common, "--resume", "latest") == 0
    out, err = capsys.readouterr()
    assert f"skipping {ckpt.step_path(str(split), 3)}: " in err
    assert f"--resume latest: {ckpt.step_path(str(split), 2)}" in out and "resumed from step 2" in out
    assert not os.path.exists(stale)
    a = load_checkpoint(ckpt.step_path(str(tmp_path / "straight"), 4))
    b = load_checkpoint(ckpt.step_path(str(split), 4))
    assert a["data"] == b["data"]
    assert all(torch.equal(value, b["model"][key]) for key, value in a["model"].items())
    assert _logged(split) == _logged(tmp_path / "straight")  # steps 1..4, each once
    assert [line.split("/")[0] for line in _logged(split)] == ["step 1", "step 2", "step 3", "step 4"]


def _validation_inputs(tmp_path) -> tuple[str, str]:
    """A two-class image folder and its class-name file."""
    for folder, colour in (("n01", (200, 0, 0)), ("n02", (0, 0, 200))):
        (tmp_path / "val" / folder).mkdir(parents=True)
        (tmp_path / "val" / folder / "a.jpg").write_bytes(jpeg(64, 64, colour))
    (tmp_path / "names.txt").write_text("红色\n蓝色\n", encoding="utf-8")
    return str(tmp_path / "val"), str(tmp_path / "names.txt")


@pytest.mark.e2e
@pytest.mark.parametrize("method", [("--loss", "moco"), ("--ranking-head", "--distill", "target")],
                         ids=["moco", "distill-target"])
def test_a_teacher_and_its_queues_resume_bit_for_bit(tmp_path, clean_dir, method):
    """4 steps == 2 + resume + 2 with the momentum copy and the queues in the checkpoint."""
    common = ["--steps", "4", "--workers", "1", "--precision", "bf16", "--save-every", "100", "--text-dropout", "0.1",
              "--queue-size", "48", *method]
    assert _run(clean_dir, tmp_path / "straight", *common) == 0
    assert _run(clean_dir, tmp_path / "split", *common, "--stop-at", "2") == 0
    halfway = load_checkpoint(ckpt.step_path(str(tmp_path / "split"), 2))
    assert int(halfway["method"]["teacher"]["text_queue.pointer"]) == 32  # 2 steps x global batch 16
    assert _run(clean_dir, tmp_path / "split", *common, "--resume", "latest") == 0
    a = load_checkpoint(ckpt.step_path(str(tmp_path / "straight"), 4))
    b = load_checkpoint(ckpt.step_path(str(tmp_path / "split"), 4))
    for part in ("model", "method"):
        flat_a = a[part] if part == "model" else a[part]["teacher"]
        flat_b = b[part] if part == "model" else b[part]["teacher"]
        assert flat_a.keys() == flat_b.keys()
        for key, value in flat_a.items():
            assert torch.equal(value, flat_b[key]), (part, key)
    # the teacher moved away from the student, and the queue wrapped around (4 x 16 keys in 48 places)
    assert int(a["method"]["teacher"]["text_queue.pointer"]) == 16
    assert not torch.equal(a["method"]["teacher"]["copy.copies.text_proj.weight"], a["model"]["text_proj.weight"])


def test_the_default_method_keeps_no_extra_state_and_the_clip_model_is_unchanged():
    """--loss clip without a ranking head: no 'method' key, and the same weights as before any method
    existed (extra parameters are built after all others)."""
    from training.trainer.methods import build_method
    from training.trainer.params import MethodConfig

    plain, with_extras = tiny_model(), tiny_model(logit_bias=-10.0, ranking_layers=1)
    assert build_method(plain, MethodConfig()).state_dict() is None
    for key, value in plain.state_dict().items():
        assert torch.equal(value, with_extras.state_dict()[key]), key
    assert set(with_extras.state_dict()) - set(plain.state_dict()) == {
        k for k in with_extras.state_dict() if k == "logit_bias" or k.startswith("ranking_head.")}


@pytest.mark.e2e
def test_validation_keeps_the_best_checkpoint(tmp_path, clean_dir, monkeypatch):
    import sys
    import types

    scores = iter([10.0, 30.0, 20.0])
    seen = []

    def zero_shot_validate(model, tokenizer, transform, image_dir, classnames_file, device):
        seen.append((type(model).__name__, image_dir, classnames_file, model.training))
        return {"top1": next(scores)}

    monkeypatch.setitem(sys.modules, "training.evaluation.zeroshot",
                        types.SimpleNamespace(zero_shot_validate=zero_shot_validate))
    images, names = _validation_inputs(tmp_path)
    out = tmp_path / "run"
    assert _run(clean_dir, out, "--steps", "6", "--workers", "0", "--val-every", "2", "--val-dir", images,
                "--val-classnames", names, "--save-every", "100") == 0
    assert seen == [("LiTModel", images, names, False)] * 3
    best = load_checkpoint(ckpt.best_path(str(out)))
    assert best["step"] == 4 and best["best_top1"] == 30.0
    assert resolve_checkpoint(str(out)) == ckpt.best_path(str(out))


@pytest.mark.e2e
def test_torchrun_with_two_gloo_ranks(tmp_path, clean_dir):
    """`make train NPROC=2`'s path: torchrun, gloo, each rank's data position in the checkpoint."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "training.train", "--data", clean_dir,
           "--output", str(out), *TINY, "--steps", "3", "--workers", "1", "--log-every", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(ckpt.step_path(str(out), 3))
    # each rank's reader position: 3 steps x 8 rows (global batch 16 over 2 ranks)
    assert [d["positions"][0]["taken"] for d in state["data"]] == [24, 24]
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert "step 3/3" in (out / "train.log").read_text()


def test_trimming_trailing_padding_leaves_the_global_text_feature_unchanged():
    model = tiny_model().eval()
    ids, mask = default_tokenizer()(["两个红色圆形", "一张黑色背景的图片，画着三个黄色十字"])
    short_ids, short_mask = trim_padding(ids, mask)
    assert short_ids.shape == (2, int(mask.sum(dim=1).max()))
    assert torch.allclose(model.encode_text(ids, mask), model.encode_text(short_ids, short_mask), atol=1e-5)


def test_a_resumed_log_forgets_the_steps_after_its_checkpoint(tmp_path):
    log = tmp_path / "train.log"
    lines = [f"step {s}/12 | 9.0 samples/s | loss 2.0\n" for s in (1, 2, 3, 10, 11)]
    log.write_text("".join(lines[:3]) + "a note\n" + "".join(lines[3:]), encoding="utf-8")
    forget_steps_after(str(log), 10)
    assert log.read_text(encoding="utf-8") == "".join(lines[:3]) + "a note\n" + lines[3]
    forget_steps_after(str(log), 0)  # a fresh start in the same directory begins a new log
    assert log.read_text(encoding="utf-8") == "a note\n"
    forget_steps_after(str(tmp_path / "none.log"), 3)  # nothing to forget
    assert not (tmp_path / "none.log").exists()
