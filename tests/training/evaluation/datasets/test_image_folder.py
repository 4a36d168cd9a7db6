"""Zero-shot classification sets: an image folder with one sub-folder per class."""

from __future__ import annotations

import os

import pytest

from tests.support.evaluation_sets import colour, pixel, write_image_folder
from tests.support.images import hostile_images
from training.evaluation.datasets.galleries import EvalDataError
from training.evaluation.datasets.image_folder import load_image_folder, without_undecodable_images
from training.evaluation.prompts import read_classnames


def test_image_folder_and_classnames(tmp_path):
    names = write_image_folder(str(tmp_path), ["猫", "狗", "汽车"], per_class=2)
    dataset = load_image_folder(str(tmp_path / "val"), read_classnames(names))
    assert dataset.labels == [0, 0, 1, 1, 2, 2]
    assert dataset.classnames == ["猫", "狗", "汽车"]
    assert pixel(dataset.gallery, 4) == colour(2)


def test_classname_count_must_match_folders(tmp_path):
    names = write_image_folder(str(tmp_path), ["猫", "狗", "汽车"])
    with pytest.raises(EvalDataError, match="2 class names for 3 class folders"):
        load_image_folder(str(tmp_path / "val"), ["猫", "狗"])
    with open(names, "a", encoding="utf-8") as f:
        f.write("飞机\n")
    with pytest.raises(EvalDataError, match="4 class names for 3 class folders"):
        load_image_folder(str(tmp_path / "val"), read_classnames(names))


def test_class_folders_without_images(tmp_path):
    os.makedirs(tmp_path / "folder" / "n0")
    with pytest.raises(EvalDataError, match="no images"):
        load_image_folder(str(tmp_path / "folder"), ["猫"])


def test_images_that_do_not_decode_are_left_out_and_counted(tmp_path, capsys):
    names = write_image_folder(str(tmp_path), ["猫", "狗"], per_class=2)
    broken = sorted((tmp_path / "val" / "n00000001").iterdir())[0]
    broken.write_bytes(hostile_images()["IM with a fractional size"])
    dataset = without_undecodable_images(load_image_folder(str(tmp_path / "val"), read_classnames(names)))
    assert dataset.labels == [0, 0, 1] and dataset.skipped == 1
    assert f"image {broken} does not decode" in capsys.readouterr().err
