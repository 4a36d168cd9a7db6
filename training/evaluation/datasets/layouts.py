"""The retrieval layouts of `python -m training.evaluate retrieval --layout`, and their options."""

from __future__ import annotations

import os

from training.evaluation.datasets.aic_icc import load_aic_icc
from training.evaluation.datasets.clean_shards import load_clean_shards
from training.evaluation.datasets.coco_cn import load_coco_cn
from training.evaluation.datasets.flickr import load_flickr_cn
from training.evaluation.datasets.muge import load_muge
from training.evaluation.datasets.retrieval_set import RetrievalSet, without_undecodable
from training.evaluation.datasets.tsv import load_tsv_jsonl

LAYOUTS = ("tsv", "muge", "flickr", "coco-cn", "aic-icc", "shards")
DEFAULT_SPLIT = {"tsv": "test", "muge": "valid", "coco-cn": "test"}


def load_retrieval_set(layout: str, data: str, images: str | None = None, split: str | None = None,
                       split_file: str | None = None, max_images: int | None = None) -> RetrievalSet:
    """The set of `layout` (see `training.evaluation.datasets`), without the images that do not
    decode: each is named on stderr and counted in the set's `skipped`."""
    _check_options(layout, split_file, max_images)
    if layout == "shards":  # the shard reader checks every image as it reads it
        return load_clean_shards(data, max_images)
    return without_undecodable(_load(layout, data, images, split, split_file, max_images))


def _check_options(layout: str, split_file: str | None, max_images: int | None) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if max_images is not None and layout not in ("aic-icc", "shards"):
        raise ValueError(f"--max-images applies to the aic-icc and shards layouts, not {layout} (a benchmark "
                         "split is evaluated whole)")
    if split_file is not None and layout != "flickr":
        raise ValueError("--split-file applies to the flickr layout only")


def _load(layout: str, data: str, images: str | None, split: str | None, split_file: str | None,
          max_images: int | None) -> RetrievalSet:
    """Dispatch to the loader of a benchmark layout."""
    split = split or DEFAULT_SPLIT.get(layout)
    needs_images = layout in ("flickr", "coco-cn", "aic-icc")
    if needs_images and not images:
        raise ValueError(f"the {layout} layout needs --images (the folder of the image files)")
    if layout == "tsv":
        return load_tsv_jsonl(os.path.join(data, f"{split}_imgs.tsv"), os.path.join(data, f"{split}_texts.jsonl"),
                              name=f"{os.path.basename(os.path.normpath(data))}-{split}")
    if layout == "muge":
        return load_muge(data, split)
    if layout == "flickr":
        return load_flickr_cn(data, images, split_file)
    if layout == "coco-cn":
        return load_coco_cn(data, images, split)
    return load_aic_icc(data, images, max_images)
