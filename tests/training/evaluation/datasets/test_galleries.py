"""Galleries decode with the project's one decoder; an image that does not decode is found up front
and named, and one that fails later is an error that names it."""

from __future__ import annotations

import base64

import pytest

from filters.contract import images
from tests.support.evaluation_sets import image_bytes, write_image, write_tsv_jsonl
from tests.support.images import hostile_images
from training.evaluation.datasets.galleries import BytesGallery, EvalDataError, FileGallery, undecodable_images
from training.evaluation.datasets.tsv import load_tsv_jsonl


def test_corrupt_image_is_named_when_loaded(tmp_path):
    write_tsv_jsonl(str(tmp_path), n_images=2, captions_per_image=1)
    lines = (tmp_path / "test_imgs.tsv").read_text().splitlines()
    lines[1] = lines[1].split("\t")[0] + "\t" + base64.urlsafe_b64encode(b"not an image").decode()
    (tmp_path / "test_imgs.tsv").write_text("\n".join(lines) + "\n")
    dataset = load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))
    with pytest.raises(EvalDataError, match="cannot decode image 1007"):
        dataset.gallery.load(1)


def test_truncated_files_and_images_over_the_pixel_cap_are_refused(tmp_path, monkeypatch):
    path = write_image(str(tmp_path / "a.png"), 0)
    with open(path, "r+b") as f:
        f.truncate(len(image_bytes(0)) // 2)
    with pytest.raises(EvalDataError, match="cannot decode image .*a.png"):
        FileGallery(["a"], [path]).load(0)
    gallery = BytesGallery(["b"], [image_bytes(1)], "shards")
    assert gallery.load(0).mode == "RGB"
    monkeypatch.setattr(images, "MAX_PIXELS", 100)  # the filter's cap applies here too
    with pytest.raises(EvalDataError, match="cannot decode image b in shards"):
        gallery.load(0)


def test_undecodable_images_are_found_and_named(tmp_path, capsys):
    hostile = hostile_images()
    ids = ["good-0", *hostile, "good-1"]
    gallery = BytesGallery(ids, [image_bytes(0), *hostile.values(), image_bytes(1)], "shards")
    assert undecodable_images(gallery) == list(range(1, len(hostile) + 1))
    err = capsys.readouterr().err
    assert all(f"image {name} in shards does not decode" in err for name in hostile)
    paths = [write_image(str(tmp_path / "a.png"), 0), str(tmp_path / "b.qoi")]
    (tmp_path / "b.qoi").write_bytes(hostile["truncated QOI"])
    assert undecodable_images(FileGallery(["a", "b"], paths)) == [1]
    assert FileGallery(["a", "b"], paths).subset([1]).ids == ["b"]
