"""A standalone Flink cluster on localhost, for the tests that run the Beam jobs on FlinkRunner.

    python -m tests.support.flink_cluster fetch              # download once into the cache
    python -m tests.support.flink_cluster run -- COMMAND...  # start, run COMMAND, stop

What it runs: one JobManager and one TaskManager from a Flink distribution assembled out of two
PyPI packages (the `apache-flink` wheel ships `bin/` and `conf/`, the `apache-flink-libraries`
sdist ships `lib/flink-dist-*.jar`), and the project's Python worker pool beside the TaskManager
(`pipelines.worker_pool`: Beam's pool, glibc's malloc tuned in each harness), which starts the SDK
harnesses of the EXTERNAL environment. FlinkRunner starts Beam's job server itself
from `--flink_job_server_jar`. That jar is built here with Maven from the Beam artefacts on Maven
Central (tests/support/flink_job_server/pom.xml: beam-runners-flink-1.19 and
beam-runners-java-job-service), because the ready-made `beam-runners-flink-<minor>-job-server` jar
is not on every Maven mirror.

Everything is downloaded and built once into a cache (`$WUKONG_FLINK_CACHE`, else
~/.cache/wukong-flink) that later runs reuse without the network. `$WUKONG_FLINK_JOB_SERVER_JAR`
names a job-server jar you already have.

The processes are our children, each the leader of its own process group and told by the
kernel to die with the process that started them (PR_SET_PDEATHSIG). `bin/start-cluster.sh`
would run the same `jobmanager.sh`/`taskmanager.sh` as daemons that outlive a killed test run,
so they are started here in the foreground (`start-foreground`), and stopping is a kill of their
groups: nothing is left behind on success, failure, Ctrl-C or a kill of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import fcntl
import hashlib
import html
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from filters import contract

#: The Flink the job server's runner is compiled against: beam-runners-flink-1.19:2.62.0 depends on
#: Flink 1.19.0 (flink-clients, flink-runtime, ... at compile scope), so the cluster runs exactly that.
FLINK_VERSION = "1.19.0"
FLINK_MINOR = "1.19"
#: Beam's Java side of the job server. The Python SDK (apache_beam.__version__, 2.77) talks to it
#: over the portable job and Fn APIs; 2.62.0 is the newest release whose beam-runners-flink-1.19 and
#: beam-runners-java-job-service are both on the Maven mirror the tests were built against.
BEAM_JAVA_VERSION = "2.62.0"
CACHE_ENV = "WUKONG_FLINK_CACHE"
JAR_ENV = "WUKONG_FLINK_JOB_SERVER_JAR"
#: A Maven repository (URL) to build the job server from instead of Maven Central.
MAVEN_ENV = "WUKONG_MAVEN_REPOSITORY"
JOB_SERVER_POM = Path(__file__).resolve().parent / "flink_job_server" / "pom.xml"
#: What `mvn package` of that pom writes into target/: a manifest-only jar and the jars it names.
JOB_SERVER_JAR_NAME = "beam-flink-job-server.jar"
MAVEN_TIMEOUT_S = 1800
#: Memory sizes for a 2-core, 24 GB machine: the Python harness runs outside the JVMs, so the
#: TaskManager needs little beyond its network buffers.
JOBMANAGER_MEMORY = "1024m"
TASKMANAGER_MEMORY = "1536m"
TASK_SLOTS = 4
PARALLELISM = 2
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
_PR_SET_PDEATHSIG = 1


class Unavailable(RuntimeError):
    """Why a Flink cluster cannot be had on this machine (Java, a download); tests skip with it."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "wukong-flink")


def job_server_dir(cache: Path | None = None, pom: Path = JOB_SERVER_POM) -> Path:
    """Where the built job server lives in the cache: named by the versions and the pom's content,
    so that a change to either builds it anew."""
    digest = hashlib.sha1(pom.read_bytes()).hexdigest()[:10]
    return (cache or cache_dir()) / f"job-server-flink-{FLINK_MINOR}-beam-{BEAM_JAVA_VERSION}-{digest}"


# --------------------------------------------------------------------------------------------
# Java and the downloads
# --------------------------------------------------------------------------------------------

def java_executable() -> str:
    """The `java` Flink's scripts will use ($JAVA_HOME, else PATH), checked to be 11 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise Unavailable("no Java found (JAVA_HOME or `java` on PATH): Flink needs Java 11 or 17, "
                          "e.g. apt-get install openjdk-17-jre-headless")
    answer = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', answer.stderr)
    if not match:
        raise Unavailable(f"cannot tell the version of {java}: {answer.stderr.strip()[:200]}")
    major = int(match.group(1)) if match.group(1) != "1" else int(match.group(2) or 0)
    if major < 11:
        raise Unavailable(f"{java} is Java {major}; Flink {FLINK_VERSION} needs Java 11 or 17")
    return java


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    """One downloader at a time per cache: two test runs share it."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip_download(requirement: str, into: Path, *pip_flags: str) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    answer = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into),
                             *pip_flags, requirement], capture_output=True, text=True, timeout=1800)
    if answer.returncode != 0:
        raise Unavailable(f"pip download {requirement} failed: {answer.stderr.strip()[-400:]}")
    name = requirement.split("==")[0].replace("-", "_")
    # sdists of older releases spell the name with hyphens (apache-flink-libraries-1.19.0.tar.gz)
    found = sorted(p for p in into.iterdir()
                   if p.name.lower().replace("-", "_").startswith(name) and not p.name.startswith("."))
    if not found:
        raise Unavailable(f"pip download {requirement} wrote nothing into {into}")
    return found[-1]


def install_flink(cache: Path | None = None) -> Path:
    """FLINK_HOME of Flink FLINK_VERSION (bin/, conf/, lib/), assembled once in the cache.

    The directory appears by one rename when it is complete, so a killed download leaves no
    half-installed Flink for the next run to trust."""
    cache = cache or cache_dir()
    home = cache / f"flink-{FLINK_VERSION}"
    if (home / "lib" / f"flink-dist-{FLINK_VERSION}.jar").exists():
        return home
    with _cache_lock(cache):
        if (home / "lib" / f"flink-dist-{FLINK_VERSION}.jar").exists():
            return home
        downloads = cache / "downloads"
        # Only bin/ and conf/ of the wheel are used, which are the same in every wheel; Flink 1.19's
        # wheels stop at CPython 3.11, so name one that exists whatever Python runs this.
        wheel = _pip_download(f"apache-flink=={FLINK_VERSION}", downloads, "--only-binary=:all:",
                              "--python-version", "3.11", "--platform", "manylinux1_x86_64")
        libraries = _pip_download(f"apache-flink-libraries=={FLINK_VERSION}", downloads,
                                  "--no-binary=apache-flink-libraries")
        staging = Path(tempfile.mkdtemp(prefix=".flink-", dir=cache))
        try:
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.namelist():
                    parts = member.split("/")
                    if len(parts) == 3 and parts[0] == "pyflink" and parts[1] in ("bin", "conf") and parts[2]:
                        target = staging / parts[1] / parts[2]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(archive.read(member))
                        if parts[1] == "bin":
                            target.chmod(0o755)
            with tarfile.open(libraries) as archive:
                for member in archive.getmembers():
                    parts = member.name.split("/")
                    if (member.isfile() and len(parts) == 4 and parts[1] == "deps" and parts[2] in ("lib", "bin")
                            and parts[3].endswith(".jar")):
                        target = staging / parts[2] / parts[3]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with archive.extractfile(member) as source, open(target, "wb") as out:
                            shutil.copyfileobj(source, out)
            if not (staging / "bin" / "jobmanager.sh").exists():
                raise Unavailable(f"{wheel.name} has no pyflink/bin/jobmanager.sh")
            if not (staging / "lib" / f"flink-dist-{FLINK_VERSION}.jar").exists():
                raise Unavailable(f"{libraries.name} has no deps/lib/flink-dist-{FLINK_VERSION}.jar")
            os.replace(staging, home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        # the packages are unpacked: the 230 MB sdist need not stay in the cache
        shutil.rmtree(downloads, ignore_errors=True)
    return home


def _fetch(url: str, timeout: float = 600) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.read()


def _maven_settings(repository: str, into: Path) -> Path:
    """A settings.xml that sends every Maven download to `repository`."""
    settings = into / "settings.xml"
    settings.write_text(
        "<settings><mirrors><mirror><id>wukong</id><mirrorOf>*</mirrorOf>"
        f"<url>{html.escape(repository)}</url></mirror></mirrors></settings>\n", encoding="utf-8")
    return settings


def build_job_server(cache: Path | None = None, pom: Path = JOB_SERVER_POM) -> Path:
    """Beam's Flink job server built once with Maven from `pom` into the cache; its runnable jar.

    `mvn package` runs in a staging directory with a local repository of its own in the cache
    (checksums enforced), and the result (the jar and its lib/) appears by one rename, so a killed
    build leaves nothing that a later run would trust. The local repository is removed afterwards:
    lib/ holds every jar the server needs, and later runs need no network."""
    cache = cache or cache_dir()
    target = job_server_dir(cache, pom)
    jar = target / JOB_SERVER_JAR_NAME
    if jar.exists():
        return jar
    mvn = shutil.which("mvn")
    if not mvn:
        raise Unavailable("no Maven (`mvn` on PATH) to build Beam's Flink job server from Maven Central, "
                          f"e.g. apt-get install maven; or set ${JAR_ENV} to a job-server jar")
    with _cache_lock(cache):
        if jar.exists():
            return jar
        staging = Path(tempfile.mkdtemp(prefix=".job-server-", dir=cache))
        repository = cache / "maven-repository"
        try:
            shutil.copy(pom, staging / "pom.xml")
            command = [mvn, "-B", "-q", "-C", f"-Dmaven.repo.local={repository}",
                       f"-Dbeam.version={BEAM_JAVA_VERSION}", f"-Dflink.minor={FLINK_MINOR}", "package"]
            if os.environ.get(MAVEN_ENV):
                command[1:1] = ["-s", str(_maven_settings(os.environ[MAVEN_ENV], staging))]
            try:
                answer = subprocess.run(command, cwd=staging, capture_output=True, text=True,
                                        timeout=MAVEN_TIMEOUT_S)
            except subprocess.TimeoutExpired as err:
                raise Unavailable(f"building the job server with Maven took over {MAVEN_TIMEOUT_S} s") from err
            built = staging / "target" / JOB_SERVER_JAR_NAME
            if answer.returncode != 0 or not built.exists():
                raise Unavailable(f"building the job server with Maven failed ({' '.join(command)}, "
                                  f"status {answer.returncode}): {(answer.stdout + answer.stderr).strip()[-1500:]}")
            for name in ("classes", "maven-archiver", "maven-status"):
                shutil.rmtree(staging / "target" / name, ignore_errors=True)
            os.replace(staging / "target", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(repository, ignore_errors=True)
    return jar


def job_server_jar(cache: Path | None = None) -> Path:
    """The Beam Flink job-server jar: $WUKONG_FLINK_JOB_SERVER_JAR, else built once into the cache."""
    given = os.environ.get(JAR_ENV)
    if given:
        if not os.path.isfile(given):
            raise Unavailable(f"${JAR_ENV} names {given}, which is not a file")
        return Path(given)
    return build_job_server(cache)


# --------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nested(flat: dict[str, object]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _java_module_options(flink_home: Path) -> str:
    """env.java.opts.all of the shipped config.yaml: the --add-opens Java 17 needs for Flink."""
    text = (flink_home / "conf" / "config.yaml").read_text(encoding="utf-8")
    match = re.search(r"^\s+all:\s*(--add-.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


@dataclasses.dataclass(frozen=True)
class FlinkCluster:
    """A running cluster: where it listens and where its files are."""
    flink_home: Path
    workdir: Path
    rest_port: int
    worker_pool_port: int
    process_groups: tuple[int, ...]
    parallelism: int = PARALLELISM

    @property
    def master(self) -> str:
        return f"localhost:{self.rest_port}"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "log"

    def beam_args(self, jar: Path | str) -> list[str]:
        """Beam's flags that send a job to this cluster, SDK harnesses from the worker pool.

        The parallelism is explicit: without it the job server reads parallelism.default from the
        Flink config of the launching process ($FLINK_CONF_DIR), not the cluster's, and with none
        every step runs as one subtask, which would leave the shuffles between subtasks untested."""
        return ["--runner=FlinkRunner", f"--flink_master={self.master}", "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{self.worker_pool_port}", f"--flink_job_server_jar={jar}",
                f"--parallelism={self.parallelism}"]

    def rest(self, path: str) -> dict:
        return json.loads(_fetch(f"http://127.0.0.1:{self.rest_port}{path}", timeout=10))

    def finished_jobs(self) -> dict[str, int]:
        """The jobs this cluster finished: job id -> the largest parallelism of its steps."""
        jobs = {}
        for job in self.rest("/jobs/overview")["jobs"]:
            if job["state"] == "FINISHED":
                detail = self.rest(f"/jobs/{job['jid']}")
                jobs[job["jid"]] = max(vertex["parallelism"] for vertex in detail["vertices"])
        return jobs

    def logs_tail(self, chars: int = 3000) -> str:
        texts = []
        for path in sorted(self.log_dir.glob("*")):
            if path.is_file():
                texts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(texts)


def write_config(flink_home: Path, workdir: Path, rest_port: int, slots: int = TASK_SLOTS,
                 parallelism: int = PARALLELISM, taskmanager_memory: str = TASKMANAGER_MEMORY,
                 task_off_heap: str | None = None) -> Path:
    """A conf/ directory for this cluster (the shipped one, with our config.yaml): its own free
    ports on localhost, its own temporary, pid and log directories, and small memory sizes."""
    conf = workdir / "conf"
    shutil.copytree(flink_home / "conf", conf, dirs_exist_ok=True)
    settings = {
        "env.java.opts.all": _java_module_options(flink_home),
        "env.pid.dir": str(workdir / "pid"),
        "env.log.dir": str(workdir / "log"),
        "io.tmp.dirs": str(workdir / "tmp"),
        "blob.server.port": free_port(),
        "jobmanager.bind-host": "localhost",
        "jobmanager.rpc.address": "localhost",
        "jobmanager.rpc.port": free_port(),
        "jobmanager.memory.process.size": JOBMANAGER_MEMORY,
        "jobmanager.execution.failover-strategy": "region",
        "rest.address": "localhost",
        "rest.bind-address": "localhost",
        "rest.port": rest_port,
        "taskmanager.bind-host": "localhost",
        "taskmanager.host": "localhost",
        "taskmanager.rpc.port": free_port(),
        "taskmanager.data.port": free_port(),
        "taskmanager.numberOfTaskSlots": slots,
        "taskmanager.memory.process.size": taskmanager_memory,
        "taskmanager.memory.managed.size": "64m",
        "parallelism.default": parallelism,
        "web.tmpdir": str(workdir / "tmp"),
        "blob.storage.directory": str(workdir / "tmp"),
    }
    if task_off_heap:  # direct memory for the network buffers of large shuffles
        settings["taskmanager.memory.task.off-heap.size"] = task_off_heap
    for sub in ("pid", "log", "tmp"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    contract.write_bytes(str(conf / "config.yaml"), json.dumps(_nested(settings), indent=1).encode())
    return conf


def _die_with_parent() -> None:
    """In the child, before exec: the kernel kills it when the process that started it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(argv: Sequence[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)


def _stop(processes: Sequence[subprocess.Popen]) -> None:
    """SIGTERM to each process group, then SIGKILL to what is left of it."""
    for proc in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # the group leaders are gone; wait for their members too (SDK workers of the pool)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while processes_in_groups([p.pid for p in processes]) and time.monotonic() < deadline:
        time.sleep(0.2)


def processes_in_groups(groups: Sequence[int]) -> list[int]:
    """Live processes (not zombies) whose process group is one of `groups`."""
    wanted, found = set(groups), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) in wanted:
            found.append(int(entry))
    return found


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (a cluster's workdir, a jar's path)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry))
    return found


def _wait_until_up(cluster: FlinkCluster, processes: Sequence[subprocess.Popen], slots: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    pool_up = rest_up = False
    while time.monotonic() < deadline:
        dead = [p for p in processes if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a Flink process exited with {dead[0].returncode} while starting "
                               f"({' '.join(dead[0].args[:2])}):\n{cluster.logs_tail()}")
        if not pool_up:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", cluster.worker_pool_port), timeout=1).close()
                pool_up = True
        if not rest_up:
            with contextlib.suppress(OSError, ValueError):
                overview = cluster.rest("/overview")
                rest_up = overview.get("taskmanagers", 0) >= 1 and overview.get("slots-total", 0) >= slots
        if pool_up and rest_up:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Flink cluster did not come up in {START_TIMEOUT_S:.0f} s "
                       f"(worker pool up: {pool_up}, TaskManager registered: {rest_up}):\n{cluster.logs_tail()}")


@contextlib.contextmanager
def running_cluster(workdir: Path | str, slots: int = TASK_SLOTS, parallelism: int = PARALLELISM,
                    flink_home: Path | None = None, taskmanager_memory: str = TASKMANAGER_MEMORY,
                    task_off_heap: str | None = None,
                    pool_args: Sequence[str] = ()) -> Iterator[FlinkCluster]:
    """A JobManager, a TaskManager and the worker pool on localhost for the block's duration.

    Raises Unavailable when Java or Flink cannot be had; stops every process it started however
    the block ends."""
    java = java_executable()
    flink_home = flink_home or install_flink()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    rest_port, pool_port = free_port(), free_port()
    conf = write_config(flink_home, workdir, rest_port, slots, parallelism, taskmanager_memory, task_off_heap)
    env = dict(os.environ, FLINK_CONF_DIR=str(conf), FLINK_LOG_DIR=str(workdir / "log"),
               FLINK_PID_DIR=str(workdir / "pid"), FLINK_HOME=str(flink_home),
               JAVA_HOME=os.environ.get("JAVA_HOME") or str(Path(os.path.realpath(java)).parent.parent))
    # The SDK harnesses are this interpreter's (the project's venv), importing this checkout.
    repo = Path(__file__).resolve().parents[2]
    pool_env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
                    NO_ALBUMENTATIONS_UPDATE="1")
    processes: list[subprocess.Popen] = []
    try:
        processes.append(_spawn([str(flink_home / "bin" / "jobmanager.sh"), "start-foreground"], env,
                                workdir / "log" / "jobmanager.console"))
        processes.append(_spawn([str(flink_home / "bin" / "taskmanager.sh"), "start-foreground"], env,
                                workdir / "log" / "taskmanager.console"))
        processes.append(_spawn([sys.executable, "-m", "pipelines.worker_pool", f"--service_port={pool_port}",
                                 *pool_args], pool_env, workdir / "log" / "worker_pool.log", cwd=repo))
        cluster = FlinkCluster(flink_home, workdir, rest_port, pool_port, tuple(p.pid for p in processes),
                               parallelism)
        _wait_until_up(cluster, processes, slots)
        yield cluster
    finally:
        _stop(processes)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.flink_cluster",
        description=f"A local Flink {FLINK_VERSION} cluster with Beam's worker pool, for the flink tests. "
                    f"Downloads go to ${CACHE_ENV} (default ~/.cache/wukong-flink).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download Flink and build the Beam job server into the cache, print their paths")
    run = sub.add_parser("run", help="start the cluster, run COMMAND with FLINK_BEAM_ARGS set to Beam's flags "
                                     "for it and FLINK_WORKER_POOL_PID to the worker pool's process id, stop "
                                     "the cluster; exits with COMMAND's status")
    run.add_argument("--workdir", help="the cluster's conf/, log/ and tmp/ (default: a temporary directory)")
    run.add_argument("--slots", type=int, default=TASK_SLOTS, help=f"task slots (default {TASK_SLOTS})")
    run.add_argument("--taskmanager-memory", default=TASKMANAGER_MEMORY,
                     help=f"the TaskManager's process size (default {TASKMANAGER_MEMORY}; the tests' inputs are small)")
    run.add_argument("--task-off-heap", default=None,
                     help="the TaskManager's task off-heap (direct) memory, e.g. 1g for shuffles of millions of rows")
    run.add_argument("--worker-pool-args", default="", metavar="'FLAGS'",
                     help="flags for `python -m pipelines.worker_pool`, as one string (give it with =), e.g. "
                          "--worker-pool-args='--malloc-arena-max=0 --malloc-release-kib=0' "
                          "for the settings of Beam's own pool")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND...")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            java_executable()
            print(f"flink_home={install_flink()}")
            print(f"job_server_jar={job_server_jar()}")
            return 0
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            parser.error("run needs a command after --")
        jar = job_server_jar()
        signal.signal(signal.SIGTERM, _raise_interrupt)
        with contextlib.ExitStack() as stack:
            workdir = args.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="flink-"))
            cluster = stack.enter_context(running_cluster(workdir, slots=args.slots,
                                                          taskmanager_memory=args.taskmanager_memory,
                                                          task_off_heap=args.task_off_heap,
                                                          pool_args=shlex.split(args.worker_pool_args)))
            print(f"[flink] cluster at {cluster.master}, worker pool at localhost:{cluster.worker_pool_port}",
                  file=sys.stderr, flush=True)
            flags = " ".join(cluster.beam_args(jar))
            return subprocess.call(cmd, env=dict(os.environ, FLINK_BEAM_ARGS=flags,
                                                 FLINK_WORKER_POOL_PID=str(cluster.process_groups[2])))
    except Unavailable as err:
        print(f"[flink] unavailable: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("[flink] interrupted: the cluster is stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
