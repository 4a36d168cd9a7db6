"""Contrastive losses: global (CLIP) and token-wise (FILIP) similarity, single process or DDP.

Contracts (docs/design.md, "Contracts that must not drift"):

- `clip_loss(image_features, text_features, logit_scale) -> Tensor`: the symmetric InfoNCE of
  L2-normalised features, row i of each side being a pair. `logit_scale` is the multiplier of the
  cosine similarities, i.e. 1/temperature (the model's `logit_scale` parameter is its logarithm,
  as in CLIP; `LiTModel.scale()` gives the clamped multiplier).
- `token_wise_similarity(image_tokens, text_tokens, text_mask) -> (sim_i2t, sim_t2i)`: FILIP's late
  interaction. `sim_i2t[i, j]` is, for each token of image i, the max over the valid tokens of text
  j, averaged over image i's tokens; `sim_t2i[j, i]` is, for each valid token of text j, the max over
  image i's tokens, averaged over text j's valid tokens. Masked text tokens take no part in either
  direction. It is computed in chunks so that memory stays bounded for large batches.

Under DDP, `ContrastiveLoss(rank, world_size)` gathers every rank's features with an
autograd-aware all-gather and scores the rank's own rows against all columns (labels offset by
rank). DDP's gradient averaging then gives exactly the single-process gradient of the mean loss.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

#: The most elements of one [images, texts, image tokens, text tokens] block built at a time
#: (2**25 float32 = 128 MiB), which bounds the token-wise path's extra memory.
DEFAULT_CHUNK_ELEMENTS = 2**25


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE: mean of image->text and text->image cross-entropies, pairs on the diagonal."""
    if image_features.shape != text_features.shape or image_features.ndim != 2:
        raise ValueError(f"expected two [N, D] tensors of one shape, got {tuple(image_features.shape)} "
                         f"and {tuple(text_features.shape)}")
    logits = logit_scale * image_features @ text_features.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits.float(), labels) + F.cross_entropy(logits.t().float(), labels)) / 2


def _check_tokens(image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor) -> None:
    if image_tokens.ndim != 3 or text_tokens.ndim != 3:
        raise ValueError("image_tokens must be [B_img, T, D] and text_tokens [B_txt, L, D]")
    if image_tokens.shape[-1] != text_tokens.shape[-1]:
        raise ValueError(f"feature sizes differ: {image_tokens.shape[-1]} vs {text_tokens.shape[-1]}")
    if text_mask.shape != text_tokens.shape[:2]:
        raise ValueError(f"text_mask must be {tuple(text_tokens.shape[:2])}, got {tuple(text_mask.shape)}")


def _zero_masked(text_tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked tokens set to 0 before any product, so that whatever they hold (even inf or NaN)
    reaches neither a score nor a gradient: 0 * NaN would still be NaN."""
    return text_tokens.masked_fill(~mask[..., None], 0.0)


def _chunk_size(other: int, tokens_a: int, tokens_b: int, budget: int) -> int:
    """How many rows of one side to pair with all `other` rows of the other side at a time."""
    return max(1, budget // max(1, other * tokens_a * tokens_b))


def token_wise_i2t(image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor,
                   chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> torch.Tensor:
    """[B_img, B_txt]: per image token the max over valid text tokens, averaged over image tokens."""
    _check_tokens(image_tokens, text_tokens, text_mask)
    mask = text_mask.bool()
    text_tokens = _zero_masked(text_tokens, mask)
    n_txt, length = text_tokens.shape[:2]
    step = _chunk_size(n_txt, image_tokens.shape[1], length, chunk_elements)
    rows = []
    for start in range(0, image_tokens.shape[0], step):
        block = torch.einsum("itd,jld->ijtl", image_tokens[start:start + step], text_tokens)
        # max's backward keeps only the argmax indices, so `block` is freed after each chunk.
        block = block.masked_fill(~mask[None, :, None, :], float("-inf"))
        best = block.max(dim=-1).values  # [i, j, t]
        # a text with no valid token scores 0 rather than -inf
        best = best.masked_fill(~mask.any(dim=1)[None, :, None], 0.0)
        rows.append(best.mean(dim=-1))
    return torch.cat(rows, dim=0)


def token_wise_t2i(image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor,
                   chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> torch.Tensor:
    """[B_txt, B_img]: per valid text token the max over image tokens, averaged over valid text tokens."""
    _check_tokens(image_tokens, text_tokens, text_mask)
    valid = text_mask.bool()
    text_tokens = _zero_masked(text_tokens, valid)
    counts = valid.sum(dim=1).clamp(min=1).to(text_tokens.dtype)  # a text with no valid token scores 0, not NaN
    n_img, tokens = image_tokens.shape[:2]
    step = _chunk_size(n_img, tokens, text_tokens.shape[1], chunk_elements)
    rows = []
    for start in range(0, text_tokens.shape[0], step):
        block = torch.einsum("jld,itd->jilt", text_tokens[start:start + step], image_tokens)
        best = block.max(dim=-1).values  # [j, i, l]
        best = best.masked_fill(~valid[start:start + step, None, :], 0.0)
        rows.append(best.sum(dim=-1) / counts[start:start + step, None])
    return torch.cat(rows, dim=0)


def token_wise_similarity(image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor,
                          chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """FILIP late interaction (see the module docstring): (sim_i2t [B_img, B_txt], sim_t2i [B_txt, B_img])."""
    return (token_wise_i2t(image_tokens, text_tokens, text_mask, chunk_elements),
            token_wise_t2i(image_tokens, text_tokens, text_mask, chunk_elements))


def gather_features(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """Concatenate every rank's `tensor` along dim 0, keeping gradients for all ranks' parts.

    The autograd-aware all-gather's backward sums the gradients of all ranks for each rank's slice;
    a plain `all_gather` would keep only the local gradient and give a wrong one with the local loss.
    """
    if world_size == 1:
        return tensor
    import torch.distributed as dist  # noqa: PLC0415 - only under DDP

    if not tensor.requires_grad:  # masks, or features computed without gradients
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)
    from torch.distributed.nn.functional import all_gather  # noqa: PLC0415

    with warnings.catch_warnings():
        # torch 2.14 marks it deprecated in favour of a private API; it is the documented
        # autograd-aware gather and works on gloo and NCCL alike.
        warnings.simplefilter("ignore", FutureWarning)
        parts = all_gather(tensor.contiguous())
    return torch.cat([_ContiguousGrad.apply(part) for part in parts], dim=0)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.

    The all-gather's backward on gloo sends the gradient slices with an all-to-all that reads
    non-contiguous tensors wrongly; the token-wise einsum's gradients are such views (a gradient
    off by a large factor on 2 ranks, found by tests/training/test_ddp.py).
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


class ContrastiveLoss(torch.nn.Module):
    """The training loss for one rank: its rows against the columns of every rank.

    `similarity` is "global" (features [B, D]) or "token_wise" (tokens [B, T, D] and a text mask).
    `forward` returns (loss, logits_i2t) where logits_i2t are the rank's rows against all columns,
    for the in-batch accuracy. With world_size == 1 it equals `clip_loss` / the token-wise InfoNCE.
    """

    def __init__(self, similarity: str = "global", rank: int = 0, world_size: int = 1,
                 chunk_elements: int = DEFAULT_CHUNK_ELEMENTS):
        super().__init__()
        if similarity not in ("global", "token_wise"):
            raise ValueError(f"similarity must be 'global' or 'token_wise', got {similarity!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.similarity = similarity
        self.rank = rank
        self.world_size = world_size
        self.chunk_elements = chunk_elements

    def logits(self, image: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None,
               scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits_i2t [b, B], logits_t2i [b, B]): local rows against the gathered columns."""
        all_image = gather_features(image, self.world_size)
        all_text = gather_features(text, self.world_size)
        if self.similarity == "global":
            return scale * image @ all_text.t(), scale * text @ all_image.t()
        if text_mask is None:
            raise ValueError("token-wise similarity needs the text mask")
        all_mask = gather_features(text_mask.to(torch.uint8), self.world_size).bool()
        i2t = token_wise_i2t(image, all_text, all_mask, self.chunk_elements)
        t2i = token_wise_t2i(all_image, text, text_mask, self.chunk_elements)
        return scale * i2t, scale * t2i

    def forward(self, image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor,
                text_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        logits_i2t, logits_t2i = self.logits(image, text, text_mask, scale)
        local = logits_i2t.shape[0]
        labels = torch.arange(local, device=logits_i2t.device) + self.rank * local
        loss = (F.cross_entropy(logits_i2t.float(), labels) + F.cross_entropy(logits_t2i.float(), labels)) / 2
        return loss, logits_i2t.detach()
