"""The loading API: find a run's checkpoint, load it, and score images against texts.

The checkpoints here hold what loading reads (the trainer's own output is loaded in
tests/training/trainer/test_train.py)."""

import io

import pytest
import torch
from PIL import Image

from filters import contract
from tests.support.damage import DAMAGES, damage_file
from tests.support.training import tiny_model
from training.api import (
    DIGEST_KEY,
    CheckpointError,
    LoadedModel,
    content_digest,
    load_checkpoint,
    load_model,
    resolve_checkpoint,
    step_checkpoints,
)
from training.loss import token_wise_similarity
from training.trainer import checkpoint as ckpt


def _save(output, step, model, path=None):
    state = {"model": model.state_dict(), "model_config": model.config.to_dict(), "step": step, "tokenizer": None}
    ckpt.save(state, path or ckpt.step_path(str(output), step))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A token-wise tiny model's run directory with the checkpoints of steps 1 and 2."""
    out = tmp_path_factory.mktemp("api")
    for step in (1, 2):
        _save(out, step, tiny_model(seed=step, similarity="token_wise"))
    return out


def _images(clean_pairs, n):
    return [Image.open(io.BytesIO(r["image"])) for r in clean_pairs[:n]]


def test_load_model_from_a_directory_takes_the_newest_checkpoint(run_dir):
    loaded = load_model(str(run_dir))
    assert isinstance(loaded, LoadedModel)
    assert loaded.config["step"] == 2 and loaded.config["checkpoint"].endswith("step-00000002.pt")
    assert not loaded.model.training and loaded.device == torch.device("cpu")
    assert loaded.tokenizer.vocab_size == 21128
    assert load_model(ckpt.step_path(str(run_dir), 1)).config["step"] == 1
    expected = tiny_model(seed=2, similarity="token_wise").state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in loaded.model.state_dict().items())


def test_best_wins_over_newer_steps_and_steps_sort_by_number(tmp_path):
    model = tiny_model()
    for step in (9, 10):
        _save(tmp_path, step, model)
    assert [s for s, _ in step_checkpoints(ckpt.checkpoint_dir(str(tmp_path)))] == [9, 10]
    assert resolve_checkpoint(str(tmp_path)) == ckpt.step_path(str(tmp_path), 10)
    _save(tmp_path, 9, model, path=ckpt.best_path(str(tmp_path)))
    for where in (tmp_path, tmp_path / contract.CHECKPOINT_DIR):
        assert resolve_checkpoint(str(where)) == ckpt.best_path(str(tmp_path))


def test_encode_and_token_wise_similarity(run_dir, clean_pairs):
    loaded = load_model(str(run_dir))
    images, texts = _images(clean_pairs, 3), [r["caption"] for r in clean_pairs[:4]]
    image_features, text_features = loaded.encode_image(images), loaded.encode_text(texts)
    assert image_features.shape == (3, 32) and text_features.shape == (4, 32)
    assert torch.allclose(image_features.norm(dim=-1), torch.ones(3), atol=1e-5)
    sims = loaded.similarity(images, texts)
    assert sims.shape == (3, 4)
    pixels = torch.stack([loaded.transform(im.convert("RGB")) for im in images])
    ids, mask = loaded.tokenizer(texts)
    text_tokens, valid = loaded.model.encode_text_tokens(ids, mask)
    expected, _ = token_wise_similarity(loaded.model.encode_image_tokens(pixels), text_tokens, valid)
    assert torch.allclose(sims, expected, atol=1e-5)


def test_a_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no checkpoint file or training directory"):
        load_model(str(tmp_path / "absent"))


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_checkpoint_is_an_error_naming_the_file(tmp_path, how):
    path = ckpt.save({"step": 1, "model": tiny_model().state_dict()}, str(tmp_path / "step-00000001.pt"))
    damage_file(path, how)
    with pytest.raises(CheckpointError, match=f"^{path}: .*(truncated or corrupt|digest)"):
        load_checkpoint(path)


def test_the_digest_covers_tensors_and_plain_values_but_not_itself():
    state = {"model": {"w": torch.ones(3)}, "step": 5, "rng": (3, (1, 2), None)}
    digest = content_digest(state)
    assert content_digest({**state, DIGEST_KEY: digest}) == digest
    assert content_digest({**state, "step": 6}) != digest
    assert content_digest({**state, "model": {"w": torch.tensor([1.0, 1.0, 1.0000001])}}) != digest
