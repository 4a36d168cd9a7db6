"""One optimisation step's forward and backward, with GradCache-style accumulation.

Naive gradient accumulation scores each micro-batch only against itself, which shrinks the
contrastive batch (the negatives) by the accumulation factor. Here, as in GradCache and open_clip's
`--accum-freq`, all micro-batches are first embedded without gradients; then each micro-batch is
embedded again with gradients and scored against the cached embeddings of all the others, and its
loss is back-propagated. The sum of these gradients is exactly the gradient of the loss over the
whole accumulated batch, because each micro-batch's embeddings enter it only once:

- dropout must draw the same masks in both passes, so each micro-batch's RNG state is captured
  before the first pass and restored for the second;
- the temperature appears in every micro-batch's loss, so only the last micro-batch lets its
  gradient through (the last one, because it is the backward that DDP synchronises).
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch import nn

from training.loss import ContrastiveLoss


@dataclasses.dataclass
class MicroBatch:
    """The trainable part's inputs: the locked tower's outputs (or cached ones) and the tokens."""

    pooled: torch.Tensor
    tokens: torch.Tensor | None
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def inputs(self) -> tuple:
        return self.pooled, self.tokens, self.input_ids, self.attention_mask


@dataclasses.dataclass
class StepResult:
    loss: torch.Tensor  # the rank's loss over the whole accumulated batch (detached)
    accuracy: torch.Tensor  # in-batch image->text top-1 of the rank's rows (detached)


def _capture_rng(device: torch.device):
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _restore_rng(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _accuracy(logits_i2t: torch.Tensor, rank: int) -> torch.Tensor:
    """Image->text top-1 of the rank's rows: against every rank's texts, or (the sigmoid loss,
    which never gathers them) against its own."""
    rows = logits_i2t.shape[0]
    offset = rank * rows if logits_i2t.shape[1] != rows else 0
    labels = torch.arange(rows, device=logits_i2t.device) + offset
    return (logits_i2t.argmax(dim=1) == labels).float().mean()


def _backward(loss: torch.Tensor, scaler) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward()


def contrastive_backward(model: nn.Module, loss_fn: ContrastiveLoss, micro_batches: list[MicroBatch],
                         autocast: contextlib.AbstractContextManager | None = None, scaler=None) -> StepResult:
    """Forward and backward of one step over `micro_batches` (gradients accumulate in .grad).

    `model` is the LiTModel or its DDP wrapper; its forward maps MicroBatch.inputs() to
    (image embedding, text embedding, text mask, scale). The caller steps the optimiser.
    """
    autocast = autocast or contextlib.nullcontext
    if len(micro_batches) == 1:
        with autocast():
            image, text, mask, scale = model(*micro_batches[0].inputs())
            loss, logits = loss_fn(image, text, scale, mask)
        _backward(loss, scaler)
        return StepResult(loss.detach(), _accuracy(logits, loss_fn.rank))

    device = micro_batches[0].input_ids.device
    states, images, texts, masks = [], [], [], []
    with torch.no_grad():
        for micro in micro_batches:
            states.append(_capture_rng(device))
            with autocast():
                image, text, mask, scale = model(*micro.inputs())
            images.append(image)
            texts.append(text)
            masks.append(mask)
        all_masks = torch.cat(masks) if masks[0] is not None else None
        with autocast():
            loss, logits = loss_fn(torch.cat(images), torch.cat(texts), scale, all_masks)
    result = StepResult(loss.detach(), _accuracy(logits, loss_fn.rank))
    after = _capture_rng(device)

    last = len(micro_batches) - 1
    for m, micro in enumerate(micro_batches):
        _restore_rng(states[m], device)
        sync = contextlib.nullcontext() if m == last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast():
                image, text, _, scale = model(*micro.inputs())
                if m != last:
                    scale = scale.detach()
                all_images = torch.cat(images[:m] + [image] + images[m + 1:])
                all_texts = torch.cat(texts[:m] + [text] + texts[m + 1:])
                loss, _ = loss_fn(all_images, all_texts, scale, all_masks)
            _backward(loss, scaler)
    _restore_rng(after, device)
    return result
