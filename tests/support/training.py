"""Small deterministic models, inputs and clean shards for the training tests and their fixtures."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from filters import contract
from pipelines.synthetic import generate_pairs
from training.model import LiTConfig, LiTModel
from training.trainer.step import MicroBatch


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


def clean_records(n_raw: int, seed: int = 0, size: int = 256) -> list[dict]:
    """The CLEAN_SCHEMA records of the synthetic pairs the filter keeps, out of `n_raw` generated
    pairs, without running the filter job: the pairs whose `expected_reason` is None, captions
    normalised, projected onto the clean columns."""
    records = []
    for pair in generate_pairs(n_raw, seed=seed, size=size):
        if pair.expected_reason is None:
            records.append(pair.to_clean_record())
    return records


def write_clean_shards(directory: str, records: list[dict], rows_per_shard: int, row_group_size: int) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, start in enumerate(range(0, len(records), rows_per_shard)):
        path = contract.join(directory, contract.shard_name(i))
        with contract.ShardWriter(path, contract.CLEAN_SCHEMA, row_group_size=row_group_size) as writer:
            writer.write_records(records[start:start + rows_per_shard])
        paths.append(path)
    return paths


def _gloo_rank(rank: int, compute, world: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(out_dir, 'init')}", rank=rank,
                            world_size=world)
    try:
        torch.save(compute(rank, world), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_on_gloo_ranks(compute, out_dir, world: int = 2) -> list:
    """`compute(rank, world)` in `world` spawned processes of one gloo group; each rank's result.
    `compute` must be a module-level function (spawn pickles it by name)."""
    mp.spawn(_gloo_rank, args=(compute, world, str(out_dir)), nprocs=world, join=True)
    return [torch.load(os.path.join(str(out_dir), f"rank{r}.pt")) for r in range(world)]
