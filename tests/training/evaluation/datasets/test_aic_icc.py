"""AI Challenger image captioning."""

from __future__ import annotations

import pytest

from tests.support.evaluation_sets import CAPTIONS, write_aic_icc
from training.evaluation.datasets.aic_icc import load_aic_icc
from training.evaluation.datasets.galleries import EvalDataError


def test_aic_icc_layout(tmp_path):
    data = write_aic_icc(str(tmp_path))
    dataset = load_aic_icc(data["annotations"], data["images"])
    assert len(dataset.gallery) == 4 and len(dataset.texts) == 20
    assert dataset.texts[0] == CAPTIONS[0]  # the stray newline is gone
    assert dataset.texts[1] == f"一个{CAPTIONS[0]}1"
    subset = load_aic_icc(data["annotations"], data["images"], max_images=2)
    assert len(subset.gallery) == 2 and len(subset.texts) == 10


def test_empty_gallery(tmp_path):
    (tmp_path / "aic.json").write_text("[]")
    with pytest.raises(EvalDataError, match="gallery is empty"):
        load_aic_icc(str(tmp_path / "aic.json"), str(tmp_path))


def test_an_annotation_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_bytes('[{"image_id": "a.jpg", "caption": ["'.encode() + "猫的图片".encode("gbk") + b'"]}]')
    with pytest.raises(EvalDataError, match=rf"^{path}: not UTF-8 text \(line 1"):
        load_aic_icc(str(path), str(tmp_path))
