"""DDP set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

NCCL when the process has a GPU, gloo otherwise (CPU runs, `make train NPROC=2` here). Without
torchrun's variables the run is a single process and nothing is initialised.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any

import torch
import torch.distributed as torch_dist


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False


def setup() -> DistInfo:
    """Initialise the process group when torchrun started us (or reuse one a caller made)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        return DistInfo(torch_dist.get_rank(), torch_dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    torch_dist.init_process_group(backend=backend)
    return DistInfo(torch_dist.get_rank(), torch_dist.get_world_size(), local_rank, initialised_here=True)


def teardown(info: DistInfo) -> None:
    if info.initialised_here and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        torch_dist.barrier()


def mean_over_ranks(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of `values` over ranks (for logging; no gradients)."""
    values = values.detach().float().clone()
    if info.world_size > 1:
        torch_dist.all_reduce(values)
        values /= info.world_size
    return values.cpu()


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if info.world_size == 1:
        return [obj]
    out: list[Any] = [None] * info.world_size
    torch_dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    if info.world_size == 1:
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.parallel.DistributedDataParallel:
    """DDP over the trainable parameters (the locked tower has none). The tower's BatchNorm buffers
    are the same on every rank and never change, so they are not re-broadcast at every forward."""
    kwargs: dict[str, Any] = {"device_ids": [device.index] if device.type == "cuda" else None}
    ddp_params = inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters
    if "forward_sync_buffers" in ddp_params:  # torch >= 2.14 renames broadcast_buffers
        kwargs["forward_sync_buffers"] = False
    else:
        kwargs["broadcast_buffers"] = False
    return torch.nn.parallel.DistributedDataParallel(model, **kwargs)
