"""Small deterministic models and inputs shared by the training tests."""

from __future__ import annotations

import torch

from training.model import LiTConfig, LiTModel
from training.step import MicroBatch


def tiny_model(seed: int = 0, **overrides) -> LiTModel:
    torch.manual_seed(seed)
    model = LiTModel(LiTConfig.tiny(**overrides))
    return model.train()


def random_inputs(model: LiTModel, n: int, seed: int = 1) -> MicroBatch:
    """Tower outputs and tokens for n pairs (the tower is locked, so its outputs are just inputs)."""
    g = torch.Generator().manual_seed(seed)
    width = model.image_width
    pooled = torch.randn(n, width, generator=g)
    tokens = torch.randn(n, 4, width, generator=g)
    ids = torch.randint(106, 8000, (n, 12), generator=g)
    lengths = torch.randint(3, 13, (n,), generator=g)
    mask = (torch.arange(12)[None, :] < lengths[:, None]).long()
    ids = ids * mask  # padding is id 0
    ids[:, 0] = 101
    return MicroBatch(pooled, tokens, ids, mask)


def rows(batch: MicroBatch, start: int, stop: int) -> MicroBatch:
    return MicroBatch(batch.pooled[start:stop], batch.tokens[start:stop], batch.input_ids[start:stop],
                      batch.attention_mask[start:stop])


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
