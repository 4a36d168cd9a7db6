"""Clean shards for the training tests, from the foundation's synthetic generator.

The filter stage is built concurrently, so the tests make clean shards the way it will: keep the
synthetic pairs whose `expected_reason` is None and project their records onto CLEAN_SCHEMA.
"""

from __future__ import annotations

import os

from pipelines import schema
from pipelines.synthetic import generate_pairs


def clean_records(n_raw: int, seed: int = 0, size: int = 256) -> list[dict]:
    """The CLEAN_SCHEMA records of the pairs the filter keeps, out of `n_raw` generated pairs."""
    records = []
    for pair in generate_pairs(n_raw, seed=seed, size=size):
        if pair.expected_reason is None:
            raw = pair.to_raw_record()
            records.append({name: raw[name] for name in schema.CLEAN_SCHEMA.names})
    return records


def write_clean_shards(directory: str, records: list[dict], rows_per_shard: int, row_group_size: int) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, start in enumerate(range(0, len(records), rows_per_shard)):
        path = schema.join(directory, schema.shard_name(i))
        with schema.ShardWriter(path, schema.CLEAN_SCHEMA, row_group_size=row_group_size) as writer:
            writer.write_records(records[start:start + rows_per_shard])
        paths.append(path)
    return paths
