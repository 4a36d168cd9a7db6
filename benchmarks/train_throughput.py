"""Samples/s of a LiT training step, with and without the locked-tower feature cache, in one run.

A step is what `python -m training.train` does: read a batch from the shards (decode the JPEGs and
apply the training transform with AutoAugment, run the locked image tower) or from the cache (read
the stored tower outputs), then the text tower's forward and backward, the contrastive loss and a
LAMB step. The towers default to ViT-B/16 (random weights, same cost as pretrained)
and a 12-layer 768-wide BERT. Data: synthetic clean pairs (`pipelines.synthetic`).

    python -m benchmarks.train_throughput                              # CPU, fp32
    python -m benchmarks.train_throughput --device cuda --precision bf16 \
        --image-tower vit_large_patch14_clip_224 --batch 256

The cache itself is made once (`training.cache_features`); its cost is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch


def write_clean_shards(directory: str, pairs: int, size: int) -> int:
    from filters import contract
    from pipelines.synthetic import generate_pairs

    records = []
    for pair in generate_pairs(pairs, seed=0, size=size):
        if pair.expected_reason is None:
            records.append(pair.to_clean_record())
    contract.write_shard(contract.join(directory, contract.shard_name(0)), records, contract.CLEAN_SCHEMA)
    return len(records)


def measure(model, loss_fn, optimizer, streams: dict, autocast, device, warmup: int, steps: int) -> dict:
    """Seconds per step of each stream's mode, the modes taking turns step by step so that a busy,
    shared machine slows both alike: reading (decode + transform + tower, or a cache read), the
    loss's forward and backward, and the optimiser step."""
    from training.trainer.step import contrastive_backward
    from training.trainer.train import to_micro_batch

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    iterators = {name: iter(stream) for name, stream in streams.items()}
    parts = {name: {"data_and_tower": 0.0, "text_forward_backward": 0.0, "optimizer": 0.0} for name in streams}
    for i in range(warmup + steps):
        for name, batches in iterators.items():
            t0 = now()
            micro = to_micro_batch(next(batches), model, device, autocast)
            t1 = now()
            optimizer.zero_grad(set_to_none=True)
            contrastive_backward(model, loss_fn, [micro], autocast)
            t2 = now()
            optimizer.step()
            t3 = now()
            if i >= warmup:
                for key, seconds in zip(parts[name], (t1 - t0, t2 - t1, t3 - t2)):
                    parts[name][key] += seconds / steps
    out = {}
    for name, stream in streams.items():
        per_step = sum(parts[name].values())
        out[name] = {"seconds_per_step": round(per_step, 3), "samples_per_s": round(stream.batch_size / per_step, 2),
                     "seconds": {k: round(v, 3) for k, v in parts[name].items()}}
    if device.type == "cuda":
        out["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-tower", default="vit_base_patch16_224")
    p.add_argument("--text-layers", type=int, default=12)
    p.add_argument("--text-width", type=int, default=768)
    p.add_argument("--text-heads", type=int, default=12)
    p.add_argument("--batch", type=int, default=16, help="pairs per step")
    p.add_argument("--steps", type=int, default=3, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--pairs", type=int, default=60, help="synthetic pairs generated (about 60%% are clean)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="train_throughput-") as work:  # shards and cache, removed after
        return run(args, work)


def run(args: argparse.Namespace, work: str) -> int:
    from filters.contract import CLEAN_SCHEMA
    from training.loss import ContrastiveLoss
    from training.model import LiTConfig, LiTModel
    from training.tokenizer import default_tokenizer
    from training.trainer import feature_cache
    from training.trainer.data import ImageDecoder, PairStream, scan_shards
    from training.trainer.feature_cache import CACHE_SCHEMA, CacheDecoder, read_cache_meta
    from training.trainer.optim import OptimConfig, build_optimizer
    from training.transforms import image_transform

    device = torch.device(args.device)
    autocast = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.precision == "bf16"
                else (lambda: torch.autocast(device.type, enabled=False)))
    clean, cache = os.path.join(work, "clean"), os.path.join(work, "cache")
    rows = write_clean_shards(clean, args.pairs, 256)
    torch.manual_seed(0)
    config = LiTConfig(image_tower=args.image_tower, image_pretrained=False, text_layers=args.text_layers,
                       text_width=args.text_width, text_heads=args.text_heads)
    model = LiTModel(config).to(device).train()
    optimizer = build_optimizer(model, OptimConfig(warmup_steps=0))
    loss_fn = ContrastiveLoss("global")
    tokenizer = default_tokenizer()
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
               "threads": torch.get_num_threads(), "image_tower": args.image_tower,
               "text_tower": f"BERT {args.text_layers}x{args.text_width}", "batch": args.batch,
               "precision": args.precision, "pairs": rows}

    started = time.perf_counter()
    cache_args = ["--data", clean, "--output", cache, "--image-tower", args.image_tower, "--no-pretrained",
                  "--precision", args.precision, "--device", args.device, "--batch-size", str(args.batch)]
    if feature_cache.main(cache_args) != 0:
        raise SystemExit("making the cache failed")
    results["cache_build_images_per_s"] = round(rows / (time.perf_counter() - started), 2)

    transform = image_transform(model.image_tower, training=True)
    decoder = CacheDecoder(read_cache_meta(cache), with_tokens=False)
    streams = {
        "without_cache": PairStream(scan_shards(clean, CLEAN_SCHEMA, ImageDecoder.columns), ImageDecoder(transform),
                                    tokenizer, args.batch, shuffle_buffer=64),
        "with_cache": PairStream(scan_shards(cache, CACHE_SCHEMA, decoder.columns), decoder, tokenizer, args.batch,
                                 shuffle_buffer=64, schema=CACHE_SCHEMA),
    }
    results.update(measure(model, loss_fn, optimizer, streams, autocast, device, args.warmup, args.steps))
    for name in streams:
        print(f"{name}: {results[name]}", flush=True)
    results["speedup"] = round(results["with_cache"]["samples_per_s"] / results["without_cache"]["samples_per_s"], 2)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
