"""The command line's retrieval layouts: options that do not fit a layout are refused."""

from __future__ import annotations

import pytest

from tests.support.evaluation_sets import write_tsv_jsonl
from training.evaluation.datasets.layouts import LAYOUTS, load_retrieval_set


def test_the_tsv_layout_reads_its_default_split(tmp_path):
    write_tsv_jsonl(str(tmp_path / "set"), n_images=2, captions_per_image=1)
    dataset = load_retrieval_set("tsv", str(tmp_path / "set"))
    assert dataset.name == "set-test" and len(dataset.gallery) == 2


@pytest.mark.parametrize("layout, options, message", [
    ("coco-cn", {}, "needs --images"),
    ("tsv", {"max_images": 5}, "evaluated whole"),
    ("muge", {"split_file": "x.txt"}, "flickr layout only"),
    ("imagenet", {}, "layout must be one of"),
])
def test_options_that_do_not_fit_the_layout(tmp_path, layout, options, message):
    assert "flickr" in LAYOUTS
    with pytest.raises(ValueError, match=message):
        load_retrieval_set(layout, str(tmp_path), **options)
