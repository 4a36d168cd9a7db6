"""LiT contrastive training on the clean shards: `python -m training.train`, or torchrun for DDP.

    python -m training.train --data runs/demo/clean --output runs/train
    torchrun --nproc_per_node 8 -m training.train --data ... --output ... --global-batch 4096
    python -m training.train --data DIR --output OUT --tiny --steps 20 --global-batch 16   # smoke run

`main(argv)` parses the command line (`training.trainer.params`), `prepare` checks every input and
builds the `TrainState` before any step, and `training.trainer.train` runs the loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Sequence

import torch

from filters import contract
from training.api import load_checkpoint
from training.model import LiTConfig, LiTModel, check_timm_name
from training.tokenizer import ChineseTokenizer, TokenizerError, load_tokenizer
from training.trainer import checkpoint as ckpt
from training.trainer import distributed as dist_utils
from training.trainer.data import ImageDecoder, PairStream, StreamTracker, scan_shards
from training.trainer.feature_cache import (
    CACHE_SCHEMA,
    CacheDecoder,
    check_cache_matches,
    count_cache_rows,
    read_cache_meta,
)
from training.trainer.methods import build_method
from training.trainer.optim import OptimConfig, build_optimizer, build_scheduler
from training.trainer.params import TrainConfig, build_parser, configs_from_args
from training.trainer.train import TrainState, train
from training.transforms import image_transform


class SetupError(ValueError):
    """Bad input found while preparing the run, before any training step."""


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


def total_steps(config: TrainConfig, rows: int) -> int:
    if config.steps is not None:
        return config.steps
    return max(1, math.ceil(config.epochs * rows / config.global_batch))


def count_rows(config: TrainConfig) -> int:
    """The pairs an epoch holds; checks the shards (or the cache) on the way."""
    if config.cache:
        scan_shards(config.cache, CACHE_SCHEMA, ("key", "caption", "pooled"))
        return count_cache_rows(config.cache)
    return scan_shards(config.data, contract.CLEAN_SCHEMA, ImageDecoder.columns).rows


def build_stream(state: TrainState, batch_size: int) -> PairStream:
    """The rank's stream of micro-batches from its data position: decoded images, or cached tower outputs."""
    config, model = state.config, state.model
    if config.cache:
        meta = read_cache_meta(config.cache)
        check_cache_matches(meta, model)
        decoder = CacheDecoder(meta, with_tokens=model.similarity == "token_wise" or model.ranking_head is not None)
        shards, schema = scan_shards(config.cache, CACHE_SCHEMA, decoder.columns), CACHE_SCHEMA
    else:
        transform = image_transform(model.image_tower, training=config.auto_augment is not None,
                                    image_size=model.config.image_size, auto_augment=config.auto_augment,
                                    crop_scale=(config.crop_scale_min, 1.0))
        decoder = ImageDecoder(transform)
        shards, schema = scan_shards(config.data, contract.CLEAN_SCHEMA, decoder.columns), contract.CLEAN_SCHEMA
    return PairStream(shards, decoder, state.tokenizer, batch_size, rank=state.dist.rank,
                      world_size=state.dist.world_size, num_workers=config.workers, seed=config.seed,
                      shuffle_buffer=config.shuffle_buffer, schema=schema, positions=state.tracker.positions,
                      rotation=state.tracker.rotation)


#: What a checkpoint must hold for a run to continue from it.
RESUME_KEYS = ("model", "optimizer", "scheduler", "step", "data")


def resume_checkpoint(config: TrainConfig) -> dict | None:
    """The checkpoint dict `--resume` names, or None (none asked for, or `latest` finds none).
    `latest` takes the newest checkpoint that loads, and says which newer ones it skipped."""
    if not config.resume:
        return None
    if config.resume != "latest":
        return load_checkpoint(config.resume)
    found = ckpt.load_latest(config.output, RESUME_KEYS)
    if found is None:
        print(f"--resume latest: no checkpoint in {config.output}; starting from scratch", flush=True)
        return None
    path, state = found
    print(f"--resume latest: {path}", flush=True)
    return state


def check_validation_inputs(config: TrainConfig) -> None:
    """Read the class-name file and list the validation images now, so that a file that is not
    UTF-8, or names that do not match the folders, fail at start and not at the first validation."""
    if not config.val_every:
        return
    # Imported here, so that training without validation needs nothing of the evaluation package.
    from training.evaluation.datasets.image_folder import load_image_folder  # noqa: PLC0415
    from training.evaluation.prompts import read_classnames  # noqa: PLC0415

    load_image_folder(config.val_dir, read_classnames(config.val_classnames))


def write_run_config(state: TrainState, optim_config: OptimConfig, tokenizer: ChineseTokenizer) -> None:
    """OUTPUT/config.json: the resolved configuration of the run."""
    resolved = {"train": dataclasses.asdict(state.config), "model": state.model_config.to_dict(),
                "optim": dataclasses.asdict(optim_config), "world_size": state.dist.world_size,
                "total_steps": state.total_steps, "tokenizer": tokenizer.source}
    contract.write_json(os.path.join(state.config.output, contract.TRAIN_CONFIG_FILE), resolved, indent=2)


def prepare(config: TrainConfig, model_config: LiTConfig, optim_config: OptimConfig,
            dist: dist_utils.DistInfo) -> TrainState:
    """Check every input and build the state the loop runs on: model, optimiser, schedule, data."""
    device = resolve_device(config.device, dist.local_rank)
    micro = config.micro_batch(dist.world_size)
    if dist.rank == 0:  # the one writer of the output directory; the others never delete there
        ckpt.remove_stale_temporaries(config.output)
    # Everything that can be wrong with the input fails here, before any training starts.
    check_timm_name(model_config.image_tower)
    check_validation_inputs(config)
    tokenizer = load_tokenizer(config.tokenizer, model_config.context_length)
    if tokenizer.vocab_size != model_config.vocab_size:
        raise TokenizerError(f"tokenizer has {tokenizer.vocab_size} entries, the model {model_config.vocab_size}")
    rows = count_rows(config)
    autocast = autocast_factory(config.precision, device)

    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = LiTModel(model_config).to(device)
    model.train()
    method = build_method(model, config.method, config.seed, tokenizer.mask_token_id, dist.rank, dist.world_size)
    optimizer = build_optimizer(model, optim_config)
    resume = resume_checkpoint(config)
    steps = total_steps(config, rows)
    state = TrainState(
        config=config, model_config=model_config, dist=dist, device=device, autocast=autocast, tokenizer=tokenizer,
        model=model, train_model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, optim_config, steps),
        scaler=torch.amp.GradScaler("cuda") if config.precision == "fp16" else None,
        method=method,
        tracker=StreamTracker(config.workers), total_steps=steps)
    if resume is not None:
        state.load_checkpoint(resume)
        if state.is_main:
            print(f"resumed from step {state.step}", flush=True)
    if state.is_main:
        write_run_config(state, optim_config, tokenizer)
    if dist.world_size > 1:
        state.train_model = dist_utils.wrap_ddp(model, device)
    state.stream = build_stream(state, micro)
    return state


def run(config: TrainConfig, model_config: LiTConfig, optim_config: OptimConfig) -> dict:
    """Train; returns {"step", "loss", "accuracy", "best_top1"} of the end (on every rank).

    SetupError: bad input (no shards, a missing column, a wrong vocabulary, a bad tower...), found
    before any training step."""
    dist = dist_utils.setup()
    try:
        try:
            state = prepare(config, model_config, optim_config, dist)
        except (ValueError, OSError) as err:
            raise SetupError(str(err)) from err
        return train(state)
    finally:
        dist_utils.teardown(dist)


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
        # Bad input: a clear message and exit status 2, before any training step. Errors during
        # training keep their traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
