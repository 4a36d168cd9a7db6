"""A retrieval set: built from ids, and rebuilt without the images that do not decode."""

from __future__ import annotations

import pytest

from tests.support.evaluation_sets import image_bytes
from tests.support.images import hostile_images
from training.evaluation.datasets.galleries import BytesGallery, EvalDataError
from training.evaluation.datasets.retrieval_set import build_retrieval_set, without_undecodable


def _set(images: dict[str, bytes]):
    gallery = BytesGallery(list(images), list(images.values()), "test")
    captions = [("t0", "只有坏图", ["bad-0"]), ("t1", "好图和坏图", ["good-0", "bad-1"]),
                ("t2", "好图", ["good-1"]), ("t3", "两张好图", ["good-0", "good-1"])]
    return build_retrieval_set("test", gallery, captions, ("i2t", "t2i"))


def test_undecodable_images_and_the_texts_left_without_an_image_are_left_out(capsys):
    hostile = list(hostile_images().values())
    dataset = _set({"bad-0": hostile[0], "good-0": image_bytes(0), "bad-1": hostile[2], "good-1": image_bytes(1)})
    kept = without_undecodable(dataset)
    assert kept.gallery.ids == ["good-0", "good-1"] and kept.skipped == 2
    assert kept.texts == ["好图和坏图", "好图", "两张好图"] and kept.text_ids == ["t1", "t2", "t3"]
    assert kept.image_of_text == [(0,), (1,), (0, 1)]
    assert "image bad-0 in test does not decode" in capsys.readouterr().err
    intact = _set({f"{k}-{i}": image_bytes(i) for k in ("bad", "good") for i in range(2)})
    assert without_undecodable(intact) is intact


def test_a_set_where_nothing_decodes_is_an_error():
    hostile = list(hostile_images().values())
    with pytest.raises(EvalDataError, match="no image of the set decodes"):
        without_undecodable(_set({"bad-0": hostile[0], "good-0": hostile[1], "bad-1": hostile[2],
                                  "good-1": hostile[3]}))
