"""The local Flink cluster of the flink tests: its downloads, its configuration, and above all that
it stops, leaving no process behind, however its owner ends."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.support import flink_cluster
from tests.support.flink_cluster import Unavailable

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------
# Without a cluster
# --------------------------------------------------------------------------------------------

def test_the_job_server_pom_builds_the_runner_of_the_clusters_flink_line():
    pom = ElementTree.parse(flink_cluster.JOB_SERVER_POM).getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    assert pom.findtext("m:properties/m:beam.version", namespaces=ns) == flink_cluster.BEAM_JAVA_VERSION
    assert pom.findtext("m:properties/m:flink.minor", namespaces=ns) == flink_cluster.FLINK_MINOR
    assert "org.apache.beam.runners.flink.FlinkJobServerDriver" in flink_cluster.JOB_SERVER_POM.read_text()
    assert flink_cluster.FLINK_VERSION.startswith(flink_cluster.FLINK_MINOR + ".")
    # Beam 2.77's Python FlinkRunner knows the Flink line too (FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS)
    from apache_beam.options.pipeline_options import FlinkRunnerOptions
    assert flink_cluster.FLINK_MINOR in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS


def test_the_config_gives_each_cluster_its_own_ports_directories_and_small_memory(tmp_path):
    home = tmp_path / "flink"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "config.yaml").write_text(
        "env:\n  java:\n    opts:\n      all: --add-opens=java.base/java.lang=ALL-UNNAMED\n"
        "jobmanager:\n  rpc:\n    port: 6123\n", encoding="utf-8")
    (home / "conf" / "log4j-console.properties").write_text("x=1\n")
    conf = flink_cluster.write_config(home, tmp_path / "work", rest_port=18081, slots=3, parallelism=2)
    settings = json.loads((conf / "config.yaml").read_text())  # JSON is YAML 1.2
    assert (conf / "log4j-console.properties").exists()
    assert settings["rest"]["port"] == 18081
    assert settings["rest"]["bind-address"] == "localhost"
    ports = [settings["jobmanager"]["rpc"]["port"], settings["blob"]["server"]["port"],
             settings["taskmanager"]["rpc"]["port"], settings["taskmanager"]["data"]["port"], 18081]
    assert len(set(ports)) == len(ports) and 6123 not in ports  # never Flink's fixed default ports
    assert settings["taskmanager"]["numberOfTaskSlots"] == 3
    assert settings["parallelism"]["default"] == 2
    assert settings["taskmanager"]["memory"]["process"]["size"] == flink_cluster.TASKMANAGER_MEMORY
    assert settings["env"]["java"]["opts"]["all"] == "--add-opens=java.base/java.lang=ALL-UNNAMED"
    for key in ("pid", "log"):
        assert settings["env"][key]["dir"].startswith(str(tmp_path / "work"))
    assert settings["io"]["tmp"]["dirs"].startswith(str(tmp_path / "work"))


def test_no_java_is_a_reason_to_skip_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))  # no bin/java there
    with pytest.raises(Unavailable, match="no Java found"):
        flink_cluster.java_executable()


def test_a_named_job_server_jar_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv(flink_cluster.JAR_ENV, str(tmp_path / "missing.jar"))
    with pytest.raises(Unavailable, match="missing.jar, which is not a file"):
        flink_cluster.job_server_jar(tmp_path)
    (tmp_path / "mine.jar").write_bytes(b"PK")
    monkeypatch.setenv(flink_cluster.JAR_ENV, str(tmp_path / "mine.jar"))
    assert flink_cluster.job_server_jar(tmp_path) == tmp_path / "mine.jar"


#: A stand-in for `mvn` on PATH: it logs its arguments and, unless told to fail, writes what
#: `mvn package` of the job-server pom writes into target/.
_FAKE_MVN = """#!/bin/sh
echo "$@" >> "$FAKE_MVN_LOG"
if [ -n "$FAKE_MVN_FAIL" ]; then echo "[ERROR] $FAKE_MVN_FAIL"; exit 1; fi
mkdir -p target/lib target/classes && printf PK > target/beam-flink-job-server.jar && printf PK > target/lib/a.jar
"""


@pytest.fixture
def fake_maven(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mvn").write_text(_FAKE_MVN)
    (bin_dir / "mvn").chmod(0o755)
    log = tmp_path / "mvn.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MVN_LOG", str(log))
    monkeypatch.delenv(flink_cluster.JAR_ENV, raising=False)
    monkeypatch.delenv(flink_cluster.MAVEN_ENV, raising=False)
    return log


def test_the_job_server_is_built_once_with_a_repository_in_the_cache_and_then_reused(tmp_path, fake_maven):
    cache = tmp_path / "cache"
    jar = flink_cluster.job_server_jar(cache)
    assert jar == flink_cluster.job_server_dir(cache) / "beam-flink-job-server.jar" and jar.read_bytes() == b"PK"
    assert (jar.parent / "lib" / "a.jar").exists() and not (jar.parent / "classes").exists()
    args = fake_maven.read_text().split()
    assert f"-Dmaven.repo.local={cache / 'maven-repository'}" in args and "package" in args
    assert f"-Dbeam.version={flink_cluster.BEAM_JAVA_VERSION}" in args and "-C" in args  # checksums enforced
    assert flink_cluster.job_server_jar(cache) == jar
    assert len(fake_maven.read_text().splitlines()) == 1  # the second call used the cache
    assert sorted(p.name for p in cache.iterdir() if p.name != ".lock") == [jar.parent.name]


def test_a_changed_pom_builds_anew(tmp_path, fake_maven):
    pom = tmp_path / "pom.xml"
    pom.write_text(flink_cluster.JOB_SERVER_POM.read_text())
    first = flink_cluster.build_job_server(tmp_path / "cache", pom)
    pom.write_text(pom.read_text() + "<!-- changed -->\n")
    assert flink_cluster.build_job_server(tmp_path / "cache", pom) != first
    assert len(fake_maven.read_text().splitlines()) == 2


def test_a_failed_build_is_a_reason_with_mavens_words_and_leaves_nothing(tmp_path, fake_maven, monkeypatch):
    monkeypatch.setenv("FAKE_MVN_FAIL", "Could not resolve dependencies for beam-runners-flink-1.19")
    cache = tmp_path / "cache"
    with pytest.raises(Unavailable, match="Could not resolve dependencies for beam-runners-flink-1.19"):
        flink_cluster.job_server_jar(cache)
    assert [p.name for p in cache.iterdir() if p.name != ".lock"] == []


def test_a_maven_mirror_is_given_to_maven_as_its_settings(tmp_path, fake_maven, monkeypatch):
    monkeypatch.setenv(flink_cluster.MAVEN_ENV, "http://127.0.0.1:9/maven2?a=1&b=2")
    monkeypatch.setenv("FAKE_MVN_FAIL", "stop here")
    (tmp_path / "bin" / "mvn").write_text(_FAKE_MVN.replace('echo "$@"', 'cat "$2" >> "$FAKE_MVN_LOG"; echo "$@"'))
    with pytest.raises(Unavailable):
        flink_cluster.job_server_jar(tmp_path / "cache")
    settings = ElementTree.fromstring(fake_maven.read_text().splitlines()[0])
    assert settings.findtext("mirrors/mirror/url") == "http://127.0.0.1:9/maven2?a=1&b=2"
    assert settings.findtext("mirrors/mirror/mirrorOf") == "*"


def test_no_maven_is_a_reason_to_skip(tmp_path, monkeypatch):
    monkeypatch.delenv(flink_cluster.JAR_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Unavailable, match="no Maven"):
        flink_cluster.job_server_jar(tmp_path / "cache")


def test_the_command_line_says_why_it_cannot_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(flink_cluster.JAR_ENV, str(tmp_path / "missing.jar"))
    assert flink_cluster.main(["run", "--", "true"]) == 3
    assert "unavailable" in capsys.readouterr().err


def test_process_scans_find_a_group_and_a_command_line_until_it_ends(tmp_path):
    marker = str(tmp_path / "marker")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while proc.pid not in flink_cluster.processes_mentioning(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flink_cluster.processes_in_groups([proc.pid]) == [proc.pid]
        assert flink_cluster.processes_mentioning(marker) == [proc.pid]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert flink_cluster.processes_in_groups([proc.pid]) == []
    assert flink_cluster.processes_mentioning(marker) == []


# --------------------------------------------------------------------------------------------
# A real cluster (Java, and Flink from PyPI, cached; no job server needed)
# --------------------------------------------------------------------------------------------

def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _leftovers(workdir: Path, groups, pool_port: int) -> list[int]:
    return sorted(set(flink_cluster.processes_in_groups(groups)
                      + flink_cluster.processes_mentioning(str(workdir))
                      + flink_cluster.processes_mentioning(f"--service_port={pool_port}")))


def _require_flink():
    try:
        flink_cluster.java_executable()
        flink_cluster.install_flink()
    except Unavailable as err:
        pytest.skip(f"no Flink cluster: {err}")


def _manifest(jar: Path) -> dict[str, str]:
    """The main attributes of a jar's manifest (continuation lines joined)."""
    with zipfile.ZipFile(jar) as archive:
        text = archive.read("META-INF/MANIFEST.MF").decode().replace("\r\n", "\n").replace("\n ", "")
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


@pytest.mark.e2e
@pytest.mark.flink
@pytest.mark.timeout(1800)  # the first call downloads Flink and builds the job server
def test_fetch_prints_a_flink_and_a_job_server_that_java_runs(tmp_path):
    _require_flink()
    answer = subprocess.run([sys.executable, "-m", "tests.support.flink_cluster", "fetch"], cwd=REPO,
                            capture_output=True, text=True, timeout=1700)
    if answer.returncode == 3:  # Unavailable: Maven, or a download, cannot be had here
        pytest.skip(f"no Flink job server: {answer.stderr.strip()[-1000:]}")
    assert answer.returncode == 0, answer.stderr[-3000:]
    paths = dict(line.split("=", 1) for line in answer.stdout.splitlines() if "=" in line)
    assert (Path(paths["flink_home"]) / "lib" / f"flink-dist-{flink_cluster.FLINK_VERSION}.jar").exists()
    jar = Path(paths["job_server_jar"])
    manifest = _manifest(jar)
    assert manifest["Main-Class"] == "org.apache.beam.runners.flink.FlinkJobServerDriver"
    libs = manifest["Class-Path"].split()
    assert f"lib/beam-runners-flink-{flink_cluster.FLINK_MINOR}-{flink_cluster.BEAM_JAVA_VERSION}.jar" in libs
    assert f"lib/beam-runners-java-job-service-{flink_cluster.BEAM_JAVA_VERSION}.jar" in libs
    assert f"lib/flink-clients-{flink_cluster.FLINK_VERSION}.jar" in libs  # the cluster's Flink, exactly
    assert all((jar.parent / lib).is_file() for lib in libs)
    # the driver loads from the jar and its lib/: it parses its command line and names its flags
    usage = subprocess.run([flink_cluster.java_executable(), "-jar", str(jar), "--no-such-flag"],
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode != 0 and "--flink-master" in usage.stdout + usage.stderr


@pytest.mark.e2e
@pytest.mark.flink
@pytest.mark.timeout(900)  # the first start downloads Flink
def test_the_cluster_comes_up_with_its_slots_and_stops_leaving_no_process(tmp_path):
    _require_flink()
    started = time.monotonic()
    with flink_cluster.running_cluster(tmp_path / "cluster", slots=3) as cluster:
        print(f"[flink] cluster start-up {time.monotonic() - started:.1f} s")
        overview = cluster.rest("/overview")
        assert overview["flink-version"] == flink_cluster.FLINK_VERSION
        assert (overview["taskmanagers"], overview["slots-total"]) == (1, 3)
        assert _port_open(cluster.worker_pool_port)
        groups = cluster.process_groups
        assert len(flink_cluster.processes_in_groups(groups)) >= 3  # JobManager, TaskManager, worker pool
    assert _leftovers(tmp_path / "cluster", groups, cluster.worker_pool_port) == []
    assert not _port_open(cluster.rest_port) and not _port_open(cluster.worker_pool_port)


_OWNER = """
import json, sys, time
from tests.support import flink_cluster
with flink_cluster.running_cluster(sys.argv[1]) as cluster:
    print(json.dumps({"groups": cluster.process_groups, "pool": cluster.worker_pool_port}), flush=True)
    time.sleep(600)
"""


@pytest.mark.e2e
@pytest.mark.flink
@pytest.mark.timeout(900)
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_or_killed_owner_leaves_no_process(tmp_path, how):
    """Ctrl-C runs the stop; a kill -9 of the owner gives no chance to, and the kernel's
    parent-death signal takes the cluster down with it."""
    _require_flink()
    workdir = tmp_path / "cluster"
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(workdir)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        line = owner.stdout.readline()
        assert line, "the cluster did not start"
        started = json.loads(line)
        assert flink_cluster.processes_in_groups(started["groups"])
        owner.send_signal(how)
        owner.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _leftovers(workdir, started["groups"], started["pool"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _leftovers(workdir, started["groups"], started["pool"]) == []
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


_SHOW_FLAGS = """
import json, os, sys, urllib.request
flags = dict(f.lstrip("-").split("=", 1) for f in os.environ["FLINK_BEAM_ARGS"].split())
rest = flags["flink_master"].rsplit(":", 1)[1]
overview = json.load(urllib.request.urlopen(f"http://127.0.0.1:{rest}/overview", timeout=10))
with open(f"/proc/{os.environ['FLINK_WORKER_POOL_PID']}/cmdline", "rb") as handle:
    pool = handle.read().replace(b"\\0", b" ").decode()
print(json.dumps({"flags": flags, "overview": overview, "pool": pool}), flush=True)
sys.exit(7)
"""


@pytest.mark.e2e
@pytest.mark.flink
@pytest.mark.timeout(900)
def test_the_command_line_runs_a_command_against_the_cluster_and_stops_it(tmp_path):
    _require_flink()
    (tmp_path / "job-server.jar").write_bytes(b"PK")  # the command here needs the flags, not the jar
    env = dict(os.environ, PYTHONPATH=str(REPO), **{flink_cluster.JAR_ENV: str(tmp_path / "job-server.jar")})
    workdir = tmp_path / "cluster"
    answer = subprocess.run([sys.executable, "-m", "tests.support.flink_cluster", "run", "--workdir", str(workdir),
                             "--slots", "2", "--taskmanager-memory", "1600m", "--task-off-heap", "128m",
                             "--worker-pool-args=--malloc-arena-max=3 --malloc-release-kib=64",
                             "--", sys.executable, "-c", _SHOW_FLAGS],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert answer.returncode == 7, answer.stderr[-3000:]  # the command's status, passed on
    shown = json.loads(answer.stdout.strip().splitlines()[-1])
    flags = shown["flags"]
    assert flags["runner"] == "FlinkRunner" and flags["environment_type"] == "EXTERNAL"
    assert flags["parallelism"] == str(flink_cluster.PARALLELISM)
    assert flags["flink_job_server_jar"] == str(tmp_path / "job-server.jar")
    assert flags["environment_config"].startswith("localhost:")
    assert (shown["overview"]["taskmanagers"], shown["overview"]["slots-total"]) == (1, 2)
    # the worker pool's process, for benchmarks that watch its SDK harnesses (--watch)
    assert "pipelines.worker_pool" in shown["pool"] and "--malloc-arena-max=3 --malloc-release-kib=64" in shown["pool"]
    assert f"--service_port={flags['environment_config'].split(':')[1]}" in shown["pool"]
    memory = json.loads((workdir / "conf" / "config.yaml").read_text())["taskmanager"]["memory"]
    assert memory["process"]["size"] == "1600m" and memory["task"]["off-heap"]["size"] == "128m"
    pool_port = int(flags["environment_config"].split(":")[1])
    assert _leftovers(workdir, [], pool_port) == []
