"""MUGE retrieval, as distributed and in Chinese-CLIP's conversion."""

from __future__ import annotations

import pytest

from tests.support.evaluation_sets import colour, write_muge, write_tsv_jsonl
from training.evaluation.datasets.galleries import EvalDataError
from training.evaluation.datasets.muge import load_muge


def test_muge_layout_is_text_to_image_with_several_images(tmp_path):
    expected = write_muge(str(tmp_path))
    dataset = load_muge(str(tmp_path), "valid")
    assert dataset.directions == ("t2i",)
    assert dataset.texts == [q for q, _ in expected["queries"]]
    assert dataset.image_of_text == [tuple(images) for _, images in expected["queries"]]
    assert len(dataset.gallery) == 8
    decoded = dataset.gallery.load(6).getpixel((30, 30))  # JPEG: close, not exact
    assert all(abs(a - b) <= 6 for a, b in zip(decoded, colour(6)))


def test_muge_chinese_clip_conversion_is_read_too(tmp_path):
    write_tsv_jsonl(str(tmp_path), split="valid", n_images=3, captions_per_image=1)
    dataset = load_muge(str(tmp_path), "valid")
    assert len(dataset.texts) == 3 and dataset.directions == ("t2i",)


def test_a_folder_without_a_muge_split_is_named(tmp_path):
    (tmp_path / "test_imgs.tsv").write_text("12345 no tab\n")
    with pytest.raises(EvalDataError, match="no MUGE valid split"):
        load_muge(str(tmp_path), "valid")
