"""The locked-tower feature cache: `python -m training.cache_features`.

The image tower never changes during LiT training, so its outputs can be computed once and stored.
Training from the cache (`python -m training.train --cache DIR`) then skips JPEG decoding,
augmentation and the tower's forward pass, which dominate a LiT step's cost.

What is stored, per pair, as float16 (one shard per input shard, same rows minus corrupt images):
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
import hashlib
import json
import os
import random
import sys
import time
import zlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch

from filters import contract
from training.data import decode_image, seeded
from training.model import LiTConfig, build_image_tower, tower_forward
from training.transforms import image_transform

CACHE_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("caption", pa.string()),
    pa.field("pooled", pa.binary()),  # float16 [views, width]
    pa.field("tokens", pa.binary()),  # float16 [views, tokens, width], or null without --token-pool
])
META_NAME = "cache.json"


def read_cache_meta(directory: str) -> dict:
    path = os.path.join(directory, META_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{directory} is not a feature cache (no {META_NAME}); "
                                "make one with python -m training.cache_features")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def count_cache_rows(directory: str) -> int:
    return int(read_cache_meta(directory)["rows"])


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


def cache_shard(tower, transforms: list, source: str, target: str, token_pool: int, batch_size: int,
                device: torch.device, seed: int, autocast) -> tuple[int, int]:
    """Write the cache shard of one clean shard; returns (rows written, corrupt images skipped)."""
    rows, skipped = [], 0
    written = 0
    with contract.ShardWriter(target, CACHE_SCHEMA) as writer:
        for record_batch in contract.iter_shard_batches(source, contract.CLEAN_SCHEMA,
                                                            columns=["key", "caption", "image"],
                                                            batch_size=batch_size):
            pending = []
            for row in record_batch.to_pylist():
                image = decode_image(row["image"])
                if image is None:
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
                    "the trade-off with augmentation.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="directory of clean shards")
    p.add_argument("--output", required=True, help="directory for the cache shards and cache.json")
    p.add_argument("--image-tower", default=LiTConfig().image_tower, help="timm name (as in training)")
    p.add_argument("--image-weights", help="local weights file for the tower")
    p.add_argument("--no-pretrained", action="store_true", help="random tower weights (tests)")
    p.add_argument("--image-size", type=int, help="input resolution (default: the tower's own)")
    p.add_argument("--views", type=int, default=0, help="0: one un-augmented view; K: K AutoAugment views")
    p.add_argument("--token-pool", type=int, default=0,
                   help="also store patch tokens pooled to <= N (a square) for token-wise training; 0: none")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.views < 0 or args.batch_size <= 0:
            raise ValueError("--views must be >= 0 and --batch-size positive")
        config = LiTConfig(image_tower=args.image_tower, image_pretrained=not args.no_pretrained,
                           image_weights=args.image_weights, image_size=args.image_size,
                           image_token_pool=args.token_pool)
        sources = contract.list_shards(args.data)
        if not sources:
            raise ValueError(f"no shards (*.parquet) in {args.data}")
        for source in sources:  # a shard without a needed column fails before any work
            contract.open_shard(source, pa.schema([contract.CLEAN_SCHEMA.field(c)
                                                       for c in ("key", "caption", "image")]))
        device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                              else ("cpu" if args.device == "auto" else args.device))
        torch.manual_seed(args.seed)  # the trainer seeds the same way: a random tower matches it
        tower = build_image_tower(config).to(device)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.views == 0:
        transforms = [image_transform(tower, training=False, image_size=args.image_size)]
    else:
        transforms = [image_transform(tower, training=True, image_size=args.image_size)] * args.views
    autocast = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.precision == "bf16"
                else (lambda: torch.autocast(device.type, enabled=False)))
    os.makedirs(args.output, exist_ok=True)
    total, skipped, started = 0, 0, time.perf_counter()
    for i, source in enumerate(sources):
        target = contract.join(args.output, os.path.basename(source))
        n, s = cache_shard(tower, transforms, source, target, args.token_pool, args.batch_size, device,
                           args.seed, autocast)
        total, skipped = total + n, skipped + s
        rate = total / max(1e-9, time.perf_counter() - started)
        print(f"shard {i + 1}/{len(sources)} | {total} rows | {skipped} corrupt skipped | {rate:.1f} rows/s",
              flush=True)
    probe_tokens = tower_forward(tower, transforms[0](decode_blank(args.image_size, tower)).unsqueeze(0).to(device),
                                 args.token_pool)[1].shape[1] if args.token_pool else 0
    meta = {"image_tower": args.image_tower, "image_size": args.image_size, "width": tower.num_features,
            "views": max(1, args.views), "augmented": args.views > 0, "tokens": probe_tokens,
            "image_token_pool": args.token_pool, "rows": total, "skipped": skipped, "dtype": "float16",
            "tower_fingerprint": tower_fingerprint(tower)}
    contract.write_json(os.path.join(args.output, META_NAME), meta, indent=2)
    return 0


def tower_fingerprint(tower: torch.nn.Module) -> str:
    """A digest of the tower's weights, so training refuses a cache made by another tower."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tower.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def decode_blank(image_size: int | None, tower) -> "object":
    """A grey image of the tower's input size, to learn the token count of the cache."""
    from PIL import Image  # noqa: PLC0415

    side = image_size or tower.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    return Image.new("RGB", (side, side), (128, 128, 128))


if __name__ == "__main__":
    sys.exit(main())
