"""This project's clean shards as a retrieval set."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from filters import contract
from tests.support.damage import corrupt_page, write_with_bad_text
from tests.support.images import png_claiming
from tests.support.training import write_clean_shards
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


def test_damaged_rows_are_skipped_counted_and_named(tmp_path, clean_pairs, capsys):
    """A corrupt page, a caption that is not UTF-8 and images that do not decode (truncated, a
    header over the pixel cap) cost their own rows only."""
    records = [dict(r) for r in clean_pairs[:24]]
    records[2]["image"] = records[2]["image"][:200]
    records[21]["image"] = png_claiming(13000, 13000)
    paths = write_clean_shards(str(tmp_path / "clean"), records[:16], rows_per_shard=16, row_group_size=4)
    corrupt_page(paths[0], 2)
    write_with_bad_text(str(tmp_path / "clean" / contract.shard_name(1)), records[16:], {3: b"\xff"}, row_group_size=8)
    dataset = load_clean_shards(str(tmp_path / "clean"))
    lost = {2, 8, 9, 10, 11, 19, 21}
    assert dataset.gallery.ids == [r["key"] for i, r in enumerate(records) if i not in lost]
    assert dataset.skipped == len(lost)
    err = capsys.readouterr().err
    assert f"{paths[0]}: row group 2 is corrupt" in err and f"image {records[2]['key']} does not decode" in err
    assert "row group 0: 1 row(s) hold text that is not valid UTF-8 (column 'caption')" in err
