"""A raw corpus whose verdicts need the whole corpus: URLs repeated across shards (before and after
their first success, some only ever failing), a Zipf-like spread of captions with counts on both
sides of the frequency threshold, hot captions on rows without a URL, and every per-pair defect of
pipelines.synthetic underneath, so the global facts meet every other rule."""

from __future__ import annotations

import random

from filters import contract
from pipelines import synthetic

# Counts around the threshold (10 kept, 11 dropped) and far above it.
CAPTION_POOL = tuple(f"{bg}背景上的{n}号图案" for bg in ("红色", "绿色", "蓝色", "黄色") for n in range(8))


def duplicated_corpus(rows: int = 600, seed: int = 3, base_pairs: int = 160) -> list[dict]:
    """`rows` raw records (RAW_SCHEMA), deterministic for its arguments; `rank` is the row's
    number, unique, so outcomes can be read back per row."""
    rng = random.Random(seed)
    base = synthetic.generate_pairs(base_pairs, seed=seed, size=224)
    records: list[dict] = []
    for i in range(rows):
        record = rng.choice(base).to_raw_record()
        roll = rng.random()
        if roll < 0.25 and records:
            earlier = rng.choice(records)  # the same URL again, maybe shards later
            record["url"], record["key"] = earlier["url"], earlier["key"]
        else:
            record["url"] = f"https://corpus.example/{i:05d}.jpg"
            record["key"] = contract.url_key(record["url"])
        if roll > 0.97 and record["status"] == contract.DownloadStatus.SUCCESS:
            record["url"] = ""  # a success without a URL: never a duplicate, its caption not counted
        if rng.random() < 0.45:
            # Zipf-like: the k-th pool caption is chosen with weight 1/k
            k = min(int(1 / (1 - rng.random() * 0.985)), len(CAPTION_POOL)) - 1
            caption = CAPTION_POOL[k]
            record["caption_raw"] = caption if rng.random() < 0.8 else f"  {caption}\u3000"
        record["rank"] = i
        records.append(record)
    return records


def write_corpus(records: list[dict], directory: str, rows_per_shard: int = 100) -> list[str]:
    paths = []
    for i in range(0, len(records), rows_per_shard):
        path = contract.join(directory, contract.shard_name(i // rows_per_shard))
        contract.write_shard(path, records[i:i + rows_per_shard], contract.RAW_SCHEMA)
        paths.append(path)
    return paths
