"""Flickr8K-CN caption files and Flickr30K-CN VisualSearch folders."""

from __future__ import annotations

import os

import pytest

from tests.support.evaluation_sets import CAPTIONS, colour, pixel, write_flickr8k_cn, write_flickr30k_cn
from training.evaluation.datasets.flickr import load_flickr_cn
from training.evaluation.datasets.galleries import EvalDataError


def test_flickr8k_cn_caption_file_with_split(tmp_path):
    data = write_flickr8k_cn(str(tmp_path))
    dataset = load_flickr_cn(data["captions"], data["images"], data["split_file"])
    assert dataset.gallery.ids == data["test_images"]
    assert len(dataset.texts) == 15
    # Five captions per image, grouped by image in split order.
    assert dataset.image_of_text == [(i,) for i in range(3) for _ in range(5)]
    first = data["names"].index(data["test_images"][0])
    assert dataset.texts[0] == f"{CAPTIONS[first % len(CAPTIONS)]}，第0句"
    assert pixel(dataset.gallery, 0) == colour(first)
    everything = load_flickr_cn(data["captions"], data["images"])
    assert len(everything.gallery) == 5 and len(everything.texts) == 25


def test_flickr30k_cn_visualsearch_folder(tmp_path):
    data = write_flickr30k_cn(str(tmp_path))
    dataset = load_flickr_cn(data["folder"], data["images"])
    assert dataset.name == "flickr30kzhmbosontest"
    assert dataset.gallery.ids == data["ids"]
    assert len(dataset.texts) == 20
    # Segmentation and part-of-speech tags are undone.
    assert dataset.texts[0] == "两个男人在跑步。"
    assert "穿T恤的女孩" in dataset.texts
    assert pixel(dataset.gallery, 2) == colour(2)


def test_missing_image_is_named(tmp_path):
    data = write_flickr8k_cn(str(tmp_path))
    missing = os.path.join(data["images"], data["test_images"][1])
    os.remove(missing)
    with pytest.raises(EvalDataError, match="1 image file.s. missing, e.g. .*" + data["test_images"][1]):
        load_flickr_cn(data["captions"], data["images"], data["split_file"])


def test_malformed_caption_line(tmp_path):
    bad = tmp_path / "captions.txt"
    bad.write_text("no-hash-here just text\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="captions.txt:1"):
        load_flickr_cn(str(bad), str(tmp_path))


def test_flickr_folder_without_captions_and_split_without_captions(tmp_path):
    os.makedirs(tmp_path / "flickr30kzhmbosontest" / "ImageSets")
    with pytest.raises(EvalDataError, match="no TextData"):
        load_flickr_cn(str(tmp_path / "flickr30kzhmbosontest"), str(tmp_path))
    data = write_flickr8k_cn(str(tmp_path / "8k"))
    with open(data["split_file"], "a", encoding="utf-8") as f:
        f.write("999_unknown.jpg\n")
    with pytest.raises(EvalDataError, match="999_unknown.jpg .* has no caption"):
        load_flickr_cn(data["captions"], data["images"], data["split_file"])
