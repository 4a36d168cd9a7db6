"""LiT contrastive training on the clean shards: `python -m training.train`, or torchrun for DDP.

    python -m training.train --data runs/demo/clean --output runs/train
    torchrun --nproc_per_node 8 -m training.train --data ... --output ... --global-batch 4096
    python -m training.train --data DIR --output OUT --tiny --steps 20 --global-batch 16   # smoke run

Each step: `accum_freq` micro-batches per rank go through the locked tower (or come from a feature
cache), the trainable heads embed them, every rank's embeddings are gathered and the rank's rows
are scored against all columns (GradCache keeps the whole accumulated global batch as negatives),
then LAMB steps on a cosine schedule with warm-up. Rank 0 logs a progress line and TensorBoard
scalars and writes checkpoints atomically; `--resume latest` continues exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from filters import contract
from training import checkpoint as ckpt
from training import distributed as dist_utils
from training.data import DataError, ImageDecoder, PairStream, StreamTracker, make_loader, scan_shards
from training.loss import ContrastiveLoss
from training.model import LiTConfig, LiTModel, check_timm_name
from training.optim import OptimConfig, build_optimizer, build_scheduler
from training.step import MicroBatch, contrastive_backward
from training.tokenizer import TokenizerError, load_tokenizer
from training.transforms import image_transform

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The run's settings other than the model's and the optimiser's (README "Train" explains them)."""

    data: str | None  # clean shards; may be None when training from `cache`
    output: str
    cache: str | None = None  # a feature cache (python -m training.cache_features) to train from
    steps: int | None = None  # None: `epochs` over the data
    epochs: float = 20.0  # the paper
    global_batch: int = 4096  # over all ranks and accumulation micro-batches
    accum_freq: int = 1  # micro-batches per step and rank (GradCache)
    workers: int = 4  # DataLoader workers per rank
    shuffle_buffer: int = 2048
    seed: int = 0
    precision: str = "bf16"
    device: str = "auto"  # auto: cuda:LOCAL_RANK when available, else cpu
    auto_augment: str | None = "original"  # the paper's AutoAugment; None: no augmentation
    crop_scale_min: float = 0.5
    tokenizer: str | None = None  # vocab.txt, tokenizer dir or hub name; None: cn-clip's vocab
    log_every: int = 50
    save_every: int = 1000
    keep_checkpoints: int = 3
    resume: str | None = None  # "latest" or a checkpoint path
    stop_at: int | None = None  # save and stop at this step (the schedule still spans `steps`)
    val_dir: str | None = None
    val_classnames: str | None = None
    val_every: int = 0

    def __post_init__(self) -> None:
        if not self.data and not self.cache:
            raise ValueError("give --data (clean shards) or --cache (a feature cache)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.steps is not None and self.steps <= 0:
            raise ValueError("steps must be positive")
        if self.epochs <= 0 or self.global_batch <= 0 or self.accum_freq <= 0:
            raise ValueError("epochs, global_batch and accum_freq must be positive")
        if self.workers < 0 or self.shuffle_buffer < 1 or self.log_every < 1 or self.save_every < 1:
            raise ValueError("workers >= 0, shuffle_buffer >= 1, log_every >= 1, save_every >= 1")
        if not 0.0 < self.crop_scale_min <= 1.0:
            raise ValueError("crop_scale_min must lie in (0, 1]")
        if self.stop_at is not None and self.stop_at <= 0:
            raise ValueError("stop_at must be positive")
        if self.val_every and not (self.val_dir and self.val_classnames):
            raise ValueError("--val-every needs --val-dir and --val-classnames")

    def micro_batch(self, world_size: int) -> int:
        """Rows per micro-batch and rank; the global batch must split evenly."""
        parts = world_size * self.accum_freq
        if self.global_batch % parts:
            raise ValueError(f"global batch {self.global_batch} does not split over {world_size} ranks x "
                             f"{self.accum_freq} micro-batches")
        return self.global_batch // parts


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    model_defaults, optim_defaults = LiTConfig(), OptimConfig()
    p = argparse.ArgumentParser(
        prog="python -m training.train",
        description="LiT training: a Chinese BERT text tower learns to read a locked timm image tower "
                    "(global CLIP or token-wise FILIP loss), single process or torchrun DDP.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data and output")
    g.add_argument("--data", help="directory of clean shards (the filter stage's output); not needed with --cache")
    g.add_argument("--output", required=True, help="directory for config.json, checkpoints/, tensorboard/")
    g.add_argument("--cache", help="train from a locked-tower feature cache (python -m training.cache_features)")
    g.add_argument("--workers", type=int, default=4, help="DataLoader workers per rank")
    g.add_argument("--shuffle-buffer", type=int, default=2048, help="rows in each reader's shuffle buffer")
    g.add_argument("--tokenizer", help="vocab.txt, tokenizer directory or hub name (default: cn-clip's vocab)")
    g.add_argument("--no-augment", action="store_true", help="no AutoAugment (the paper uses it)")
    g.add_argument("--crop-scale-min", type=float, default=0.5, help="smallest RandomResizedCrop area share")
    g = p.add_argument_group("model")
    g.add_argument("--image-tower", default=model_defaults.image_tower, help="any timm model name")
    g.add_argument("--image-weights", help="local weights file for the image tower (offline)")
    g.add_argument("--no-pretrained", action="store_true", help="random image tower (tests, smoke runs)")
    g.add_argument("--image-size", type=int, help="input resolution (default: the tower's own)")
    g.add_argument("--image-token-pool", type=int, default=0, help="pool patch tokens to <= N (a square); 0: all")
    g.add_argument("--text-layers", type=int, default=model_defaults.text_layers)
    g.add_argument("--text-width", type=int, default=model_defaults.text_width)
    g.add_argument("--text-heads", type=int, default=model_defaults.text_heads)
    g.add_argument("--text-dropout", type=float, default=model_defaults.text_dropout)
    g.add_argument("--text-checkpoint", help="local BertModel directory to start the text tower from")
    g.add_argument("--embed-dim", type=int, default=model_defaults.embed_dim)
    g.add_argument("--similarity", choices=("global", "token_wise"), default="global")
    g.add_argument("--token-reducer", type=int, default=0, help="reduce image tokens to N (token-wise); 0: off")
    g.add_argument("--grad-checkpointing", action="store_true", help="checkpoint the text tower's activations")
    g.add_argument("--tiny", action="store_true",
                   help="a tiny model for smoke runs: random resnet18 at 64 px, 2-layer 64-wide BERT, dim 32 "
                        "(overrides the model flags but --image-tower, --image-size, --similarity and the token options)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, help="optimiser steps (default: --epochs over the data)")
    g.add_argument("--epochs", type=float, default=20.0)
    g.add_argument("--global-batch", type=int, default=4096, help="pairs per step over all ranks")
    g.add_argument("--accum-freq", type=int, default=1, help="micro-batches per step (GradCache: same negatives)")
    g.add_argument("--lr", type=float, default=optim_defaults.lr)
    g.add_argument("--weight-decay", type=float, default=optim_defaults.weight_decay)
    g.add_argument("--warmup-steps", type=int, default=optim_defaults.warmup_steps)
    g.add_argument("--max-grad-norm", type=float, default=optim_defaults.max_grad_norm,
                   help="LAMB's global gradient-norm clip; 0 turns it off")
    g.add_argument("--precision", choices=PRECISIONS, default="bf16",
                   help="bf16 autocast (CPU/GPU), fp16 autocast with a grad scaler (GPU), or fp32")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    g = p.add_argument_group("logging, checkpoints, validation")
    g.add_argument("--log-every", type=int, default=50)
    g.add_argument("--save-every", type=int, default=1000)
    g.add_argument("--keep-checkpoints", type=int, default=3, help="step checkpoints kept (0: all)")
    g.add_argument("--resume", help="'latest' (the newest checkpoint in --output) or a checkpoint path")
    g.add_argument("--stop-at", type=int,
                   help="save and stop at this step, as a time-sliced or preempted job would (resume later)")
    g.add_argument("--val-dir", help="zero-shot validation images (see training.zeroshot)")
    g.add_argument("--val-classnames", help="class-name file for zero-shot validation")
    g.add_argument("--val-every", type=int, default=0, help="validate every N steps (0: never); keeps best.pt")
    return p


def configs_from_args(args: argparse.Namespace) -> tuple[TrainConfig, LiTConfig, OptimConfig]:
    model_values: dict[str, Any] = dict(
        image_tower=args.image_tower, image_pretrained=not args.no_pretrained, image_weights=args.image_weights,
        image_size=args.image_size, image_token_pool=args.image_token_pool, text_layers=args.text_layers,
        text_width=args.text_width, text_heads=args.text_heads, text_dropout=args.text_dropout,
        text_checkpoint=args.text_checkpoint, embed_dim=args.embed_dim, similarity=args.similarity,
        token_reducer_tokens=args.token_reducer, grad_checkpointing=args.grad_checkpointing)
    if args.tiny:
        keep = {k: model_values[k] for k in ("similarity", "token_reducer_tokens", "grad_checkpointing",
                                              "image_token_pool")}
        if args.image_tower != LiTConfig.image_tower:  # an explicitly chosen tower wins over the tiny one
            keep["image_tower"] = args.image_tower
        if args.image_size is not None:  # so does an explicit resolution
            keep["image_size"] = args.image_size
        model = LiTConfig.tiny(**keep)
    else:
        model = LiTConfig(**model_values)
    optim = OptimConfig(lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
                        max_grad_norm=args.max_grad_norm or None)
    train = TrainConfig(
        data=args.data, output=args.output, cache=args.cache, steps=args.steps, epochs=args.epochs,
        global_batch=args.global_batch, accum_freq=args.accum_freq, workers=args.workers,
        shuffle_buffer=args.shuffle_buffer, seed=args.seed, precision=args.precision, device=args.device,
        auto_augment=None if args.no_augment else "original", crop_scale_min=args.crop_scale_min,
        tokenizer=args.tokenizer, log_every=args.log_every, save_every=args.save_every,
        keep_checkpoints=args.keep_checkpoints, resume=args.resume, stop_at=args.stop_at, val_dir=args.val_dir,
        val_classnames=args.val_classnames, val_every=args.val_every)
    return train, model, optim


# --------------------------------------------------------------------------------------------
# Pieces of the run
# --------------------------------------------------------------------------------------------


def resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no GPU is available")
    return device


def autocast_factory(precision: str, device: torch.device):
    """A zero-argument context-manager factory for the step's autocast."""
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 needs a GPU (with a grad scaler); use bf16 on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def seed_step(seed: int, rank: int, step: int) -> None:
    """Re-seed every RNG from (seed, rank, step): dropout then does not depend on history, so a
    resumed run draws exactly what an uninterrupted one would."""
    value = hash((seed, rank, step)) & 0x7FFFFFFF
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def total_steps(config: TrainConfig, rows: int) -> int:
    if config.steps is not None:
        return config.steps
    return max(1, math.ceil(config.epochs * rows / config.global_batch))


def check_cache_matches(cache_meta: dict, model: LiTModel) -> None:
    """A cache holds one tower's outputs: refuse to train another model's heads on it."""
    from training.cache_features import tower_fingerprint  # noqa: PLC0415

    config = model.config
    for key, want in (("image_tower", config.image_tower), ("image_size", config.image_size),
                      ("tower_fingerprint", tower_fingerprint(model.image_tower))):
        if cache_meta.get(key) != want:
            raise DataError(f"the feature cache was made with {key}={cache_meta.get(key)!r}, the model has {want!r}")
    if config.similarity == "token_wise":
        if not cache_meta.get("tokens"):
            raise DataError("token-wise training needs a cache with tokens (cache_features --token-pool N)")
        if cache_meta.get("image_token_pool") != config.image_token_pool:
            raise DataError(f"the cache pooled tokens to {cache_meta.get('image_token_pool')}, the model expects "
                            f"--image-token-pool {config.image_token_pool}")


def build_stream(config: TrainConfig, model: LiTModel, tokenizer, batch_size: int, rank: int, world: int,
                 tracker: StreamTracker) -> PairStream:
    """The rank's stream of micro-batches: decoded images, or cached tower outputs."""
    if config.cache:
        from training.cache_features import CACHE_SCHEMA, CacheDecoder, read_cache_meta  # noqa: PLC0415

        meta = read_cache_meta(config.cache)
        check_cache_matches(meta, model)
        decoder = CacheDecoder(meta, with_tokens=model.similarity == "token_wise")
        shards, schema = scan_shards(config.cache, CACHE_SCHEMA, decoder.columns), CACHE_SCHEMA
    else:
        from filters.contract import CLEAN_SCHEMA  # noqa: PLC0415

        transform = image_transform(model.image_tower, training=config.auto_augment is not None,
                                    image_size=model.config.image_size, auto_augment=config.auto_augment,
                                    crop_scale=(config.crop_scale_min, 1.0))
        decoder = ImageDecoder(transform)
        shards, schema = scan_shards(config.data, CLEAN_SCHEMA, decoder.columns), CLEAN_SCHEMA
    return PairStream(shards, decoder, tokenizer, batch_size, rank=rank, world_size=world,
                      num_workers=config.workers, seed=config.seed, shuffle_buffer=config.shuffle_buffer,
                      schema=schema, positions=tracker.positions, rotation=tracker.rotation)


def to_micro_batch(batch: dict, model: LiTModel, device: torch.device, autocast) -> MicroBatch:
    """Tower outputs (computed here, or read from the cache) and tokens, on the device."""
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    if "pixels" in batch:
        with autocast():
            pooled, tokens = model.image_tower_outputs(batch["pixels"].to(device, non_blocking=True))
        pooled, tokens = pooled.float(), tokens.float()
    else:
        pooled = batch["pooled"].to(device)
        tokens = batch["tokens"].to(device) if "tokens" in batch else None
    if model.similarity == "global":
        tokens = None  # not needed: spare the memory
        ids, mask = trim_padding(ids, mask)
    return MicroBatch(pooled, tokens, ids, mask)


def trim_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the columns that are padding in every row.

    Captions average well under 32 tokens, and BERT's cost grows with the length. Trailing padding
    is masked out of attention and positions are absolute, so the text [CLS] does not change
    (a test checks it). This is for global similarity only: token-wise embeddings keep all 32
    positions, so that micro-batches and ranks concatenate.
    """
    length = int(attention_mask.sum(dim=1).max().item()) if attention_mask.numel() else 0
    return input_ids[:, :max(1, length)], attention_mask[:, :max(1, length)]


class ProgressLog:
    """Rank 0's progress line (stdout and OUTPUT/train.log) and TensorBoard scalars."""

    def __init__(self, output: str, enabled: bool, total: int, samples_done: int = 0):
        self.enabled, self.total = enabled, total
        self.log_path = os.path.join(output, "train.log")  # the progress lines, kept with the run
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

                self.writer = SummaryWriter(os.path.join(output, "tensorboard"))
            except ImportError:  # tensorboard not installed: the progress line still works
                print("tensorboard is not installed; logging to stdout only", file=sys.stderr)
        self._last_time, self._last_samples = time.perf_counter(), samples_done

    def step(self, step: int, samples: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = (samples - self._last_samples) / max(1e-9, now - self._last_time)
        self._last_time, self._last_samples = now, samples
        values = {"samples_per_s": rate, **values}
        line = (f"step {step}/{self.total} | {rate:.1f} samples/s | loss {values['loss']:.4f} | "
                f"lr {values['lr']:.2e} | temp {values['temperature']:.4f} | acc {100 * values['accuracy']:.1f}% | "
                f"skipped {int(values['skipped'])} | epoch {int(values['epoch'])}")
        print(line, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"train/{key}", value, step)

    def scalar(self, key: str, value: float, step: int) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def validate(core: LiTModel, tokenizer, config: TrainConfig, device: torch.device) -> dict:
    """Zero-shot validation (training.zeroshot, imported here so training works without it)."""
    from training.zeroshot import zero_shot_validate  # noqa: PLC0415

    transform = image_transform(core.image_tower, training=False, image_size=core.config.image_size)
    core.eval()
    try:
        return zero_shot_validate(core, tokenizer, transform, config.val_dir, config.val_classnames, device)
    finally:
        core.train()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def run(config: TrainConfig, model_config: LiTConfig, optim_config: OptimConfig) -> dict:
    """Train; returns {"step", "loss", "accuracy", "best_top1"} of the end (on every rank)."""
    dist = dist_utils.setup()
    try:
        return _run(config, model_config, optim_config, dist)
    finally:
        dist_utils.teardown(dist)


class SetupError(ValueError):
    """Bad input found while preparing the run, before any training step."""


def _run(config: TrainConfig, model_config: LiTConfig, optim_config: OptimConfig, dist) -> dict:
    try:
        prepared = _prepare(config, model_config, optim_config, dist)
    except (ValueError, OSError) as err:  # no shards, a missing column, a wrong vocabulary, a bad tower...
        raise SetupError(str(err)) from err
    return _train(config, model_config, dist, prepared)


def _prepare(config: TrainConfig, model_config: LiTConfig, optim_config: OptimConfig, dist):
    """Check every input and build the model, optimiser, schedule and data stream."""
    is_main = dist.rank == 0
    device = resolve_device(config.device, dist.local_rank)
    micro = config.micro_batch(dist.world_size)
    # Everything that can be wrong with the input fails here, before any training starts.
    check_timm_name(model_config.image_tower)
    tokenizer = load_tokenizer(config.tokenizer, model_config.context_length)
    if tokenizer.vocab_size != model_config.vocab_size:
        raise TokenizerError(f"tokenizer has {tokenizer.vocab_size} entries, the model {model_config.vocab_size}")
    from filters.contract import CLEAN_SCHEMA  # noqa: PLC0415

    if config.cache:
        from training.cache_features import CACHE_SCHEMA, count_cache_rows  # noqa: PLC0415

        scan_shards(config.cache, CACHE_SCHEMA, ("key", "caption", "pooled"))
        rows = count_cache_rows(config.cache)
    else:
        rows = scan_shards(config.data, CLEAN_SCHEMA, ImageDecoder.columns).rows
    autocast = autocast_factory(config.precision, device)

    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = LiTModel(model_config).to(device)
    model.train()
    optimizer = build_optimizer(model, optim_config)
    resume_state = _load_resume(config)
    steps = total_steps(config, rows)
    scheduler = build_scheduler(optimizer, optim_config, steps)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    tracker = StreamTracker(config.workers)
    start, best_top1 = 0, None
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        if scaler is not None and resume_state.get("scaler"):
            scaler.load_state_dict(resume_state["scaler"])
        start, best_top1 = resume_state["step"], resume_state.get("best_top1")
        tracker = StreamTracker.from_state_dict(resume_state["data"][dist.rank], config.workers)
        if is_main:
            print(f"resumed from step {start}", flush=True)
    if is_main:
        _write_config(config, model_config, optim_config, dist.world_size, steps, tokenizer.source)

    train_model: nn.Module = model
    if dist.world_size > 1:
        train_model = dist_utils.wrap_ddp(model, device)
    loss_fn = ContrastiveLoss(model_config.similarity, dist.rank, dist.world_size)
    stream = build_stream(config, model, tokenizer, micro, dist.rank, dist.world_size, tracker)
    return Prepared(device, autocast, tokenizer, model, train_model, optimizer, scheduler, scaler, loss_fn, stream,
                    tracker, steps, start, best_top1)


@dataclasses.dataclass
class Prepared:
    """Everything the step loop needs, built and checked by `_prepare`."""

    device: torch.device
    autocast: Any
    tokenizer: Any
    model: LiTModel
    train_model: nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    loss_fn: ContrastiveLoss
    stream: PairStream
    tracker: StreamTracker
    steps: int
    start: int
    best_top1: float | None


def _train(config: TrainConfig, model_config: LiTConfig, dist, p: Prepared) -> dict:
    """The step loop: data, forward/backward, optimiser, logging, validation, checkpoints."""
    is_main = dist.rank == 0
    device, autocast, tokenizer, model, train_model = p.device, p.autocast, p.tokenizer, p.model, p.train_model
    optimizer, scheduler, scaler, loss_fn, stream = p.optimizer, p.scheduler, p.scaler, p.loss_fn, p.stream
    tracker, steps, start, best_top1 = p.tracker, p.steps, p.start, p.best_top1
    batches = iter(make_loader(stream))
    log = ProgressLog(config.output, is_main, steps, samples_done=start * config.global_batch)
    last: dict[str, float] = {}
    done = start
    try:
        for step in range(start, steps):
            seed_step(config.seed, dist.rank, step)
            micro_batches = []
            for _ in range(config.accum_freq):
                batch = next(batches)
                tracker.update(batch["meta"])
                micro_batches.append(to_micro_batch(batch, model, device, autocast))
            optimizer.zero_grad(set_to_none=True)
            result = contrastive_backward(train_model, loss_fn, micro_batches, autocast, scaler)
            lr = optimizer.param_groups[0]["lr"]
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            done = step + 1
            if done % config.log_every == 0 or done == steps or done == start + 1:
                loss, acc = dist_utils.mean_over_ranks(torch.stack([result.loss.float(), result.accuracy]), dist)
                last = {"loss": float(loss), "accuracy": float(acc), "lr": lr,
                        "temperature": float(1.0 / model.scale().detach()), "skipped": tracker.skipped,
                        "epoch": tracker.epoch}
                log.step(done, done * config.global_batch, last)
            if config.val_every and done % config.val_every == 0:
                best_top1 = _validate_and_keep_best(model, tokenizer, config, device, dist, log, done, best_top1,
                                                    optimizer, scheduler, scaler, tracker, model_config)
            stopping = done == config.stop_at
            if done % config.save_every == 0 or done == steps or stopping:
                _save(config, model, optimizer, scheduler, scaler, done, tracker, dist, model_config, best_top1,
                      tokenizer.source)
            if stopping:
                if is_main:
                    print(f"stopped at step {done} (--stop-at); continue with --resume latest", flush=True)
                break
    finally:
        log.close()
    return {"step": done, "loss": last.get("loss"), "accuracy": last.get("accuracy"), "best_top1": best_top1}


def _load_resume(config: TrainConfig) -> dict | None:
    if not config.resume:
        return None
    path = ckpt.latest_checkpoint(config.output) if config.resume == "latest" else config.resume
    if path is None:
        print(f"--resume latest: no checkpoint in {config.output}; starting from scratch", flush=True)
        return None
    return ckpt.load(path)


def _write_config(config: TrainConfig, model_config: LiTConfig, optim_config: OptimConfig, world: int,
                  steps: int, tokenizer_source: str) -> None:
    os.makedirs(config.output, exist_ok=True)
    resolved = {"train": dataclasses.asdict(config), "model": model_config.to_dict(),
                "optim": dataclasses.asdict(optim_config), "world_size": world, "total_steps": steps,
                "tokenizer": tokenizer_source}
    contract.write_json(os.path.join(config.output, "config.json"), resolved, indent=2)


def _checkpoint_state(config, model, optimizer, scheduler, scaler, step, data_states, model_config, best_top1,
                      tokenizer_source) -> dict:
    return {
        "model": model.state_dict(), "model_config": model_config.to_dict(),
        "train_config": dataclasses.asdict(config), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
        "step": step, "data": data_states, "best_top1": best_top1, "tokenizer": tokenizer_source,
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
    }


def _save(config, model, optimizer, scheduler, scaler, step, tracker, dist, model_config, best_top1,
          tokenizer_source, path: str | None = None) -> None:
    """Rank 0 writes the checkpoint (with every rank's data position); the others wait."""
    data_states = dist_utils.gather_objects(tracker.state_dict(), dist)
    if dist.rank == 0:
        state = _checkpoint_state(config, model, optimizer, scheduler, scaler, step, data_states, model_config,
                                  best_top1, tokenizer_source)
        ckpt.save_atomic(state, path or ckpt.step_path(config.output, step))
        if path is None:
            ckpt.prune(config.output, config.keep_checkpoints)
    dist_utils.barrier(dist)


def _validate_and_keep_best(model, tokenizer, config, device, dist, log, step, best_top1, optimizer, scheduler,
                            scaler, tracker, model_config):
    top1 = None
    if dist.rank == 0:
        metrics = validate(model, tokenizer, config, device)
        top1 = float(metrics["top1"])
        print(f"step {step} | zero-shot top1 {top1:.2f}%", flush=True)
        log.scalar("val/top1", top1, step)
    top1 = dist_utils.broadcast_object(top1, dist)
    if best_top1 is None or top1 > best_top1:
        best_top1 = top1
        _save(config, model, optimizer, scheduler, scaler, step, tracker, dist, model_config, best_top1,
              tokenizer.source, path=os.path.join(ckpt.checkpoint_dir(config.output), ckpt.BEST_NAME))
    return best_top1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, model_config, optim_config = configs_from_args(args)
    except ValueError as err:
        parser.error(str(err))  # exit status 2 with the usage line
    try:
        run(config, model_config, optim_config)
    except SetupError as err:
        # Bad input (no shards, a missing column, a wrong vocabulary, an unknown tower): a clear
        # message and exit status 2, before any training step. Errors during training keep their traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0

if __name__ == "__main__":
    sys.exit(main())
