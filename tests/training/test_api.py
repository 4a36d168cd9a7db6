"""The notebook API: load_model from a checkpoint file or a training directory."""

import io

import pytest
import torch
from PIL import Image

from training import checkpoint as ckpt
from training.api import LoadedModel, load_model
from training.train import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, clean_dir):
    out = tmp_path_factory.mktemp("api")
    assert main(["--data", clean_dir, "--output", str(out), "--tiny", "--similarity", "token_wise",
                 "--steps", "2", "--global-batch", "8", "--warmup-steps", "1", "--workers", "0",
                 "--save-every", "1", "--keep-checkpoints", "0"]) == 0
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
    from training.loss import token_wise_similarity

    text_tokens, valid = loaded.model.encode_text_tokens(ids, mask)
    expected, _ = token_wise_similarity(loaded.model.encode_image_tokens(pixels), text_tokens, valid)
    assert torch.allclose(sims, expected, atol=1e-5)


def test_a_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(str(tmp_path))
