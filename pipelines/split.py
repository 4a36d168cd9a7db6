"""Split clean shards into train and test sides by image content, so no image is on both sides.

A pair's side depends only on its image's sha256 (salted with `--seed`): every copy of an image,
under any URL or caption, lands on the same side, and the split is stable when shards are added.

    python -m pipelines.split --input runs/filter/clean --output runs/filter/split --test-share 0.1

writes `OUTPUT/train/` and `OUTPUT/test/` (one shard per side for each input shard that has rows
for it, same name, written atomically) and `OUTPUT/split.json` with the counts per shard. The
manifest is saved every few shards and at the end, and a rerun skips the shards it lists (a shard
split again after a kill is rewritten whole, under the same name).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from filters import contract

SIDES = ("train", "test")


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    test_share: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.test_share < 1.0:
            raise ValueError(f"test_share must be between 0 and 1, got {self.test_share}")


def is_test(sha256: str, config: SplitConfig = SplitConfig()) -> bool:
    """True when the image with this sha256 belongs to the test side."""
    digest = hashlib.sha256(f"{config.seed}:{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < config.test_share * 2**64


def split_table(table: pa.Table, config: SplitConfig, where: str = "") -> dict[str, pa.Table]:
    """The rows of `table` on each side; a row without a sha256 is an error (clean shards have one)."""
    hashes = table.column("sha256").to_pylist()
    missing = [i for i, value in enumerate(hashes) if not value]
    if missing:
        raise contract.ShardSchemaError(f"{where}: {len(missing)} row(s) without a sha256 (first: row {missing[0]})")
    mask = pa.array([is_test(value, config) for value in hashes], type=pa.bool_())
    return {"test": table.filter(mask), "train": table.filter(pc.invert(mask))}


def split_shard(path: str, output: str, config: SplitConfig) -> dict[str, int]:
    """Split one clean shard, row group by row group; returns the rows written per side."""
    name = path.rstrip("/").rpartition("/")[2]
    targets = {side: contract.join(output, side, name) for side in SIDES}
    writers: dict[str, contract.ShardWriter] = {}
    counts = dict.fromkeys(SIDES, 0)
    try:
        for batch in contract.iter_shard_batches(path, contract.CLEAN_SCHEMA):
            for side, part in split_table(pa.Table.from_batches([batch]), config, path).items():
                if part.num_rows:
                    if side not in writers:
                        writers[side] = contract.ShardWriter(targets[side], contract.CLEAN_SCHEMA)
                    writers[side].write_table(part)
                    counts[side] += part.num_rows
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        writer.close()
    return counts


def split_shards(input_dir: str, output: str, config: SplitConfig = SplitConfig(), log=print,
                 save_every: int = 20) -> dict:
    """Split every clean shard in `input_dir` into `output/{train,test}/`; returns (and writes)
    `output/split.json`, which is also saved every `save_every` shards so that a killed run
    resumes. Shards recorded in an earlier run's split.json are skipped."""
    shards = contract.list_shards(input_dir)
    if not shards:
        raise FileNotFoundError(f"no clean shards (*.parquet) in {input_dir}")
    manifest_path = contract.join(output, "split.json")
    previous = _read_manifest(manifest_path, config)
    per_shard: dict[str, dict[str, int]] = dict(previous)
    for side in SIDES:
        contract.makedirs(contract.join(output, side))
        contract.remove_stale_temporaries(contract.join(output, side))
    split_now = 0
    for index, path in enumerate(shards, 1):
        name = path.rstrip("/").rpartition("/")[2]
        if name in per_shard:
            continue
        per_shard[name] = split_shard(path, output, config)
        log(f"split: {name}: {per_shard[name]['train']} train, {per_shard[name]['test']} test ({index}/{len(shards)})")
        split_now += 1
        if split_now % save_every == 0:
            _write_manifest(manifest_path, input_dir, config, per_shard)
    manifest = _write_manifest(manifest_path, input_dir, config, per_shard)
    log(f"split: {manifest['pairs']['train']} train and {manifest['pairs']['test']} test pairs in {output}")
    return manifest


def _write_manifest(path: str, input_dir: str, config: SplitConfig, per_shard: dict[str, dict[str, int]]) -> dict:
    manifest = {
        "input": input_dir,
        "rule": "test when sha256(f'{seed}:{image sha256}') < test_share * 2**64 (first 8 bytes, big-endian)",
        "test_share": config.test_share,
        "seed": config.seed,
        "pairs": {side: sum(c[side] for c in per_shard.values()) for side in SIDES},
        "shards": per_shard,
    }
    contract.write_json(path, manifest)
    return manifest


def _read_manifest(path: str, config: SplitConfig) -> dict[str, dict[str, int]]:
    """Shards done by an earlier run with the same settings ({} when none or different)."""
    if not contract.exists(path):
        return {}
    manifest = contract.read_json(path)
    if manifest.get("test_share") != config.test_share or manifest.get("seed") != config.seed:
        raise ValueError(f"{path} was written with test_share={manifest.get('test_share')} "
                         f"seed={manifest.get('seed')}; use another --output or the same settings")
    return dict(manifest.get("shards", {}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.split",
        description="Split clean shards into OUTPUT/train and OUTPUT/test by image sha256 (no image on "
                    "both sides; duplicates of an image stay together). Writes OUTPUT/split.json; a rerun "
                    "skips the shards already split.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--input", required=True, help="directory of clean shards (the filter's clean/)")
    parser.add_argument("--output", required=True, help="directory for train/, test/ and split.json")
    parser.add_argument("--test-share", type=float, default=SplitConfig.test_share,
                        help="expected share of images on the test side")
    parser.add_argument("--seed", type=int, default=SplitConfig.seed, help="salt of the hash (another split)")
    args = parser.parse_args(argv)
    try:
        config = SplitConfig(test_share=args.test_share, seed=args.seed)
        split_shards(args.input, args.output, config, log=lambda line: print(line, file=sys.stderr, flush=True))
    except (ValueError, FileNotFoundError, contract.ShardSchemaError, contract.ShardReadError) as error:
        print(f"split: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
