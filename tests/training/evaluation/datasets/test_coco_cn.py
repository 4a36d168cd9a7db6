"""COCO-CN."""

from __future__ import annotations

import os

import pytest

from tests.support.evaluation_sets import colour, pixel, write_coco_cn
from training.evaluation.datasets.coco_cn import load_coco_cn
from training.evaluation.datasets.galleries import EvalDataError


def test_coco_cn_layout(tmp_path):
    data = write_coco_cn(str(tmp_path))
    dataset = load_coco_cn(data["root"], data["images"], "test")
    assert dataset.gallery.ids == data["test"]
    assert dataset.texts == ["一个人在厨房里做饭", "厨房里的男人", "桌子上有一盘水果", "街上的公共汽车"]
    assert dataset.image_of_text == [(0,), (0,), (1,), (2,)]  # 1-2 captions per image
    assert [pixel(dataset.gallery, i) for i in range(3)] == [colour(i) for i in range(3)]


def test_missing_image_is_named(tmp_path):
    coco = write_coco_cn(str(tmp_path / "coco"))
    os.remove(os.path.join(coco["images"], "val2014", f"{coco['test'][2]}.jpg"))
    with pytest.raises(EvalDataError, match=coco["test"][2]):
        load_coco_cn(coco["root"], coco["images"])
