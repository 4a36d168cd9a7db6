"""A crawl killed with SIGKILL midway and rerun: the final set is complete, without duplicates."""

import os
import signal
import subprocess
import sys
import time

import pytest

from filters import contract
from pipelines import crawl
from tests.support.crawl import crawl_argv, expected_paths, image_path, read_raw, running_catalog

pytestmark = pytest.mark.e2e  # runs whole stages (Beam pipelines, servers, subprocesses)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def local():
    with running_catalog(n_queries=12, per_query=6, seed=5, stall_s=3) as served:
        yield served


def test_kill_9_midway_then_rerun_gives_the_complete_set_once(local, tmp_path):
    catalog, engine = local
    # One query per chunk and a search rate limit: the crawl takes a few seconds, and the raw
    # shards appear one by one once every query has been searched.
    argv = crawl_argv(local, tmp_path, "--search-rate", "10", chunk_size=1)
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=REPO)
    process = subprocess.Popen([sys.executable, "-m", "pipelines.crawl", *argv], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    output = tmp_path / "raw"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if output.exists() and len(list(output.glob("part-*.parquet"))) >= 3:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the crawl ended before it could be killed: " + process.stderr.read().decode()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    written_before = len(contract.list_shards(str(output)))
    assert 3 <= written_before < 13, "the kill should land midway"

    outcome = crawl.run(argv)
    assert outcome.crawled_chunks == 13 - written_before
    assert outcome.searched_chunks == 0  # every hit list was written before the first shard
    assert len(contract.list_shards(str(output))) == 13
    assert not [p for p in output.rglob("*") if contract.storage.is_temporary(p.name)]
    rows = read_raw(output).to_pylist()
    urls = [r["url"] for r in rows]
    assert len(urls) == len(set(urls)), "duplicates after the rerun"
    first_query = expected_paths(catalog)
    assert {image_path(u) for u in urls} == set(first_query), "pairs lost after the rerun"
    for row in rows:
        assert row["query"] == first_query[image_path(row["url"])]
        assert row["status"] == catalog.expected_status[image_path(row["url"])]
