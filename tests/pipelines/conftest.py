"""Fixtures of the pipeline tests: a local Flink cluster for the flink tests (`make test-flink`)."""

import pytest

from tests.support import flink_cluster


@pytest.fixture(scope="package")
def flink_job_server_jar():
    """Beam's Flink job-server jar from the cache (downloaded once); skips, saying why, without it."""
    try:
        return flink_cluster.job_server_jar()
    except flink_cluster.Unavailable as err:
        pytest.skip(f"no Flink job server: {err}")


@pytest.fixture(scope="package")
def flink(flink_job_server_jar, tmp_path_factory):
    """One local Flink cluster with Beam's worker pool for the flink tests of this package; stopped
    after the last of them, and checked to leave no process behind."""
    workdir = tmp_path_factory.mktemp("flink")
    try:
        with flink_cluster.running_cluster(workdir) as cluster:
            yield cluster
    except flink_cluster.Unavailable as err:
        pytest.skip(f"no Flink cluster: {err}")
    left = (flink_cluster.processes_in_groups(cluster.process_groups)
            + flink_cluster.processes_mentioning(str(workdir))
            + flink_cluster.processes_mentioning(str(flink_job_server_jar)))
    assert not left, f"processes of the Flink cluster outlived it: {left}"


@pytest.fixture(scope="package")
def flink_beam_args(flink, flink_job_server_jar):
    """Beam's flags that run a stage on the package's cluster (EXTERNAL SDK harnesses)."""
    return flink.beam_args(flink_job_server_jar)
