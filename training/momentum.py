"""BriVL's momentum queues (Huo et al., 2021; the released vl_model.py): far more negatives than a
batch holds, "more negative samples in limited GPU resources".

A momentum copy of the trainable encoders (with a locked image tower: the text tower and both
projections) embeds each batch a second time into keys. Two queues keep the last `queue_size` keys
of each modality. Image->text takes the momentum text key of its pair as the positive and the text
queue as the negatives; text->image mirrors it; the loss is CE(i2t) + CE(t2i) at a fixed
temperature of 0.07. After every step the copy moves towards the trained weights,
theta_k <- m * theta_k + (1 - m) * theta_q with m = 0.99, and the step's keys, gathered from every
rank, are enqueued.

Order of a step, defined so that a resumed run replays it exactly:
1. the loss is computed against the queues as they were before the step;
2. the optimiser steps;
3. the momentum copy is updated from the new weights (`MomentumCopy.update`);
4. the keys of the step (computed in 1, by the copy before its update) are enqueued, oldest first
   overwritten, ranks in rank order (`KeyQueue.enqueue`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

#: BriVL's released settings.
DEFAULT_QUEUE_SIZE = 9600
DEFAULT_MOMENTUM = 0.99
DEFAULT_TEMPERATURE = 0.07


class MomentumCopy(nn.Module):
    """An exponential moving average of `modules` (deep copies, never trained by the optimiser)."""

    def __init__(self, modules: dict[str, nn.Module], momentum: float = DEFAULT_MOMENTUM):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.momentum = momentum
        self.copies = nn.ModuleDict({name: copy.deepcopy(module) for name, module in modules.items()})
        for parameter in self.copies.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, modules: dict[str, nn.Module]) -> None:
        """theta_k <- m * theta_k + (1 - m) * theta_q for every parameter; buffers are copied."""
        for name, module in modules.items():
            target = self.copies[name]
            for k, q in zip(target.parameters(), module.parameters()):
                k.mul_(self.momentum).add_(q.detach(), alpha=1.0 - self.momentum)
            for k, q in zip(target.buffers(), module.buffers()):
                k.copy_(q)

    def forward(self, name: str, *args, **kwargs):
        with torch.no_grad():
            return self.copies[name](*args, **kwargs)


class KeyQueue(nn.Module):
    """A ring buffer of the last `size` L2-normalised keys of one modality, in the checkpoint as
    buffers (so a resumed run continues with the same negatives)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size <= 0:
            raise ValueError("queue size must be positive")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=-1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    def check_batch(self, global_batch: int) -> None:
        """BriVL enqueues whole global batches: the queue size must be a multiple of it."""
        if self.size % global_batch:
            raise ValueError(f"queue size {self.size} is not a multiple of the global batch {global_batch}")

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write `keys` (all ranks' keys of one step, in rank order) over the oldest entries."""
        n = keys.shape[0]
        if n > self.size:
            raise ValueError(f"{n} keys do not fit a queue of {self.size}")
        start = int(self.pointer)
        positions = (torch.arange(n, device=self.keys.device) + start) % self.size
        self.keys[positions] = keys.detach().to(self.keys.dtype)
        self.pointer.fill_((start + n) % self.size)


def momentum_contrastive_loss(image: torch.Tensor, text: torch.Tensor, image_keys: torch.Tensor,
                              text_keys: torch.Tensor, image_queue: torch.Tensor, text_queue: torch.Tensor,
                              temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """CE(i2t) + CE(t2i), each the mean over the batch's rows.

    i2t: row i scores its pair's momentum text key (the positive, column 0) and the text queue;
    t2i: row i scores its pair's momentum image key and the image queue. All inputs L2-normalised.
    """
    positive_i2t = (image * text_keys).sum(dim=-1, keepdim=True)
    positive_t2i = (text * image_keys).sum(dim=-1, keepdim=True)
    logits_i2t = torch.cat([positive_i2t, image @ text_queue.t()], dim=1) / temperature
    logits_t2i = torch.cat([positive_t2i, text @ image_queue.t()], dim=1) / temperature
    labels = torch.zeros(image.shape[0], dtype=torch.long, device=image.device)
    return F.cross_entropy(logits_i2t.float(), labels) + F.cross_entropy(logits_t2i.float(), labels)
