"""The streaming reader: split across ranks and workers, shuffle, resume, corrupt images, damaged
shards, bad input."""

import itertools

import pyarrow as pa
import pyarrow.parquet  # noqa: F401 - pa.parquet
import pytest
import torch

from filters import contract
from tests.support.damage import corrupt_page, write_with_bad_text
from tests.support.images import hostile_images
from tests.support.training import write_clean_shards
from training.tokenizer import default_tokenizer
from training.trainer.data import (
    DataError,
    ImageDecoder,
    PairStream,
    StreamPosition,
    StreamTracker,
    WorkUnit,
    make_loader,
    plan_units,
    read_unit,
    scan_shards,
)


class KeyDecoder:
    """Decodes nothing: a sample is the row's key (fast, for checking who reads what)."""

    columns = ("key", "caption")

    def __call__(self, row, rng_seed):
        return {"key": row["key"], "caption": row["caption"]}

    @staticmethod
    def collate(samples):
        return {"keys": [s["key"] for s in samples]}


def _fake_tokenizer(texts):
    return torch.zeros(len(texts), 4, dtype=torch.long), torch.ones(len(texts), 4, dtype=torch.long)


def _keys_of_epoch(shards, rank, world, workers, role, batch_size=1):
    """The keys one slot reads in epoch 0, in order (a stream with batch 1 per slot)."""
    stream = PairStream(shards, KeyDecoder(), _fake_tokenizer, batch_size, rank=rank, world_size=world,
                        num_workers=workers, shuffle_buffer=8)
    slot = rank * max(1, workers) + role
    return [row["key"] for row in stream.rows(slot, 0)]


@pytest.mark.parametrize("world,workers", [(1, 0), (2, 2), (3, 1), (2, 4)])
def test_ranks_and_workers_read_every_row_exactly_once_per_epoch(clean_dir, clean_pairs, world, workers):
    shards = scan_shards(clean_dir, contract.CLEAN_SCHEMA, KeyDecoder.columns)
    keys = [k for rank in range(world) for role in range(max(1, workers))
            for k in _keys_of_epoch(shards, rank, world, workers, role)]
    assert sorted(keys) == sorted(r["key"] for r in clean_pairs)


def test_more_slots_than_row_groups_split_row_groups(tmp_path, clean_pairs):
    write_clean_shards(str(tmp_path), clean_pairs[:40], rows_per_shard=40, row_group_size=40)
    shards = scan_shards(str(tmp_path), contract.CLEAN_SCHEMA, KeyDecoder.columns)
    assert len(plan_units(shards, 4)) == 4
    keys = [k for rank in range(2) for role in range(2) for k in _keys_of_epoch(shards, rank, 2, 2, role)]
    assert sorted(keys) == sorted(r["key"] for r in clean_pairs[:40])


def test_shuffle_is_seeded_and_differs_between_epochs(clean_dir):
    shards = scan_shards(clean_dir, contract.CLEAN_SCHEMA, KeyDecoder.columns)
    stream = PairStream(shards, KeyDecoder(), _fake_tokenizer, 4, shuffle_buffer=16)
    epoch0 = [r["key"] for r in stream.rows(0, 0)]
    assert epoch0 == [r["key"] for r in stream.rows(0, 0)]
    epoch1 = [r["key"] for r in stream.rows(0, 1)]
    assert epoch0 != epoch1 and sorted(epoch0) == sorted(epoch1)
    in_file_order = [k for p in shards.paths for k in pa.parquet.read_table(p, columns=["key"])["key"].to_pylist()]
    assert epoch0 != in_file_order


def _batches(stream, n):
    tracker = StreamTracker(stream.num_workers)
    out = []
    for batch in itertools.islice(make_loader(stream), n):
        tracker.update(batch["meta"])
        out.append(batch["keys"])
    return out, tracker


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_stream_continues_exactly(clean_dir, workers):
    shards = scan_shards(clean_dir, contract.CLEAN_SCHEMA, KeyDecoder.columns)

    def stream(tracker=None):
        tracker = tracker or StreamTracker(workers)
        return PairStream(shards, KeyDecoder(), _fake_tokenizer, 10, num_workers=workers, shuffle_buffer=16,
                          positions=tracker.positions, rotation=tracker.rotation)

    straight, _ = _batches(stream(), 30)  # 300 rows: past the end of epoch 0 (126 rows)
    first, tracker = _batches(stream(), 17)
    state = tracker.state_dict()
    rest, _ = _batches(stream(StreamTracker.from_state_dict(state, workers)), 13)
    assert first + rest == straight


def test_corrupt_images_are_skipped_and_counted(tmp_path, clean_pairs):
    records = [dict(r) for r in clean_pairs[:12]]
    records[3]["image"] = records[3]["image"][: len(records[3]["image"]) // 3]  # truncated
    records[7]["image"] = b"not an image"
    write_clean_shards(str(tmp_path), records, rows_per_shard=12, row_group_size=12)
    shards = scan_shards(str(tmp_path), contract.CLEAN_SCHEMA, ImageDecoder.columns)
    from torchvision.transforms import ToTensor

    stream = PairStream(shards, ImageDecoder(ToTensor()), default_tokenizer(), 5, shuffle_buffer=1)
    batches, tracker = [], StreamTracker(0)
    for batch in itertools.islice(iter(stream), 2):
        tracker.update(batch["meta"])
        batches.append(batch)
    assert tracker.skipped == 2
    assert batches[0]["pixels"].shape[0] == 5 and batches[0]["input_ids"].shape == (5, 32)


def test_nothing_decodable_is_a_clear_error(tmp_path, clean_pairs):
    records = [dict(r, image=b"junk") for r in clean_pairs[:4]]
    write_clean_shards(str(tmp_path), records, rows_per_shard=4, row_group_size=4)
    shards = scan_shards(str(tmp_path), contract.CLEAN_SCHEMA, ImageDecoder.columns)
    stream = PairStream(shards, ImageDecoder(lambda im: im), _fake_tokenizer, 2)
    with pytest.raises(DataError, match="no decodable pair"):
        next(iter(stream))


def test_an_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no shards"):
        scan_shards(str(tmp_path), contract.CLEAN_SCHEMA, ImageDecoder.columns)


def test_a_shard_missing_a_column_is_a_clear_error(tmp_path, clean_pairs):
    table = contract.records_to_table(clean_pairs[:3], contract.CLEAN_SCHEMA).drop_columns(["caption"])
    pa.parquet.write_table(table, str(tmp_path / "part-00000.parquet"))
    with pytest.raises(contract.ShardSchemaError, match="caption"):
        scan_shards(str(tmp_path), contract.CLEAN_SCHEMA, ImageDecoder.columns)


def test_resuming_with_another_worker_count_is_refused():
    state = StreamTracker(2, {0: StreamPosition(0, 5, 0)}, 3).state_dict()
    with pytest.raises(ValueError, match="--workers 2"):
        StreamTracker.from_state_dict(state, 4)


# --------------------------------------------------------------------------------------------
# Damaged shards: a corrupt page, text that is not UTF-8
# --------------------------------------------------------------------------------------------


class ReadsAllDecoder(KeyDecoder):
    """KeyDecoder that reads the image column too (and so meets its damage), decoding nothing."""

    columns = ImageDecoder.columns


def _one_shard(tmp_path, clean_pairs, n=48, row_group_size=8):
    write_clean_shards(str(tmp_path), clean_pairs[:n], rows_per_shard=n, row_group_size=row_group_size)
    return str(tmp_path / contract.shard_name(0))


@pytest.mark.parametrize("group,column", [(1, "image"), (3, "caption"), (5, "key")])
def test_a_row_group_with_a_corrupt_page_is_skipped_counted_and_named(tmp_path, clean_pairs, capsys, group, column):
    path = _one_shard(tmp_path, clean_pairs)
    corrupt_page(path, group, column)
    shards = scan_shards(str(tmp_path), contract.CLEAN_SCHEMA, ReadsAllDecoder.columns)
    stream = PairStream(shards, ReadsAllDecoder(), _fake_tokenizer, 4, shuffle_buffer=8)
    batches, tracker = _batches(stream, 10)  # 40 rows: the whole epoch of the 40 readable rows
    keys = [k for batch in batches for k in batch]
    lost = {r["key"] for r in clean_pairs[group * 8:(group + 1) * 8]}
    assert sorted(keys) == sorted(r["key"] for r in clean_pairs[:48] if r["key"] not in lost)
    assert tracker.skipped == 8
    err = capsys.readouterr().err
    assert f"{path}: row group {group} is corrupt" in err and "8 row(s) skipped" in err


@pytest.mark.parametrize("workers", [0, 2])
def test_a_stream_resumed_past_a_corrupt_row_group_continues_exactly(tmp_path, clean_pairs, workers):
    corrupt_page(_one_shard(tmp_path, clean_pairs), 2)
    shards = scan_shards(str(tmp_path), contract.CLEAN_SCHEMA, ReadsAllDecoder.columns)

    def stream(tracker=None):
        tracker = tracker or StreamTracker(workers)
        return PairStream(shards, ReadsAllDecoder(), _fake_tokenizer, 3, num_workers=workers, shuffle_buffer=4,
                          positions=tracker.positions, rotation=tracker.rotation)

    straight, straight_tracker = _batches(stream(), 30)  # 90 rows: into the third epoch
    for stop in (5, 13):
        first, tracker = _batches(stream(), stop)
        rest, resumed = _batches(stream(StreamTracker.from_state_dict(tracker.state_dict(), workers)), 30 - stop)
        assert first + rest == straight
        assert resumed.positions == straight_tracker.positions  # the skip counts too
    assert straight_tracker.skipped >= 2 * 8  # two whole epochs passed the corrupt row group


def test_captions_that_are_not_utf8_are_skipped_counted_and_named(tmp_path, clean_pairs, capsys):
    path = str(tmp_path / contract.shard_name(0))
    write_with_bad_text(path, clean_pairs[:20], {3: b"bad \xff\xfe", 17: b"\xc3\x28"}, row_group_size=10)
    shards = scan_shards(str(tmp_path), contract.CLEAN_SCHEMA, ReadsAllDecoder.columns)
    stream = PairStream(shards, ReadsAllDecoder(), _fake_tokenizer, 2, shuffle_buffer=1)
    batches, tracker = _batches(stream, 9)
    keys = [k for batch in batches for k in batch]
    assert sorted(keys) == sorted(r["key"] for i, r in enumerate(clean_pairs[:20]) if i not in (3, 17))
    assert tracker.skipped == 2
    err = capsys.readouterr().err
    for group in (0, 1):
        assert f"{path}: row group {group}: 1 row(s) hold text that is not valid UTF-8 (column 'caption')" in err


def test_without_a_count_a_damaged_unit_is_an_error_naming_the_file(tmp_path, clean_pairs):
    path = _one_shard(tmp_path, clean_pairs, n=16)
    corrupt_page(path, 1)
    with pytest.raises(contract.ShardReadError, match=f"{path}: row group 1"):
        read_unit(WorkUnit(path, 1), contract.CLEAN_SCHEMA, ReadsAllDecoder.columns)
    assert len(read_unit(WorkUnit(path, 0), contract.CLEAN_SCHEMA, ReadsAllDecoder.columns)) == 8


def test_hostile_images_are_skipped_and_counted(tmp_path, clean_pairs):
    """Images whose headers parse but whose decoders raise odd errors, or which are over the pixel
    cap, cost their own sample: the stream goes on."""
    hostile = list(hostile_images().values())
    records = [dict(r, image=hostile[i]) if i < len(hostile) else dict(r) for i, r in enumerate(clean_pairs[:12])]
    write_clean_shards(str(tmp_path), records, rows_per_shard=12, row_group_size=12)
    shards = scan_shards(str(tmp_path), contract.CLEAN_SCHEMA, ImageDecoder.columns)
    from torchvision.transforms import ToTensor

    stream = PairStream(shards, ImageDecoder(ToTensor()), _fake_tokenizer, 12 - len(hostile), shuffle_buffer=1)
    batch = next(iter(stream))
    assert batch["pixels"].shape[0] == 12 - len(hostile)
    assert int(batch["meta"][3]) == len(hostile)  # the running skip count
