"""Fixtures for the training tests: small clean shards made once per session."""

from __future__ import annotations

import pytest

from tests.support.training import clean_records, write_clean_shards


@pytest.fixture(scope="session")
def clean_pairs() -> list[dict]:
    """126 clean synthetic pairs out of 200 generated. The images are 96 px (the filter's 200 px
    rule is not the trainer's business) so that decoding stays cheap."""
    return clean_records(200, seed=0, size=96)


@pytest.fixture(scope="session")
def clean_dir(tmp_path_factory, clean_pairs) -> str:
    """Clean shards: 3 shards, row groups of 16 rows."""
    directory = str(tmp_path_factory.mktemp("clean"))
    write_clean_shards(directory, clean_pairs, rows_per_shard=64, row_group_size=16)
    return directory


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: the machines running the suite are small and shared, and two threads
    fighting for busy cores made a tiny training run ten times slower (measured: 160 vs 16 samples/s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
