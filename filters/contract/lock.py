"""One run per output directory: the lock the crawl and the filter take on their output.

    with hold_output_lock(output, "filter"):
        ...

The lock is `fcntl.flock` on OUTPUT/.lock, a local file: the kernel releases it when its holder
dies, however it dies (kill -9 included), so a lock left by a killed run never blocks a rerun.
The file keeps the holder's pid, host and stage so that a refused run can say who holds it.
Outputs on object stores (gs://, s3://) have no such lock; there the runner must not start two
jobs on one output.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator

LOCK_FILE = ".lock"


class OutputLocked(RuntimeError):
    """Another live run holds the output directory."""


@contextlib.contextmanager
def hold_output_lock(output: str, stage: str) -> Iterator[None]:
    """Hold OUTPUT/.lock for the duration of the block; raise OutputLocked, naming the holder,
    when another process holds it. No-op for a URI (gs://, s3://)."""
    if "://" in output:
        yield
        return
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLocked(f"{output} is in use by another run ({_holder(path)}); wait for it to end, "
                               f"or give another output") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "stage": stage,
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        return f"{info['stage']} run, pid {info['pid']} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"see {path}"
