"""One run per output directory: a second run is refused while the first holds the lock; a lock
left by a killed run does not block."""

import os
import signal
import subprocess
import sys
import time

import pytest

from filters import contract

HOLD = """
import sys, time
from filters import contract
with contract.hold_output_lock(sys.argv[1], "crawl"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(output):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(output)], cwd=repo, stdout=subprocess.PIPE,
                               env=dict(os.environ, PYTHONPATH=repo))
    assert process.stdout.readline().strip() == b"held"
    return process


def test_a_second_run_is_refused_while_the_first_holds_the_output(tmp_path):
    process = _holder(tmp_path)
    try:
        with pytest.raises(contract.OutputLocked, match=f"crawl run, pid {process.pid}"):
            with contract.hold_output_lock(str(tmp_path), "filter"):
                pass
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def test_a_lock_left_by_a_killed_run_does_not_block(tmp_path):
    process = _holder(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert (tmp_path / contract.lock.LOCK_FILE).exists()  # the file stays, the lock does not
    started = time.monotonic()
    with contract.hold_output_lock(str(tmp_path), "filter"):
        pass
    assert time.monotonic() - started < 1


def test_the_lock_is_reentrant_across_sequential_runs(tmp_path):
    for _ in range(2):
        with contract.hold_output_lock(str(tmp_path / "out"), "filter"):
            assert (tmp_path / "out").is_dir()


def test_the_crawl_and_the_filter_refuse_a_held_output(tmp_path, capsys):
    from pipelines import crawl, filter as filter_job
    from tests.support.raw_shards import raw_record

    (tmp_path / "q.txt").write_text("猫\n", encoding="utf-8")
    output = tmp_path / "out"
    process = _holder(output)
    try:
        assert crawl.main(["--queries", str(tmp_path / "q.txt"), "--output", str(output),
                           "--search-base-url", "http://127.0.0.1:9"]) == 2
        assert "in use by another run" in capsys.readouterr().err
        assert not list(output.glob("*.parquet"))
        (tmp_path / "raw").mkdir()
        contract.write_shard(str(tmp_path / "raw" / "part-00000.parquet"), [raw_record(0)], contract.RAW_SCHEMA)
        assert filter_job.main(["--input", str(tmp_path / "raw"), "--output", str(output), "--no-word-cloud"]) == 2
        assert "in use by another run" in capsys.readouterr().err
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
