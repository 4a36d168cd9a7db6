"""Evaluation embeddings: computed in batches, cached on disk under a key of everything they depend
on, and written whole or not at all."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.support import evaluation_sets as layouts
from training.evaluation.datasets import load_retrieval_set
from training.evaluation.embeddings import EmbeddingCache, embed_images, embed_texts
from training.evaluation.retrieval import evaluate_retrieval


def test_embeddings_are_cached_and_invalidated(tmp_path, checkpoints, loaded):
    data = layouts.write_coco_cn(str(tmp_path / "data"))
    cache = EmbeddingCache(str(tmp_path / "cache"))
    dataset = load_retrieval_set("coco-cn", data["root"], data["images"])
    first = evaluate_retrieval(loaded["global"], dataset, cache=cache, model_key="m")
    files = {name: os.stat(tmp_path / "cache" / name).st_mtime_ns for name in os.listdir(tmp_path / "cache")}
    assert len(files) == 2  # image and text features
    again = evaluate_retrieval(loaded["global"], load_retrieval_set("coco-cn", data["root"], data["images"]),
                               cache=cache, model_key="m")
    assert again["metrics"] == first["metrics"]
    assert {n: os.stat(tmp_path / "cache" / n).st_mtime_ns for n in os.listdir(tmp_path / "cache")} == files
    # A replaced image is a different gallery; another checkpoint is another model.
    layouts.write_image(os.path.join(data["images"], "val2014", f"{data['test'][0]}.jpg"), 17)
    os.utime(os.path.join(data["images"], "val2014", f"{data['test'][0]}.jpg"), ns=(1, 1))
    evaluate_retrieval(loaded["global"], load_retrieval_set("coco-cn", data["root"], data["images"]),
                       cache=cache, model_key="m")
    assert len(os.listdir(tmp_path / "cache")) == 3
    evaluate_retrieval(loaded["global"], dataset, cache=cache, model_key="other")
    assert len(os.listdir(tmp_path / "cache")) == 5


def test_cached_features_are_the_computed_ones(tmp_path, loaded):
    data = layouts.write_tsv_jsonl(str(tmp_path / "data"), n_images=3, captions_per_image=1)
    assert data["n_images"] == 3
    dataset = load_retrieval_set("tsv", str(tmp_path / "data"))
    cache = EmbeddingCache(str(tmp_path / "cache"))
    evaluate_retrieval(loaded["token_wise"], dataset, cache=cache, model_key="m")
    image_file = next(n for n in os.listdir(tmp_path / "cache") if n.endswith("image_tokens.npy"))
    cached = np.load(tmp_path / "cache" / image_file)
    with torch.no_grad():
        pixels = torch.stack([loaded["token_wise"].transform(dataset.gallery.load(i)) for i in range(3)])
        direct = loaded["token_wise"].model.encode_image_tokens(pixels)
    assert cached.dtype == np.float16 and cached.shape == tuple(direct.shape)
    assert np.allclose(cached.astype(np.float32), direct.numpy(), atol=2e-3)


def test_an_array_appears_only_when_every_row_was_written(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    writer = cache.create("k", "image_global", (5, 2), np.float32)
    writer.write(np.ones((3, 2)))
    assert cache.load("k", "image_global") is None  # nothing under the final name yet
    with pytest.raises(ValueError, match="3 of 5 rows"):
        writer.commit()
    assert os.listdir(tmp_path) == []  # no temporary left either
    writer = cache.create("k", "image_global", (5, 2), np.float32)
    writer.write(np.arange(6).reshape(3, 2))
    with pytest.raises(ValueError, match="do not continue"):
        writer.write(np.ones((3, 2)))
    writer.write(np.ones((2, 2)))
    array = writer.commit()
    assert isinstance(array, np.memmap) and array.dtype == np.float32
    assert np.array_equal(cache.load("k", "image_global"), np.concatenate([np.arange(6).reshape(3, 2), np.ones((2, 2))]))


def test_an_interrupted_embedding_leaves_no_cache(tmp_path, loaded):
    data = layouts.write_tsv_jsonl(str(tmp_path / "data"), n_images=4, captions_per_image=1)
    assert data["n_images"] == 4
    dataset = load_retrieval_set("tsv", str(tmp_path / "data"))
    model = loaded["global"].model
    calls = []

    def encode_then_fail(pixels):
        calls.append(len(pixels))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return type(model).encode_image(model, pixels)

    cache = EmbeddingCache(str(tmp_path / "cache"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "encode_image", encode_then_fail)
        with pytest.raises(KeyboardInterrupt):
            embed_images(model, loaded["global"].transform, dataset.gallery, False, torch.device("cpu"), batch_size=2,
                         cache=cache, key="k")
    assert calls == [2, 2] and os.listdir(tmp_path / "cache") == []


def test_without_a_directory_nothing_is_written(tmp_path, loaded):
    layouts.write_tsv_jsonl(str(tmp_path / "data"), n_images=3, captions_per_image=1)
    dataset = load_retrieval_set("tsv", str(tmp_path / "data"))
    features, mask = embed_texts(loaded["token_wise"].model, loaded["token_wise"].tokenizer, dataset.texts, True,
                                 torch.device("cpu"), batch_size=2)
    assert features.shape[0] == 3 and mask.shape == features.shape[:2] and mask.dtype == np.bool_
    assert sorted(os.listdir(tmp_path)) == ["data"]
