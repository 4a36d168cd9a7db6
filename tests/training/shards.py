"""Clean shards for the training tests, from the foundation's synthetic generator.

Without running the filter job: keep the synthetic pairs whose `expected_reason` is None, with
their captions normalised, and project their records onto the clean columns.
"""

from __future__ import annotations

import os

from filters import contract
from pipelines.synthetic import generate_pairs


def clean_records(n_raw: int, seed: int = 0, size: int = 256) -> list[dict]:
    """The CLEAN_SCHEMA records of the pairs the filter keeps, out of `n_raw` generated pairs."""
    records = []
    for pair in generate_pairs(n_raw, seed=seed, size=size):
        if pair.expected_reason is None:
            records.append(pair.to_clean_record())
    return records


def write_clean_shards(directory: str, records: list[dict], rows_per_shard: int, row_group_size: int) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, start in enumerate(range(0, len(records), rows_per_shard)):
        path = contract.join(directory, contract.shard_name(i))
        with contract.ShardWriter(path, contract.CLEAN_SCHEMA, row_group_size=row_group_size) as writer:
            writer.write_records(records[start:start + rows_per_shard])
        paths.append(path)
    return paths
