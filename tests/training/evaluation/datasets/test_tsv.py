"""Chinese-CLIP's TSV + JSONL layout."""

from __future__ import annotations

import json

import pytest

from tests.support.evaluation_sets import colour, pixel, write_tsv_jsonl
from training.evaluation.datasets.galleries import EvalDataError
from training.evaluation.datasets.tsv import load_tsv_jsonl


def test_tsv_jsonl_layout(tmp_path):
    expected = write_tsv_jsonl(str(tmp_path), n_images=5, captions_per_image=3)
    dataset = load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))
    assert len(dataset.gallery) == 5 and len(dataset.texts) == 15
    assert dataset.texts == [t for t, _ in expected["texts"]]
    assert dataset.image_of_text == [(i,) for _, i in expected["texts"]]
    assert [pixel(dataset.gallery, i) for i in range(5)] == [colour(i) for i in range(5)]
    assert dataset.directions == ("i2t", "t2i")


def test_text_pointing_at_an_image_not_in_the_tsv(tmp_path):
    write_tsv_jsonl(str(tmp_path), n_images=2, captions_per_image=1)
    with open(tmp_path / "test_texts.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"text_id": 99, "text": "多余", "image_ids": [424242]}) + "\n")
    with pytest.raises(EvalDataError, match="text 99 refers to image '424242'"):
        load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))


def test_empty_gallery(tmp_path):
    (tmp_path / "empty_imgs.tsv").write_text("")
    (tmp_path / "empty_texts.jsonl").write_text("")
    with pytest.raises(EvalDataError, match="gallery is empty"):
        load_tsv_jsonl(str(tmp_path / "empty_imgs.tsv"), str(tmp_path / "empty_texts.jsonl"))


def test_malformed_lines(tmp_path):
    (tmp_path / "test_imgs.tsv").write_text("12345 no tab\n")
    (tmp_path / "test_texts.jsonl").write_text("")
    with pytest.raises(EvalDataError, match="test_imgs.tsv:1"):
        load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))


def test_text_that_is_not_utf8_names_the_file_and_line(tmp_path):
    (tmp_path / "test_imgs.tsv").write_bytes(b"1\taGVsbG8=\n\xff\xfe\taGVsbG8=\n")
    (tmp_path / "test_texts.jsonl").write_text("")
    with pytest.raises(EvalDataError, match="test_imgs.tsv:2: the image id is not UTF-8"):
        load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))
    (tmp_path / "test_imgs.tsv").write_bytes(b"1\taGVsbG8=\n")
    (tmp_path / "test_texts.jsonl").write_bytes(b'{"text_id": 1, "text": "ok", "image_ids": [1]}\n{"text": "\xc3\x28"}\n')
    with pytest.raises(EvalDataError, match=r"test_texts.jsonl: not UTF-8 text \(line 2"):
        load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))
