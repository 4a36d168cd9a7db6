"""Clean shards written by hand, for tests of the stages that read them."""

from __future__ import annotations

import hashlib
import os

from filters import contract


def record(i: int, image: bytes) -> dict:
    return {"key": f"k{i}", "url": f"http://example.test/{i}.jpg", "caption": f"第{i}张图片",
            "image": image, "width": 300, "height": 300,
            "sha256": hashlib.sha256(image).hexdigest(), "query": "图片"}


def write_shards(directory: str, records: list[dict], per_shard: int) -> None:
    os.makedirs(directory, exist_ok=True)
    for i, start in enumerate(range(0, len(records), per_shard)):
        with contract.ShardWriter(contract.join(directory, contract.shard_name(i)), contract.CLEAN_SCHEMA,
                                row_group_size=16) as writer:
            writer.write_records(records[start:start + per_shard])
