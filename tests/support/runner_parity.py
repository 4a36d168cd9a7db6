"""Helpers of the tests that run a stage on two runners and compare what they wrote: the stage's
command line in a subprocess, and its outputs read back in an order no runner decides."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from filters import contract

REPO = Path(__file__).resolve().parents[2]


def run_stage(module: str, argv: Sequence[str], log: Path, timeout_s: float = 600) -> float:
    """`python -m MODULE ARGV...` from the repository root; returns its wall time in seconds.

    The stage leads its own process group, so a timeout or an error here also ends what it
    started (FlinkRunner's job server is a java child of the stage)."""
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = time.monotonic() - start
    if code != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"python -m {module} exited with {code} after {seconds:.0f} s:\n{tail}")
    return seconds


def shard_rows(directory: Path | str, schema: pa.Schema, leave_out: Sequence[str] = ()) -> list[dict]:
    """Every row of the shards in `directory`, sorted by content; image bytes become their sha256.

    Shard names and row order are the runner's business; the rows and their bytes are not."""
    shards = contract.list_shards(str(directory))
    assert shards, f"no shards in {directory}"
    table = pa.concat_tables([contract.read_shard(p, schema) for p in shards])
    rows = []
    for row in table.to_pylist():
        for name in leave_out:
            row.pop(name, None)
        if "image" in row:
            image = row.pop("image")
            row["image_sha256"] = hashlib.sha256(image).hexdigest() if image is not None else None
        rows.append(row)
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, ensure_ascii=False, default=str))


def read_json(path: Path | str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
