"""This project's clean Parquet shards (`filters.contract`), for held-out evaluation of our own corpus."""

from __future__ import annotations

import os

from filters.contract import CLEAN_SCHEMA, list_shards, read_shard
from training.evaluation.datasets.galleries import BytesGallery, EvalDataError
from training.evaluation.datasets.retrieval_set import RetrievalSet, build_retrieval_set


def load_clean_shards(directory: str, max_pairs: int | None = None) -> RetrievalSet:
    """Pairs from clean Parquet shards (filters.contract): one caption per image, by `key`."""
    shards = list_shards(directory)
    if not shards:
        raise EvalDataError(f"the image gallery is empty: no clean shards in {directory}")
    keys, images, captions = [], [], []
    seen: set[str] = set()  # a key is a URL; the filter keeps one row per URL, but be sure
    for shard in shards:
        table = read_shard(shard, CLEAN_SCHEMA, columns=["key", "caption", "image"])
        for key, caption, image in zip(*(table.column(c).to_pylist() for c in ("key", "caption", "image"))):
            if image is None or not caption:
                continue
            if key in seen:
                continue
            seen.add(key)
            keys.append(key)
            images.append(image)
            captions.append(caption)
            if max_pairs is not None and len(keys) >= max_pairs:
                break
        if max_pairs is not None and len(keys) >= max_pairs:
            break
    if not keys:
        raise EvalDataError(f"the image gallery is empty: the shards in {directory} hold no image")
    gallery = BytesGallery(keys, images, directory)
    rows = [(key, caption, [key]) for key, caption in zip(keys, captions)]
    return build_retrieval_set(os.path.basename(os.path.normpath(directory)) or "shards", gallery, rows, ("i2t", "t2i"))
