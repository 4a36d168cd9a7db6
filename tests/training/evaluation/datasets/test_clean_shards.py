"""This project's clean shards as a retrieval set."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from training.evaluation.datasets.clean_shards import load_clean_shards
from training.evaluation.datasets.galleries import EvalDataError


def test_clean_shards_layout(clean_dir, clean_pairs):
    dataset = load_clean_shards(clean_dir, max_pairs=20)
    assert len(dataset.gallery) == 20
    assert dataset.texts == [r["caption"] for r in clean_pairs[:20]]
    assert dataset.image_of_text == [(i,) for i in range(20)]
    assert dataset.gallery.load(0).size == Image.open(io.BytesIO(clean_pairs[0]["image"])).size


def test_empty_gallery(tmp_path):
    os.makedirs(tmp_path / "no-shards")
    with pytest.raises(EvalDataError, match="gallery is empty"):
        load_clean_shards(str(tmp_path / "no-shards"))
