"""The crawl on Beam's portable job API (what Flink and Dataflow speak) gives the same shards
as on the default in-process runner."""

import os
import socket
import subprocess
import sys
import time

import pytest

from pipelines import crawl
from tests.support.crawl import crawl_argv, read_raw, running_catalog

pytestmark = pytest.mark.e2e  # runs whole stages (Beam pipelines, servers, subprocesses)

COLUMNS = ["key", "url", "caption", "caption_raw", "query", "rank", "page_url", "width", "height", "image_format",
           "sha256", "status"]


@pytest.fixture
def local():
    with running_catalog(n_queries=6, per_query=6, seed=7, blocking=False, stall_s=3) as served:
        yield served


def _rows(output):
    return read_raw(output).select(COLUMNS).sort_by("url").to_pylist()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_portable_runner_loopback_matches_the_default_runner(local, tmp_path):
    reference = crawl.run(crawl_argv(local, tmp_path / "default"))
    portable = crawl.run(crawl_argv(local, tmp_path / "portable", "--runner=PortableRunner",
                                    "--job_endpoint=embed", "--environment_type=LOOPBACK"))
    assert portable.totals == reference.totals
    assert _rows(tmp_path / "portable" / "raw") == _rows(tmp_path / "default" / "raw")


def test_two_worker_processes_match_the_default_runner(local, tmp_path):
    reference = crawl.run(crawl_argv(local, tmp_path / "default"))
    two = crawl.run(crawl_argv(local, tmp_path / "two", "--direct_num_workers=2",
                               "--direct_running_mode=multi_processing"))
    assert two.totals == reference.totals
    assert _rows(tmp_path / "two" / "raw") == _rows(tmp_path / "default" / "raw")


def test_portable_runner_with_an_external_worker_pool(local, tmp_path):
    """The SDK workers come from `worker_pool_main` in another process (the venv's bin on PATH).
    Beam 2.77's embedded job service asks the pool for one worker whatever the parallelism flags
    say, so this shows the pipeline runs in remote worker processes, not that two run at once."""
    port = _free_port()
    log = open(tmp_path / "pool.log", "wb")
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), NO_ALBUMENTATIONS_UPDATE="1")
    pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        reference = crawl.run(crawl_argv(local, tmp_path / "default"))
        external = crawl.run(crawl_argv(local, tmp_path / "external", "--runner=PortableRunner",
                                        "--job_endpoint=embed", "--environment_type=EXTERNAL",
                                        f"--environment_config=localhost:{port}", "--sdk_worker_parallelism=2"))
    finally:
        pool.kill()
        pool.wait()
        log.close()
    assert external.totals == reference.totals
    assert _rows(tmp_path / "external" / "raw") == _rows(tmp_path / "default" / "raw")
    # the work ran in the pool's worker processes (their progress lines went to the pool's stderr)
    assert "[crawl] part-00000" in (tmp_path / "pool.log").read_text(errors="replace")
