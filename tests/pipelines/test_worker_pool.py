"""The worker pool: Beam's pool whose SDK harnesses tune glibc's malloc before they start."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import worker_pool
from tests.support.flink_cluster import free_port
from tests.support.malloc_probe import HAS_MALLINFO2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mapped_mib(mode: str) -> int:
    """In a fresh interpreter with malloc as `mode` leaves it (tests.support.malloc_probe)."""
    answer = subprocess.run([sys.executable, "-m", "tests.support.malloc_probe", mode], capture_output=True,
                            text=True, timeout=60, cwd=REPO)
    assert answer.returncode == 0, answer.stderr
    return int(answer.stdout)


def test_config_defaults_and_bad_values():
    config = worker_pool.WorkerPoolConfig()
    assert (config.malloc_arena_max, config.malloc_release_kib) == (2, 128)
    with pytest.raises(ValueError, match="malloc"):
        worker_pool.WorkerPoolConfig(malloc_arena_max=-1)
    with pytest.raises(ValueError, match="service_port"):
        worker_pool.WorkerPoolConfig(service_port=70000)


def test_command_line_flags(capsys):
    with pytest.raises(SystemExit) as bad:
        worker_pool.main(["--service_port=1", "--malloc-arena-max=-1"])
    assert bad.value.code == 2
    assert "must be 0 (glibc's default) or more" in capsys.readouterr().err
    args = worker_pool.build_parser().parse_args(["--service_port=4321", "--malloc-release-kib=64"])
    assert (args.service_port, args.malloc_arena_max, args.malloc_release_kib) == (4321, 2, 64)


@pytest.mark.skipif(not HAS_MALLINFO2, reason="needs glibc 2.33 or later (mallinfo2)")
def test_tuned_malloc_maps_large_blocks_after_larger_ones_were_freed():
    """glibc's default takes blocks of 1 MiB from the heap once a 4 MiB block was freed (its
    threshold adapts), and heap space, once freed, mostly stays with the process; tuned, each
    block of 128 KiB or more is mapped on its own, and unmapped when freed."""
    assert _mapped_mib("default") == 0
    assert _mapped_mib("tuned") >= 20
    assert _mapped_mib("zero") == 0  # 0 leaves glibc's settings as they are


def test_launcher_runs_this_interpreter_with_the_settings(tmp_path):
    path = worker_pool.write_launcher(str(tmp_path), worker_pool.WorkerPoolConfig(malloc_arena_max=5))
    assert os.access(path, os.X_OK)
    text = open(path, encoding="utf-8").read()
    assert text.startswith(f"#!{sys.executable}\n")
    assert "['--malloc-arena-max=5', '--malloc-release-kib=128']" in text
    assert "sdk_worker" in path  # how benchmarks.filter_scale tells a harness from the pool


@pytest.mark.e2e
def test_a_pipeline_runs_in_pool_harnesses_with_malloc_tuned(tmp_path):
    """A job on the PortableRunner with an EXTERNAL environment runs in a harness that the pool
    started, with malloc tuned; SIGTERM stops the pool and its harnesses and removes the launcher."""
    port = free_port()
    log = open(tmp_path / "pool.log", "wb")
    # PYTHONPATH: the harnesses import the probe from this checkout's tests/
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=REPO)
    pool = subprocess.Popen([sys.executable, "-m", "pipelines.worker_pool", f"--service_port={port}",
                             "--malloc-release-kib=256"], env=env, stdout=subprocess.DEVNULL, stderr=log,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert pool.poll() is None and time.monotonic() < deadline, (tmp_path / "pool.log").read_text()
                time.sleep(0.2)

        def probe(n):  # a nested function: pickled by value, so the harness needs no test module
            import os as harness_os

            from tests.support.malloc_probe import mapped_mib_after_free

            return {"n": n, "pid": harness_os.getpid(), "mapped_mib": mapped_mib_after_free(blocks=1)}

        options = PipelineOptions(["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
                                   f"--environment_config=localhost:{port}"])
        with beam.Pipeline(options=options) as p:
            (p | beam.Create(range(20)) | beam.Map(probe) | beam.Map(json.dumps)
             | beam.io.WriteToText(str(tmp_path / "out"), shard_name_template=""))
        rows = [json.loads(line) for line in open(tmp_path / "out", encoding="utf-8")]
    finally:
        os.killpg(pool.pid, signal.SIGTERM)
        code = pool.wait(timeout=30)
        log.close()
    assert sorted(r["n"] for r in rows) == list(range(20))
    if HAS_MALLINFO2:
        assert min(r["mapped_mib"] for r in rows) >= 1
    assert os.getpid() not in {r["pid"] for r in rows}
    text = (tmp_path / "pool.log").read_text(errors="replace")
    assert "--malloc-arena-max=2 --malloc-release-kib=256" in text and code == 0, text[-2000:]
    launcher = re.search(r"harnesses start through (\S+) with", text).group(1)
    assert not os.path.exists(os.path.dirname(launcher))
