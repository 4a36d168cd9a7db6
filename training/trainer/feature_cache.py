"""The locked-tower feature cache: `python -m training.cache_features`.

The image tower never changes during LiT training, so its outputs can be computed once and stored.
Training from the cache (`python -m training.train --cache DIR`) then skips JPEG decoding,
augmentation and the tower's forward pass, which dominate a LiT step's cost.

What is stored, per pair, as float16 (one shard per input shard, same rows minus those skipped:
corrupt images, row groups that do not read, captions that are not UTF-8):
- `pooled`: the tower's pooled feature (its [CLS], or mean of patch tokens) for each view;
- `tokens` (with `--token-pool N`): the patch tokens average-pooled to at most N (a square grid),
  for token-wise training; N bounds the cache's size (ViT-L/14 has 256 patch tokens of 1024).

The trade-off with augmentation: a cache freezes the augmentation. `--views 0` stores one
un-augmented view (eval transform); `--views K` stores K AutoAugment views and training picks one
at random per pair and epoch. Within 20 epochs K views repeat each view ~20/K times; the paper's
on-the-fly AutoAugment draws a new one every epoch, so a cache trades some augmentation diversity
(and K times the storage) for speed.

    python -m training.cache_features --data runs/demo/clean --output runs/cache \
        --image-tower vit_large_patch14_clip_224.openai --views 0 --token-pool 16
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import random
import sys
import time
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from filters import contract
from filters.contract.flags import Flag, add_flags, config_values, flag
from filters.contract.images import ImageDecodeError, decode_image
from filters.contract.shards import read_row_group
from training.model import LiTConfig, LiTModel, build_image_tower, tower_forward
from training.trainer.data import DataError, seeded
from training.transforms import image_transform

CACHE_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("caption", pa.string()),
    pa.field("pooled", pa.binary()),  # float16 [views, width]
    pa.field("tokens", pa.binary()),  # float16 [views, tokens, width], or null without --token-pool
])
META_NAME = "cache.json"
SOURCE_COLUMNS = ("key", "caption", "image")


@dataclasses.dataclass(frozen=True)
class FeatureCacheConfig:
    """How the cache is made; the tower's settings are the model's (`LiTConfig`, `TOWER_FLAGS`)."""

    data: str = dataclasses.field(metadata=flag("directory of clean shards"))
    output: str = dataclasses.field(metadata=flag("directory for the cache shards and cache.json"))
    views: int = dataclasses.field(default=0, metadata=flag("0: one un-augmented view; K: K AutoAugment views"))
    batch_size: int = dataclasses.field(default=64, metadata=flag("images per forward pass of the tower"))
    precision: str = dataclasses.field(default="bf16", metadata=flag("the tower's autocast", choices=("fp32", "bf16")))
    device: str = dataclasses.field(default="auto", metadata=flag("auto (cuda when there is a GPU), cpu, cuda:N"))
    seed: int = dataclasses.field(default=0, metadata=flag(
        "seeds a random tower (as the trainer does) and the augmented views"))

    def __post_init__(self) -> None:
        if self.views < 0 or self.batch_size <= 0:
            raise ValueError("--views must be >= 0 and --batch-size positive")


#: The tower's flags; the defaults are LiTConfig's, as in training.
TOWER_FLAGS = {
    "image_tower": Flag("timm name (as in training)"),
    "image_weights": Flag("local weights file for the tower"),
    "image_pretrained": Flag("random tower weights (tests)", negative="--no-pretrained"),
    "image_size": Flag("input resolution (default: the tower's own)"),
    "image_token_pool": Flag("also store patch tokens pooled to <= N (a square) for token-wise training; 0: none",
                             name="--token-pool", metavar="N"),
}


def read_cache_meta(directory: str) -> dict:
    path = contract.join(directory, META_NAME)
    if not contract.exists(path):
        raise FileNotFoundError(f"{directory} is not a feature cache (no {META_NAME}); "
                                "make one with python -m training.cache_features")
    return contract.read_json(path)


def count_cache_rows(directory: str) -> int:
    return int(read_cache_meta(directory)["rows"])


def check_cache_matches(cache_meta: dict, model: LiTModel) -> None:
    """A cache holds one tower's outputs: refuse to train another model's heads on it."""
    config = model.config
    for key, want in (("image_tower", config.image_tower), ("image_size", config.image_size),
                      ("tower_fingerprint", tower_fingerprint(model.image_tower))):
        if cache_meta.get(key) != want:
            raise DataError(f"the feature cache was made with {key}={cache_meta.get(key)!r}, the model has {want!r}")
    if config.similarity == "token_wise" or model.ranking_head is not None:
        if not cache_meta.get("tokens"):
            raise DataError("token-wise training and the ranking head need a cache with tokens "
                            "(cache_features --token-pool N)")
        if cache_meta.get("image_token_pool") != config.image_token_pool:
            raise DataError(f"the cache pooled tokens to {cache_meta.get('image_token_pool')}, the model expects "
                            f"--image-token-pool {config.image_token_pool}")


class CacheDecoder:
    """Rows of a cache shard -> {pooled [C], tokens [T, C]?, caption}; one view chosen per row."""

    def __init__(self, meta: dict, with_tokens: bool):
        self.views = max(1, int(meta["views"]))
        self.width = int(meta["width"])
        self.n_tokens = int(meta.get("tokens") or 0)
        self.with_tokens = with_tokens
        self.columns = ("key", "caption", "pooled", "tokens") if with_tokens else ("key", "caption", "pooled")

    def __call__(self, row: dict, rng_seed: int) -> dict | None:
        if row["pooled"] is None:
            return None
        view = random.Random(rng_seed).randrange(self.views)
        pooled = np.frombuffer(row["pooled"], dtype=np.float16).reshape(self.views, self.width)[view]
        sample = {"pooled": torch.from_numpy(pooled.astype(np.float32)), "caption": row["caption"] or ""}
        if self.with_tokens:
            tokens = np.frombuffer(row["tokens"], dtype=np.float16).reshape(self.views, self.n_tokens, self.width)
            sample["tokens"] = torch.from_numpy(tokens[view].astype(np.float32))
        return sample

    def collate(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        batch = {"pooled": torch.stack([s["pooled"] for s in samples])}
        if self.with_tokens:
            batch["tokens"] = torch.stack([s["tokens"] for s in samples])
        return batch


def source_rows(source: str, batch_size: int) -> Iterator[tuple[list[dict], int]]:
    """(rows, rows lost) in batches of at most `batch_size`, row group by row group. A row group
    that does not read, and rows whose text is not UTF-8, are lost: announced on stderr, naming
    the file and the row group, and counted, as the trainer's reader does."""
    parquet = contract.open_shard(source, pa.schema([contract.CLEAN_SCHEMA.field(c) for c in SOURCE_COLUMNS]))
    for index in range(parquet.metadata.num_row_groups):
        try:
            group = read_row_group(parquet, source, index, SOURCE_COLUMNS)
        except contract.ShardReadError as err:
            lost = parquet.metadata.row_group(index).num_rows
            print(f"warning: {err}; {lost} row(s) skipped", file=sys.stderr, flush=True)
            yield [], lost
            continue
        rows = [row for row in group.rows if row is not None]
        lost = len(group.rows) - len(rows)
        if lost:
            print(f"warning: {group.problem}; {lost} row(s) skipped", file=sys.stderr, flush=True)
        for start in range(0, max(1, len(rows)), batch_size):
            yield rows[start:start + batch_size], lost if start == 0 else 0


def cache_shard(tower, transforms: list, source: str, target: str, token_pool: int, batch_size: int,
                device: torch.device, seed: int, autocast) -> tuple[int, int]:
    """Write the cache shard of one clean shard; returns (rows written, rows skipped: corrupt
    images, unreadable row groups, text that is not UTF-8)."""
    skipped = 0
    written = 0
    with contract.ShardWriter(target, CACHE_SCHEMA) as writer:
        for batch, lost in source_rows(source, batch_size):
            skipped += lost
            pending = []
            for row in batch:
                try:
                    image = decode_image(row["image"])
                except ImageDecodeError:
                    skipped += 1
                    continue
                views = []
                for v, transform in enumerate(transforms):
                    with seeded(zlib.crc32(f"{seed}/{row['key']}/{v}".encode())):
                        views.append(transform(image))
                pending.append((row, views))
            if not pending:
                continue
            pixels = torch.stack([view for _, views in pending for view in views]).to(device)
            with autocast():
                pooled, tokens = tower_forward(tower, pixels, token_pool)
            k = len(transforms)
            pooled = pooled.float().reshape(len(pending), k, -1).cpu().numpy().astype(np.float16)
            tokens = tokens.float().reshape(len(pending), k, tokens.shape[1], -1).cpu().numpy().astype(np.float16)
            rows = [{"key": row["key"], "caption": row["caption"], "pooled": pooled[i].tobytes(),
                     "tokens": tokens[i].tobytes() if token_pool else None}
                    for i, (row, _) in enumerate(pending)]
            writer.write_records(rows)
            written += len(rows)
    return written, skipped


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.cache_features",
        description="Run the locked image tower once over the clean shards and store its outputs, so "
                    "training (--cache DIR) skips decoding and the tower. See the module docstring for "
                    "the trade-off with augmentation.")
    add_flags(p, FeatureCacheConfig, only=("data", "output"), required=("data", "output"))
    add_flags(p, LiTConfig, specs=TOWER_FLAGS)
    add_flags(p, FeatureCacheConfig, exclude=("data", "output"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = FeatureCacheConfig(**config_values(args, FeatureCacheConfig))
        model_config = LiTConfig(**config_values(args, LiTConfig, specs=TOWER_FLAGS))
        sources = contract.list_shards(config.data)
        if not sources:
            raise ValueError(f"no shards (*.parquet) in {config.data}")
        wanted = pa.schema([contract.CLEAN_SCHEMA.field(c) for c in SOURCE_COLUMNS])
        for source in sources:  # a shard without a needed column fails before any work
            contract.open_shard(source, wanted)
        device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available()
                              else ("cpu" if config.device == "auto" else config.device))
        torch.manual_seed(config.seed)  # the trainer seeds the same way: a random tower matches it
        tower = build_image_tower(model_config).to(device)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    image_size, token_pool = model_config.image_size, model_config.image_token_pool
    if config.views == 0:
        transforms = [image_transform(tower, training=False, image_size=image_size)]
    else:
        transforms = [image_transform(tower, training=True, image_size=image_size)] * config.views
    autocast = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if config.precision == "bf16"
                else (lambda: torch.autocast(device.type, enabled=False)))
    total, skipped, started = 0, 0, time.perf_counter()
    for i, source in enumerate(sources):
        target = contract.join(config.output, os.path.basename(source))
        n, s = cache_shard(tower, transforms, source, target, token_pool, config.batch_size, device,
                           config.seed, autocast)
        total, skipped = total + n, skipped + s
        rate = total / max(1e-9, time.perf_counter() - started)
        print(f"shard {i + 1}/{len(sources)} | {total} rows | {skipped} skipped | {rate:.1f} rows/s",
              flush=True)
    probe_tokens = tower_forward(tower, transforms[0](blank_image(image_size, tower)).unsqueeze(0).to(device),
                                 token_pool)[1].shape[1] if token_pool else 0
    meta = {"image_tower": model_config.image_tower, "image_size": image_size, "width": tower.num_features,
            "views": max(1, config.views), "augmented": config.views > 0, "tokens": probe_tokens,
            "image_token_pool": token_pool, "rows": total, "skipped": skipped, "dtype": "float16",
            "tower_fingerprint": tower_fingerprint(tower)}
    contract.write_json(contract.join(config.output, META_NAME), meta, indent=2)
    return 0


def tower_fingerprint(tower: torch.nn.Module) -> str:
    """A digest of the tower's weights, so training refuses a cache made by another tower."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tower.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def blank_image(image_size: int | None, tower) -> Image.Image:
    """A grey image of the tower's input size, to learn the token count of the cache."""
    side = image_size or tower.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    return Image.new("RGB", (side, side), (128, 128, 128))
