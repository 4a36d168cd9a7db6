"""Beam's worker pool for an EXTERNAL environment (Flink, or the PortableRunner), whose SDK
harnesses give the memory they free back to the system.

    python -m pipelines.worker_pool --service_port=50000              # beside each TaskManager
    ... --environment_type=EXTERNAL --environment_config=localhost:50000

It is Beam's own pool (`apache_beam.runners.worker.worker_pool_main`), and each SDK harness it
starts (a Python process per stage group of a job) runs as Beam's process mode runs it
(`SdkHarness(control endpoint, worker id)`), with glibc's malloc set first (`mallopt`): at most
`--malloc-arena-max` arenas (glibc's default is eight per core, one per thread that allocates, and
a harness runs dozens of gRPC, data-plane and bundle threads), and blocks of `--malloc-release-kib`
or more mapped on their own and unmapped when freed, the heap trimmed once that much lies free at
its top. glibc's default raises its mapping threshold to the size of each large block freed (up to
32 MiB), after which such blocks come from the heap and their space, once freed, stays with the
process. On Flink's batch mode, which hands a harness a stage's whole partition as one bundle, that
retained space is what a worker's peak grew by from 50K to 1.6M rows
(docs/benchmarks.md#on-a-flink-cluster). It changes nothing that a job computes. Linux with glibc
only; elsewhere a harness says so and runs with the system's allocator as it is.

The harnesses start through a launcher script written into a temporary directory that the pool
removes when it stops (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence

from filters.contract.flags import add_flags, config_values, flag, option_name

#: The fields of WorkerPoolConfig that each harness gets as flags.
HARNESS_FIELDS = ("malloc_arena_max", "malloc_release_kib")


@dataclasses.dataclass(frozen=True)
class WorkerPoolConfig:
    service_port: int = dataclasses.field(
        default=50000, metadata=flag("the port the pool listens on: the N of --environment_config=localhost:N",
                                     name="--service_port"))
    malloc_arena_max: int = dataclasses.field(
        default=2, metadata=flag("glibc malloc arenas per harness (0: glibc's default, eight per core)"))
    malloc_release_kib: int = dataclasses.field(
        default=128, metadata=flag("KiB from which a harness's freed memory goes back to the system: blocks "
                                   "this large are unmapped when freed, the heap is trimmed when this much is "
                                   "free at its top (0: glibc's default, adaptive up to 32 MiB)"))

    def __post_init__(self) -> None:
        if not 0 < self.service_port < 65536:
            raise ValueError(f"--service_port must be a port number, got {self.service_port}")
        if self.malloc_arena_max < 0 or self.malloc_release_kib < 0:
            raise ValueError("--malloc-arena-max and --malloc-release-kib must be 0 (glibc's default) or more")

    def harness_flags(self) -> list[str]:
        """The settings, as the flags `run_harness` parses (the same flags as the pool's)."""
        return [f"{option_name(field)}={getattr(self, field.name)}" for field in dataclasses.fields(self)
                if field.name in HARNESS_FIELDS]


# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8


def tune_malloc(arena_max: int, release_kib: int) -> list[str]:
    """Apply the malloc settings to this process (0 leaves one as glibc has it); returns what
    could not be applied, empty where all were."""
    wanted = [(M_ARENA_MAX, arena_max, "arena_max")] if arena_max else []
    if release_kib:
        wanted += [(M_MMAP_THRESHOLD, release_kib << 10, "mmap_threshold"),
                   (M_TRIM_THRESHOLD, release_kib << 10, "trim_threshold")]
    if not wanted:
        return []
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return [name for _, _, name in wanted]  # not glibc: nothing to set
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return [name for param, value, name in wanted if mallopt(param, value) != 1]


def run_harness(argv: Sequence[str]) -> None:
    """One SDK harness, as Beam's worker pool starts it in process mode, with malloc tuned first.
    `argv` holds the container contract's flags (the harness needs two of them) and the settings
    (`WorkerPoolConfig.harness_flags`)."""
    parser = argparse.ArgumentParser(prog="pipelines.worker_pool harness")
    parser.add_argument("--id", required=True)
    parser.add_argument("--control_endpoint", required=True)
    add_flags(parser, WorkerPoolConfig, only=HARNESS_FIELDS, required=HARNESS_FIELDS)
    args, _ = parser.parse_known_args(argv)  # the logging, artifact and provision endpoints
    missed = tune_malloc(args.malloc_arena_max, args.malloc_release_kib)  # before the harness's threads
    if missed:
        print(f"[worker_pool] harness {args.id}: malloc settings not applied (not glibc?): {', '.join(missed)}",
              file=sys.stderr, flush=True)
    from apache_beam.runners.worker.sdk_worker import SdkHarness

    SdkHarness(args.control_endpoint, worker_id=args.id).run()


def write_launcher(directory: str, config: WorkerPoolConfig) -> str:
    """An executable that runs `run_harness` under this interpreter: Beam's pool starts one per
    harness with the container contract's flags."""
    path = os.path.join(directory, "sdk_worker")  # the name the scale benchmark knows a harness by
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"#!{sys.executable}\n"
                     "import sys\n"
                     "from pipelines.worker_pool import run_harness\n"
                     f"run_harness(sys.argv[1:] + {config.harness_flags()!r})\n")
    os.chmod(path, 0o755)
    return path


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.worker_pool", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, WorkerPoolConfig)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = WorkerPoolConfig(**config_values(args, WorkerPoolConfig))
    except ValueError as err:
        parser.error(str(err))
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer

    signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C: the launcher is removed
    directory = tempfile.mkdtemp(prefix="wukong-worker-pool-")
    try:
        launcher = write_launcher(directory, config)
        address, server = BeamFnExternalWorkerPoolServicer.start(
            use_process=True, port=config.service_port, container_executable=launcher)
        print(f"[worker_pool] listening at {address}; harnesses start through {launcher} with "
              f"{' '.join(config.harness_flags())}", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.stop(0)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
