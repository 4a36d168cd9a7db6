"""SigLIP's pairwise sigmoid loss (Zhai et al., 2023), single process or DDP.

Every (image, text) pair of the batch is a binary problem: label +1 on the diagonal, -1 elsewhere,

    loss = -1/N * sum_ij log sigmoid(z_ij * (t * <x_i, y_j> + b)),   t = exp(t'), t' = log 10, b = -10

with t' and b learned. No softmax over the batch is needed, so under DDP no rank ever holds every
rank's features: the text chunks travel around a ring, one neighbour exchange per step, and each rank
scores its images against one chunk at a time (all negatives). Memory stays that of one chunk
whatever the global batch. The exchange is autograd-aware: the gradient of a chunk travels back the
way the chunk came, so the gradients equal the single-process ones (tests/training/test_sigmoid_loss.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: The SigLIP paper's initialisation of the log temperature and the bias.
INIT_LOG_SCALE = math.log(10.0)
INIT_BIAS = -10.0


def sigmoid_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor | float,
                 bias: torch.Tensor | float, positives: bool = True) -> torch.Tensor:
    """The summed pairwise sigmoid loss of `image` [N, D] against `text` [M, D], divided by N.

    With `positives`, pair i of each side is a positive (N == M); without, every pair is a negative
    (another rank's texts).
    """
    if image.ndim != 2 or text.ndim != 2 or image.shape[1] != text.shape[1]:
        raise ValueError(f"expected [N, D] and [M, D] tensors, got {tuple(image.shape)} and {tuple(text.shape)}")
    logits = scale * image @ text.t() + bias
    if logits.dtype in (torch.float16, torch.bfloat16):  # the log-sigmoid wants full precision
        logits = logits.float()
    labels = -torch.ones_like(logits)
    if positives:
        if image.shape[0] != text.shape[0]:
            raise ValueError("positives need as many texts as images")
        labels = labels + 2 * torch.eye(logits.shape[0], device=logits.device, dtype=logits.dtype)
    return -F.logsigmoid(labels * logits).sum() / image.shape[0]


class _NeighbourExchange(torch.autograd.Function):
    """Send `tensor` to rank `to_rank` and receive the tensor of rank `from_rank` in its place.

    Backward sends the received tensor's gradient back to `from_rank` and receives, from `to_rank`,
    the gradient of the tensor sent there.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, to_rank: int, from_rank: int) -> torch.Tensor:
        ctx.to_rank, ctx.from_rank = to_rank, from_rank
        return _exchange(tensor.contiguous(), to_rank, from_rank)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _exchange(grad.contiguous(), ctx.from_rank, ctx.to_rank), None, None


def _exchange(tensor: torch.Tensor, to_rank: int, from_rank: int) -> torch.Tensor:
    import torch.distributed as dist  # noqa: PLC0415 - only under DDP

    received = torch.empty_like(tensor)
    requests = dist.batch_isend_irecv([dist.P2POp(dist.isend, tensor, to_rank),
                                       dist.P2POp(dist.irecv, received, from_rank)])
    for request in requests:
        request.wait()
    return received


class SigmoidLoss(torch.nn.Module):
    """The sigmoid loss of one rank: its images against its own texts (positives on the diagonal)
    and, one ring step at a time, against every other rank's texts (negatives).

    `forward(image, text, scale, bias)` returns (loss, logits of the local pairs). DDP's averaging of
    the ranks' gradients gives the single-process gradient of the loss over the whole batch.
    """

    def __init__(self, rank: int = 0, world_size: int = 1):
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.rank, self.world_size = rank, world_size

    def forward(self, image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor,
                bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss = sigmoid_loss(image, text, scale, bias)
        right, left = (self.rank + 1) % self.world_size, (self.rank - 1) % self.world_size
        chunk = text
        for _ in range(self.world_size - 1):
            chunk = _NeighbourExchange.apply(chunk, right, left)
            loss = loss + sigmoid_loss(image, chunk, scale, bias, positives=False)
        return loss, (scale * image @ text.t()).detach()
