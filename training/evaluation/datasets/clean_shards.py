"""This project's clean Parquet shards (`filters.contract`), for held-out evaluation of our own corpus.

The shards are read as the trainer reads them: a row group that does not read (a corrupt page), a
caption that is not UTF-8 and an image that does not decode (`filters.contract.images`, the one
decoder and pixel cap) are skipped, each announced on stderr naming the file, and counted in the
set's `skipped`, so one bad record does not stop the evaluation of the others.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import pyarrow as pa

from filters.contract import CLEAN_SCHEMA, ShardReadError, list_shards, open_shard
from filters.contract.images import image_decodes
from filters.contract.shards import read_row_group
from training.evaluation.datasets.galleries import BytesGallery, EvalDataError
from training.evaluation.datasets.retrieval_set import RetrievalSet, build_retrieval_set

COLUMNS = ("key", "caption", "image")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _shard_rows(shard: str) -> tuple[list[dict], int]:
    """The readable rows of one shard, and how many it could not give."""
    parquet = open_shard(shard, pa.schema([CLEAN_SCHEMA.field(c) for c in COLUMNS]))
    rows, lost = [], 0
    for index in range(parquet.metadata.num_row_groups):
        try:
            group = read_row_group(parquet, shard, index, COLUMNS)
        except ShardReadError as err:
            n = parquet.metadata.row_group(index).num_rows
            _warn(f"{err}; {n} row(s) skipped")
            lost += n
            continue
        kept = [row for row in group.rows if row is not None]
        if len(kept) < len(group.rows):
            _warn(f"{group.problem}; {len(group.rows) - len(kept)} row(s) skipped")
            lost += len(group.rows) - len(kept)
        rows += kept
    return rows, lost


def load_clean_shards(directory: str, max_pairs: int | None = None) -> RetrievalSet:
    """Pairs from clean Parquet shards (filters.contract): one caption per image, by `key`."""
    shards = list_shards(directory)
    if not shards:
        raise EvalDataError(f"the image gallery is empty: no clean shards in {directory}")
    keys, images, captions = [], [], []
    seen: set[str] = set()  # a key is a URL; the filter keeps one row per URL, but be sure
    skipped = 0
    for shard in shards:
        rows, lost = _shard_rows(shard)
        skipped += lost
        for row in rows:
            key, caption, image = row["key"], row["caption"], row["image"]
            if image is None or not caption:
                continue
            if key in seen:
                continue
            if not image_decodes(image):
                _warn(f"{shard}: image {key} does not decode; skipped")
                skipped += 1
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
        raise EvalDataError(f"the image gallery is empty: the shards in {directory} hold no image that decodes")
    gallery = BytesGallery(keys, images, directory)
    rows = [(key, caption, [key]) for key, caption in zip(keys, captions)]
    dataset = build_retrieval_set(os.path.basename(os.path.normpath(directory)) or "shards", gallery, rows,
                                  ("i2t", "t2i"))
    return dataclasses.replace(dataset, skipped=skipped)
