"""What glibc's malloc does with a large block after a larger one was freed: the probe of the
worker pool's malloc settings, run in a test's subprocess and inside a pool's SDK harness.

    python -m tests.support.malloc_probe [default|tuned|zero]   # prints MiB mapped, or "none"
"""

from __future__ import annotations

import ctypes
import sys


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                    "fsmblks", "uordblks", "fordblks", "keepcost")]


def _libc() -> ctypes.CDLL | None:
    """glibc with `mallinfo2` (2.33 and later), or None."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    return libc


HAS_MALLINFO2 = _libc() is not None


def mapped_mib_after_free(blocks: int = 20) -> int | None:
    """Free a 4 MiB block (glibc's default then raises its mapping threshold past 4 MiB), then
    allocate `blocks` blocks of 1 MiB: the MiB of them mapped on their own (None without mallinfo2).
    Tuned to map blocks of 128 KiB and more, all of them are; by default none is."""
    libc = _libc()
    if libc is None:
        return None
    warm = bytes(range(256)) * (4 << 12)
    del warm
    mapped = libc.mallinfo2().hblkhd
    held = [bytes(range(256)) * 4096 for _ in range(blocks)]
    grown = (libc.mallinfo2().hblkhd - mapped) >> 20
    del held
    return grown


def main(argv: list[str]) -> int:
    from pipelines.worker_pool import tune_malloc

    mode = argv[0] if argv else "default"
    if mode == "tuned":
        assert tune_malloc(2, 128) == []
    elif mode == "zero":
        assert tune_malloc(0, 0) == []
    print(mapped_mib_after_free())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
