"""The local Flink cluster of the flink tests: its downloads, its configuration, and above all that
it stops, leaving no process behind, however its owner ends."""

import hashlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.support import flink_cluster
from tests.support.flink_cluster import Unavailable

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------
# Without a cluster
# --------------------------------------------------------------------------------------------

def test_the_job_server_artifact_matches_the_flink_line_and_beams_version(monkeypatch):
    monkeypatch.delenv(flink_cluster.MAVEN_ENV, raising=False)
    coordinates, url = flink_cluster.job_server_artifact("2.77.0", "1.20")
    assert coordinates == "org.apache.beam:beam-runners-flink-1.20-job-server:2.77.0"
    assert url == ("https://repo1.maven.org/maven2/org/apache/beam/beam-runners-flink-1.20-job-server/2.77.0/"
                   "beam-runners-flink-1.20-job-server-2.77.0.jar")
    assert flink_cluster.FLINK_VERSION.startswith(flink_cluster.FLINK_MINOR + ".")
    # Beam 2.77 supports Flink 1.19 to 2.2 (FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS)
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


class _Repository(http.server.BaseHTTPRequestHandler):
    """A Maven repository on 127.0.0.1 serving `files` (path -> bytes) and counting requests."""
    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def repository(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Repository)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Repository.files, _Repository.requests = {}, []
    base = f"http://127.0.0.1:{server.server_address[1]}/maven2"
    monkeypatch.setenv(flink_cluster.MAVEN_ENV, base)
    monkeypatch.delenv(flink_cluster.JAR_ENV, raising=False)
    yield _Repository, base
    server.shutdown()
    server.server_close()


def test_the_jar_is_downloaded_once_checked_and_then_reused(tmp_path, repository):
    served, _ = repository
    path = urllib.parse.urlsplit(flink_cluster.job_server_artifact()[1]).path
    jar = b"PK\x03\x04 a job server"
    served.files = {path: jar, path + ".sha1": hashlib.sha1(jar).hexdigest().encode() + b"  name.jar\n"}
    first = flink_cluster.job_server_jar(tmp_path)
    assert first.read_bytes() == jar and first.parent == tmp_path
    assert sorted(served.requests) == sorted([path, path + ".sha1"])
    assert flink_cluster.job_server_jar(tmp_path) == first
    assert len(served.requests) == 2  # the second call used the cache
    assert [p.name for p in tmp_path.iterdir() if p.name != ".lock"] == [first.name]


def test_a_jar_that_fails_its_checksum_is_not_kept(tmp_path, repository):
    served, _ = repository
    path = urllib.parse.urlsplit(flink_cluster.job_server_artifact()[1]).path
    served.files = {path: b"PK truncated", path + ".sha1": b"0" * 40}
    with pytest.raises(Unavailable, match="differs from the published"):
        flink_cluster.job_server_jar(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name != ".lock"] == []


def test_a_jar_the_repository_does_not_serve_is_a_reason_naming_it(tmp_path, repository):
    with pytest.raises(Unavailable) as err:
        flink_cluster.job_server_jar(tmp_path)
    coordinates = flink_cluster.job_server_artifact()[0]
    assert f"does not serve {coordinates} (HTTP 404" in str(err.value)
    assert flink_cluster.JAR_ENV in str(err.value)


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
print(json.dumps({"flags": flags, "overview": overview}), flush=True)
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
                             "--slots", "2", "--", sys.executable, "-c", _SHOW_FLAGS],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert answer.returncode == 7, answer.stderr[-3000:]  # the command's status, passed on
    shown = json.loads(answer.stdout.strip().splitlines()[-1])
    flags = shown["flags"]
    assert flags["runner"] == "FlinkRunner" and flags["environment_type"] == "EXTERNAL"
    assert flags["flink_job_server_jar"] == str(tmp_path / "job-server.jar")
    assert flags["environment_config"].startswith("localhost:")
    assert (shown["overview"]["taskmanagers"], shown["overview"]["slots-total"]) == (1, 2)
    pool_port = int(flags["environment_config"].split(":")[1])
    assert _leftovers(workdir, [], pool_port) == []
