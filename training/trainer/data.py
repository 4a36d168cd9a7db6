"""Streaming training data from the clean shards (or from a feature cache).

The shards' row groups are the units of work. Each epoch, the units are shuffled with the seed and
dealt round-robin to the `world_size x num_workers` reader slots (a rank's DataLoader worker is a
slot), so no row is read twice and none is lost. When there are fewer row groups than slots, each
row group is split into interleaved parts. Each slot streams its rows through a shuffle buffer,
decodes and transforms the images, tokenizes the captions and yields whole batches. A corrupt
image, a row group that does not read (a corrupt page) and a caption that is not UTF-8 are skipped
and counted, never a crash; what is skipped depends only on the bytes, so a resume stays exact.
Streams are endless: epoch e+1 follows epoch e, so ranks never run out at different times; the
trainer counts steps.

Everything random is seeded from (seed, epoch, slot) and, for augmentation, from the row's place
in the stream, so a stream is reproducible and can be resumed exactly from a `StreamPosition`
without decoding the rows it skips.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import torch
from PIL import Image

from filters import contract
from filters.contract.images import ImageDecodeError, decode_image
from filters.contract.shards import read_row_group


class DataError(ValueError):
    """The training data cannot be used (no shards, a missing column, nothing decodable)."""


@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """Rows `part`, `part + parts`, ... of one row group of one shard."""

    path: str
    row_group: int
    part: int = 0
    parts: int = 1


@dataclasses.dataclass(frozen=True)
class StreamPosition:
    """Where a slot's stream stands: the next row to take is row `taken` of epoch `epoch`."""

    epoch: int = 0
    taken: int = 0
    skipped: int = 0  # rows skipped so far: corrupt images, unreadable row groups, bad text (for the logs)


@dataclasses.dataclass(frozen=True)
class ShardSet:
    """The checked shards of a directory: paths, row-group sizes and the total row count."""

    paths: tuple[str, ...]
    row_groups: tuple[tuple[int, ...], ...]  # rows per row group, per shard

    @property
    def rows(self) -> int:
        return sum(sum(groups) for groups in self.row_groups)


def scan_shards(directory: str, schema: pa.Schema, columns: Sequence[str]) -> ShardSet:
    """List and check the shards of `directory` before training starts.

    Raises DataError for an empty directory and ShardSchemaError (from the shared schema module)
    for a shard that lacks one of `columns`.
    """
    paths = contract.list_shards(directory)
    if not paths:
        raise DataError(f"no shards (*.parquet) in {directory}")
    wanted = pa.schema([schema.field(c) for c in columns])
    groups = []
    for path in paths:
        parquet = contract.open_shard(path, wanted)
        groups.append(tuple(parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)))
    shards = ShardSet(tuple(paths), tuple(groups))
    if shards.rows == 0:
        raise DataError(f"the shards in {directory} hold no rows")
    return shards


def plan_units(shards: ShardSet, slots: int) -> list[WorkUnit]:
    """All work units, in a fixed order; row groups are split when there are fewer than slots."""
    groups = [(path, i) for path, sizes in zip(shards.paths, shards.row_groups) for i, n in enumerate(sizes) if n]
    parts = max(1, math.ceil(slots / max(1, len(groups))))
    return [WorkUnit(path, group, part, parts) for path, group in groups for part in range(parts)]


def units_for_slot(units: Sequence[WorkUnit], slot: int, slots: int, seed: int, epoch: int) -> list[WorkUnit]:
    """The units slot `slot` reads in `epoch`: the seeded shuffle of all units, dealt round-robin."""
    order = list(units)
    random.Random(f"units/{seed}/{epoch}").shuffle(order)
    return order[slot::slots]


class LostRows:
    """Rows a stream could not use before decoding: row groups that do not read (a corrupt page)
    and rows whose text is not UTF-8. Each is announced on stderr, naming the file and the row
    group, and counted; `take()` hands the count to the stream's running `skipped`."""

    def __init__(self) -> None:
        self.count = 0

    def lose(self, rows: int, reason: str) -> None:
        self.count += rows
        print(f"warning: {reason}; {rows} row(s) skipped", file=sys.stderr, flush=True)

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


def read_unit(unit: WorkUnit, schema: pa.Schema, columns: Sequence[str], lost: LostRows | None = None) -> list[dict[str, Any]]:
    """The rows of `unit`, without those the shard cannot give: an unreadable row group gives
    none, and rows whose text is not UTF-8 are left out; each is counted in `lost`, or, without
    `lost`, raises ShardReadError naming the file and the row group.

    What is left out depends only on the bytes of the shard, so a resumed stream skips exactly
    what the first run skipped and continues bit for bit."""
    parquet = contract.open_shard(unit.path, pa.schema([schema.field(c) for c in columns]))
    try:
        group = read_row_group(parquet, unit.path, unit.row_group, columns)
    except contract.ShardReadError as err:
        if lost is None:
            raise
        rows = parquet.metadata.row_group(unit.row_group).num_rows
        lost.lose(len(range(unit.part, rows, unit.parts)), str(err))
        return []
    part = group.rows[unit.part::unit.parts]
    kept = [row for row in part if row is not None]
    if len(kept) < len(part):
        if lost is None:
            raise contract.ShardReadError(group.problem)
        lost.lose(len(part) - len(kept), group.problem)
    return kept


def shuffled(rows: Iterator[dict], buffer_size: int, rng: random.Random) -> Iterator[dict]:
    """A shuffle buffer: fill to `buffer_size`, then emit a random element for each new row."""
    buffer: list[dict] = []
    for row in rows:
        if len(buffer) < buffer_size:
            buffer.append(row)
            continue
        i = rng.randrange(buffer_size)
        buffer[i], row = row, buffer[i]
        yield row
    rng.shuffle(buffer)
    yield from buffer


def sample_seed(seed: int, epoch: int, slot: int, index: int) -> int:
    return hash((seed, epoch, slot, index)) & 0x7FFFFFFF


class seeded:  # noqa: N801 - used as a context manager, reads like a function
    """Seed Python's and torch's global RNGs (which timm's augmentations use) for one sample, and
    restore them afterwards, so augmentation is reproducible without disturbing the trainer's RNG."""

    def __init__(self, value: int):
        self.value = value

    def __enter__(self) -> None:
        self._py = random.getstate()
        self._torch = torch.get_rng_state()
        random.seed(self.value)
        torch.default_generator.manual_seed(self.value)  # the CPU generator only: CUDA's is the trainer's

    def __exit__(self, *exc) -> None:
        random.setstate(self._py)
        torch.set_rng_state(self._torch)


# --------------------------------------------------------------------------------------------
# Row decoders: a raw row -> a sample dict, or None to skip (and count) it
# --------------------------------------------------------------------------------------------

IMAGE_COLUMNS = ("key", "caption", "image")


class ImageDecoder:
    """Decode the image bytes (`filters.contract.images`: the filter's decoder and pixel cap) and
    apply the tower's transform. Bytes that do not decode give None: the stream skips and counts them."""

    columns = IMAGE_COLUMNS

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]):
        self.transform = transform

    def __call__(self, row: dict, rng_seed: int) -> dict | None:
        try:
            image = decode_image(row["image"])
        except ImageDecodeError:
            return None
        with seeded(rng_seed):
            pixels = self.transform(image)
        return {"pixels": pixels, "caption": row["caption"] or ""}

    @staticmethod
    def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
        return {"pixels": torch.stack([s["pixels"] for s in samples])}


# --------------------------------------------------------------------------------------------
# The stream
# --------------------------------------------------------------------------------------------


class PairStream(torch.utils.data.IterableDataset):
    """Endless batches of one rank: dicts with the decoder's tensors, `input_ids`,
    `attention_mask`, and `meta` = (role, epoch, taken, skipped) of the slot that made it.

    `positions` resumes each role (see `rotation`) from a StreamPosition. With num_workers > 0 the
    DataLoader takes batches from workers 0, 1, 2, ... in turn; after N batches the next one is
    worker N % W's, so a resumed loader passes `rotation = N % W` and worker w plays role
    (w + rotation) % W. The batch order then continues exactly.
    """

    def __init__(self, shards: ShardSet, decoder: Any, tokenizer: Callable, batch_size: int, *,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0, seed: int = 0,
                 shuffle_buffer: int = 1024, schema: pa.Schema = contract.CLEAN_SCHEMA,
                 positions: dict[int, StreamPosition] | None = None, rotation: int = 0):
        super().__init__()
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        self.shards, self.decoder, self.tokenizer = shards, decoder, tokenizer
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.num_workers, self.seed, self.shuffle_buffer = num_workers, seed, max(1, shuffle_buffer)
        self.schema = schema
        self.positions = dict(positions or {})
        self.rotation = rotation
        self.units = plan_units(shards, world_size * max(1, num_workers))

    def _role(self) -> int:
        info = torch.utils.data.get_worker_info()
        if info is None:
            return 0
        if info.num_workers != max(1, self.num_workers):
            raise RuntimeError(f"stream planned for {self.num_workers} workers, loader has {info.num_workers}")
        return (info.id + self.rotation) % info.num_workers

    def rows(self, slot: int, epoch: int, lost: LostRows | None = None) -> Iterator[dict]:
        """The shuffled raw rows of `slot` in `epoch` (no decoding); rows the shards cannot give
        are counted in `lost`."""
        slots = self.world_size * max(1, self.num_workers)
        units = units_for_slot(self.units, slot, slots, self.seed, epoch)
        lost = lost if lost is not None else LostRows()
        stream = (row for unit in units for row in read_unit(unit, self.schema, self.decoder.columns, lost))
        return shuffled(stream, self.shuffle_buffer, random.Random(f"buffer/{self.seed}/{epoch}/{slot}"))

    def __iter__(self) -> Iterator[dict]:
        role = self._role()
        slot = self.rank * max(1, self.num_workers) + role
        position = self.positions.get(role, StreamPosition())
        epoch, skipped = position.epoch, position.skipped
        samples: list[dict] = []
        while True:
            decoded_this_epoch = 0
            taken = position.taken if epoch == position.epoch else 0
            lost = LostRows()
            rows = self.rows(slot, epoch, lost)
            for _ in range(taken):  # fast-forward a resumed stream without decoding
                next(rows, None)
            lost.take()  # what the rows before the resume point lost is in `skipped` already
            for row in rows:
                index = taken
                taken += 1
                skipped += lost.take()
                sample = self.decoder(row, sample_seed(self.seed, epoch, slot, index))
                if sample is None:
                    skipped += 1
                    continue
                decoded_this_epoch += 1
                samples.append(sample)
                if len(samples) == self.batch_size:
                    yield self._batch(samples, role, epoch, taken, skipped)
                    samples = []
            skipped += lost.take()
            if decoded_this_epoch == 0 and not (epoch == position.epoch and position.taken):
                raise DataError(f"rank {self.rank} reader {role} found no decodable pair in epoch {epoch} "
                                f"({skipped} skipped); use fewer DataLoader workers or more data")
            epoch += 1

    def _batch(self, samples: list[dict], role: int, epoch: int, taken: int, skipped: int) -> dict:
        batch = self.decoder.collate(samples)
        batch["input_ids"], batch["attention_mask"] = self.tokenizer([s["caption"] for s in samples])
        batch["meta"] = torch.tensor([role, epoch, taken, skipped], dtype=torch.long)
        return batch


class StreamTracker:
    """The trainer-side record of each role's position, from the `meta` of consumed batches."""

    def __init__(self, num_workers: int, positions: dict[int, StreamPosition] | None = None, batches: int = 0):
        self.num_workers = max(1, num_workers)
        self.positions = dict(positions or {})
        self.batches = batches

    def update(self, meta: torch.Tensor) -> None:
        role, epoch, taken, skipped = (int(v) for v in meta.tolist())
        self.positions[role] = StreamPosition(epoch, taken, skipped)
        self.batches += 1

    @property
    def rotation(self) -> int:
        return self.batches % self.num_workers

    @property
    def skipped(self) -> int:
        return sum(p.skipped for p in self.positions.values())

    @property
    def epoch(self) -> float:
        return min((p.epoch for p in self.positions.values()), default=0)

    def state_dict(self) -> dict:
        return {"num_workers": self.num_workers, "batches": self.batches,
                "positions": {r: dataclasses.asdict(p) for r, p in self.positions.items()}}

    @classmethod
    def from_state_dict(cls, state: dict, num_workers: int) -> "StreamTracker":
        if max(1, num_workers) != state["num_workers"]:
            raise ValueError(f"the checkpoint's data position is for {state['num_workers']} DataLoader "
                             f"workers; resume with --workers {state['num_workers']} to continue exactly")
        positions = {int(r): StreamPosition(**p) for r, p in state["positions"].items()}
        return cls(num_workers, positions, state["batches"])


def make_loader(stream: PairStream) -> torch.utils.data.DataLoader:
    """A DataLoader over whole batches made in the workers (batch_size=None)."""
    return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=stream.num_workers,
                                       persistent_workers=False, pin_memory=torch.cuda.is_available())

