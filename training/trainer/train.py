"""The step loop around a `TrainState`.

Each step: `accum_freq` micro-batches per rank go through the locked tower (or come from a feature
cache), the trainable heads embed them, every rank's embeddings are gathered and the rank's rows
are scored against all columns (GradCache keeps the whole accumulated global batch as negatives),
then LAMB steps on a cosine schedule with warm-up. Rank 0 logs a progress line and TensorBoard
scalars and writes checkpoints atomically; a checkpoint holds the whole state, so `--resume latest`
continues exactly. `training.trainer.main` checks the inputs and builds the state.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
from torch import nn

from filters import contract
from training.model import LiTConfig, LiTModel
from training.tokenizer import ChineseTokenizer
from training.trainer import checkpoint as ckpt
from training.trainer import distributed as dist_utils
from training.trainer.data import PairStream, StreamTracker, make_loader
from training.trainer.methods import Method
from training.trainer.params import TrainConfig
from training.trainer.step import MicroBatch, StepResult
from training.transforms import image_transform


@dataclasses.dataclass
class TrainState:
    """The run as the step loop sees it: what it was built from, what each step updates, and how
    far it got. `checkpoint()` is what a checkpoint holds, so a resumed run rebuilds it exactly."""

    config: TrainConfig
    model_config: LiTConfig
    dist: dist_utils.DistInfo
    device: torch.device
    autocast: Callable[[], AbstractContextManager]
    tokenizer: ChineseTokenizer
    model: LiTModel
    train_model: nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None  # fp16 only
    method: Method  # the loss, and what it keeps beside the model (teachers, queues)
    tracker: StreamTracker  # this rank's data position, from the batches consumed
    total_steps: int
    step: int = 0  # optimiser steps done
    best_top1: float | None = None  # the best zero-shot top-1 so far, when validating
    stream: PairStream | None = None  # made from the data position, so after a resume

    @property
    def is_main(self) -> bool:
        return self.dist.rank == 0

    def checkpoint(self, data_states: list[dict]) -> dict:
        """The checkpoint dict, with every rank's data position (`data_states`, in rank order)."""
        state = {
            "model": self.model.state_dict(), "model_config": self.model_config.to_dict(),
            "train_config": dataclasses.asdict(self.config), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "step": self.step, "data": data_states, "best_top1": self.best_top1, "tokenizer": self.tokenizer.source,
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        }
        method = self.method.state_dict()
        if method is not None:  # teachers and queues (moco, distillation)
            state["method"] = method
        return state

    def load_checkpoint(self, state: dict) -> None:
        """Continue from a checkpoint dict (the model, optimiser, schedule, scaler and data position)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if state.get("method") is not None:
            self.method.load_state_dict(state["method"])
        elif self.method.state_dict() is not None:
            raise ValueError("the checkpoint holds no teacher or queues, which this method needs: was it trained "
                             "with another --loss or --distill?")
        self.step, self.best_top1 = state["step"], state.get("best_top1")
        self.tracker = StreamTracker.from_state_dict(state["data"][self.dist.rank], self.config.workers)


def seed_step(seed: int, rank: int, step: int) -> None:
    """Re-seed every RNG from (seed, rank, step): dropout then does not depend on history, so a
    resumed run draws exactly what an uninterrupted one would."""
    value = hash((seed, rank, step)) & 0x7FFFFFFF
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def trim_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the columns that are padding in every row.

    Captions average well under 32 tokens, and BERT's cost grows with the length. Trailing padding
    is masked out of attention and positions are absolute, so the text [CLS] does not change
    (a test checks it). This is for global similarity only: token-wise embeddings keep all 32
    positions, so that micro-batches and ranks concatenate.
    """
    length = int(attention_mask.sum(dim=1).max().item()) if attention_mask.numel() else 0
    return input_ids[:, :max(1, length)], attention_mask[:, :max(1, length)]


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
    # The ranking head reads the patch tokens, and gathers text states over ranks at full length.
    if model.similarity == "global" and model.ranking_head is None:
        tokens = None  # not needed: spare the memory
        ids, mask = trim_padding(ids, mask)
    return MicroBatch(pooled, tokens, ids, mask)


def forget_steps_after(log_path: str, step: int) -> None:
    """Drop the lines of steps after `step` from a progress log: a run killed after its last
    checkpoint logged steps that the resumed run does again, and each step is logged once."""
    if not os.path.isfile(log_path):
        return
    with open(log_path, "rb") as f:
        lines = f.read().decode("utf-8", errors="replace").splitlines(keepends=True)
    kept = [line for line in lines if _logged_step(line) <= step]
    if len(kept) != len(lines):
        contract.write_bytes(log_path, "".join(kept).encode("utf-8"))


def _logged_step(line: str) -> int:
    """The step of a progress line (`step N/TOTAL | ...`); 0 for any other line, which is kept."""
    head = line.split("/", 1)[0]
    return int(head[5:]) if head.startswith("step ") and head[5:].isdigit() else 0


class ProgressLog:
    """Rank 0's progress line (stdout and OUTPUT/train.log) and TensorBoard scalars."""

    def __init__(self, output: str, enabled: bool, total: int, samples_done: int = 0, start: int = 0):
        self.enabled, self.total = enabled, total
        # An append-only log, kept with the run; the artefacts that other stages read are written atomically.
        self.log_path = os.path.join(output, "train.log")
        self.writer = None
        if enabled:
            forget_steps_after(self.log_path, start)
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


def train_step(state: TrainState, batches: Iterator[dict]) -> tuple[StepResult, float]:
    """One optimiser step over `accum_freq` micro-batches; returns its result and learning rate."""
    seed_step(state.config.seed, state.dist.rank, state.step)
    micro_batches = []
    for _ in range(state.config.accum_freq):
        batch = next(batches)
        state.tracker.update(batch["meta"])
        micro_batches.append(to_micro_batch(batch, state.model, state.device, state.autocast))
    state.optimizer.zero_grad(set_to_none=True)
    result = state.method.backward(state.train_model, micro_batches, state.autocast, state.scaler, state.step)
    lr = state.optimizer.param_groups[0]["lr"]
    if state.scaler is not None:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    state.scheduler.step()
    state.method.after_step(state.model)
    state.step += 1
    return result, lr


def step_metrics(state: TrainState, result: StepResult, lr: float) -> dict[str, float]:
    """What the progress line shows: loss and accuracy averaged over ranks (a collective: every rank calls it)."""
    loss, accuracy = dist_utils.mean_over_ranks(torch.stack([result.loss.float(), result.accuracy]), state.dist)
    return {"loss": float(loss), "accuracy": float(accuracy), "lr": lr,
            "temperature": float(1.0 / state.model.scale().detach()), "skipped": state.tracker.skipped,
            "epoch": state.tracker.epoch}


def save_checkpoint(state: TrainState, path: str | None = None) -> None:
    """Rank 0 writes the state (a step checkpoint, or `path`) with every rank's data position; the
    others wait. Only step checkpoints are pruned."""
    data_states = dist_utils.gather_objects(state.tracker.state_dict(), state.dist)
    if state.is_main:
        ckpt.save(state.checkpoint(data_states), path or ckpt.step_path(state.config.output, state.step))
        if path is None:
            ckpt.prune(state.config.output, state.config.keep_checkpoints)
    dist_utils.barrier(state.dist)


def validate(state: TrainState) -> dict:
    """Zero-shot validation; the model's train mode is restored after."""
    # Imported here, so that training without validation needs nothing of the evaluation package.
    from training.evaluation.zeroshot import zero_shot_validate  # noqa: PLC0415

    core, config = state.model, state.config
    transform = image_transform(core.image_tower, training=False, image_size=core.config.image_size)
    core.eval()
    try:
        return zero_shot_validate(core, state.tokenizer, transform, config.val_dir, config.val_classnames,
                                  state.device)
    finally:
        core.train()


def validate_and_keep_best(state: TrainState, log: ProgressLog) -> None:
    """Rank 0 validates; every rank learns the score, and a new best is saved as best.pt."""
    top1 = None
    if state.is_main:
        top1 = float(validate(state)["top1"])
        print(f"step {state.step} | zero-shot top1 {top1:.2f}%", flush=True)
        log.scalar("val/top1", top1, state.step)
    top1 = dist_utils.broadcast_object(top1, state.dist)
    if state.best_top1 is None or top1 > state.best_top1:
        state.best_top1 = top1
        save_checkpoint(state, path=ckpt.best_path(state.config.output))


def train(state: TrainState) -> dict:
    """The step loop: data, forward/backward, optimiser, logging, validation, checkpoints.

    Returns {"step", "loss", "accuracy", "best_top1"} of the end (on every rank)."""
    config = state.config
    start = state.step
    if state.stream is None:
        raise ValueError("the state has no data stream (training.trainer.main.prepare makes one)")
    batches = iter(make_loader(state.stream))
    log = ProgressLog(config.output, state.is_main, state.total_steps, samples_done=start * config.global_batch,
                      start=start)
    last: dict[str, float] = {}
    try:
        while state.step < state.total_steps:
            result, lr = train_step(state, batches)
            done = state.step
            if done % config.log_every == 0 or done == state.total_steps or done == start + 1:
                last = step_metrics(state, result, lr)
                log.step(done, done * config.global_batch, last)
            if config.val_every and done % config.val_every == 0:
                validate_and_keep_best(state, log)
            stopping = done == config.stop_at
            if done % config.save_every == 0 or done == state.total_steps or stopping:
                save_checkpoint(state)
            if stopping:
                if state.is_main:
                    print(f"stopped at step {done} (--stop-at); continue with --resume latest", flush=True)
                break
    finally:
        log.close()
    return {"step": state.step, "loss": last.get("loss"), "accuracy": last.get("accuracy"),
            "best_top1": state.best_top1}
