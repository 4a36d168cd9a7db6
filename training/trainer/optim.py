"""Optimiser and schedule: LAMB with the paper's no-decay groups, cosine with linear warm-up.

timm's `Lamb` has defaults that matter: it clips the global gradient norm at `max_grad_norm`
(1.0 unless told otherwise) inside `step()`, and applies the layer-wise trust ratio only to groups
with weight decay unless `always_adapt=True`. We pass every one of them explicitly.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from filters.contract.flags import flag


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """LAMB and schedule settings; see README "Train" for why these values."""

    # big_vision's LiT configs (locked image tower)
    lr: float = dataclasses.field(default=1e-3, metadata=flag("peak learning rate"))
    # big_vision's LiT range is 1e-2 .. 1e-4
    weight_decay: float = dataclasses.field(default=1e-4, metadata=flag("LAMB weight decay (not on the no-decay group)"))
    betas: tuple[float, float] = (0.9, 0.999)  # the paper
    eps: float = 1e-2  # the paper
    # timm's default; the command line's 0 means None: no clip
    max_grad_norm: float | None = dataclasses.field(
        default=1.0, metadata=flag("LAMB's global gradient-norm clip; 0 turns it off"))
    always_adapt: bool = False  # trust ratio on no-decay parameters too (timm's default: no)
    warmup_steps: int = dataclasses.field(default=10_000, metadata=flag("linear warm-up steps before the cosine"))
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.eps <= 0:
            raise ValueError("lr and eps must be positive and weight_decay >= 0")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {self.betas}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError("max_grad_norm must be positive or None")
        if self.warmup_steps < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("warmup_steps must be >= 0 and min_lr_ratio in [0, 1]")


def is_no_decay(name: str, parameter: nn.Parameter, owner: nn.Module) -> bool:
    """Biases, LayerNorm parameters, token/position/type embeddings and the temperature."""
    if name.endswith("bias") or name == "logit_scale":
        return True
    return isinstance(owner, (nn.LayerNorm, nn.Embedding))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """[decayed, not decayed] groups of the trainable parameters (the locked tower has none)."""
    owners = {}
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            owners[f"{module_name}.{param_name}" if module_name else param_name] = module
    decay, no_decay = [], []
    decay_names, no_decay_names = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if is_no_decay(name, parameter, owners[name]):
            no_decay.append(parameter)
            no_decay_names.append(name)
        else:
            decay.append(parameter)
            decay_names.append(name)
    return [
        {"params": decay, "weight_decay": weight_decay, "names": decay_names},
        {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names},
    ]


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    from timm.optim import Lamb  # noqa: PLC0415

    groups = [{k: v for k, v in g.items() if k != "names"} for g in parameter_groups(model, config.weight_decay)]
    return Lamb(groups, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay,
                max_grad_norm=config.max_grad_norm, always_adapt=config.always_adapt)


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Linear warm-up from 1/warmup to 1 over `warmup_steps`, then cosine down to `min_lr_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int):
    if config.warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps ({config.warmup_steps}) must be fewer than the total steps ({total_steps})")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, config.warmup_steps, config.min_lr_ratio))
