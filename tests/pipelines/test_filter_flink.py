"""The filter on a standalone Flink cluster (FlinkRunner, EXTERNAL SDK harnesses from Beam's
worker pool) writes the same clean and reject shards, funnel.json and stats.json as on the
in-process runner, from the same command line.

Run with `make test-flink`; the cluster comes from the fixture `flink` (tests/pipelines/conftest.py)."""

import pytest

from filters import contract
from tests.support.flink_cluster import processes_mentioning
from tests.support.runner_parity import read_json, run_stage, shard_rows

# the first flink test also downloads Flink and the job server and starts the cluster
pytestmark = [pytest.mark.e2e, pytest.mark.flink, pytest.mark.timeout(900)]


def test_filter_on_flink_matches_the_in_process_runner(tmp_path, flink, flink_beam_args, flink_job_server_jar):
    raw = tmp_path / "raw"
    run_stage("pipelines.synthetic", ["--output", str(raw), "--pairs", "400", "--seed", "3",
                                      "--rows-per-shard", "100", "--size", "224"], tmp_path / "synthetic.log")
    common = ["--input", str(raw), "--no-word-cloud"]
    seconds_in_process = run_stage("pipelines.filter", [*common, "--output", str(tmp_path / "in-process")],
                                   tmp_path / "in-process.log")
    before = flink.finished_jobs()
    seconds_flink = run_stage("pipelines.filter", [*common, "--output", str(tmp_path / "flink"), *flink_beam_args],
                              tmp_path / "flink.log")
    # the job ran on this cluster, its steps spread over the cluster's parallelism
    ran = {job: parallelism for job, parallelism in flink.finished_jobs().items() if job not in before}
    assert ran and set(ran.values()) == {flink.parallelism}, f"the cluster ran {ran}"
    print(f"[flink] filter: in-process {seconds_in_process:.1f} s, Flink {seconds_flink:.1f} s")

    for directory, schema in ((contract.CLEAN_DIR, contract.CLEAN_SCHEMA),
                              (contract.REJECT_DIR, contract.REJECT_SCHEMA)):
        reference = shard_rows(tmp_path / "in-process" / directory, schema)
        assert shard_rows(tmp_path / "flink" / directory, schema) == reference, directory
    funnel = read_json(tmp_path / "in-process" / contract.FUNNEL_FILE)
    assert read_json(tmp_path / "flink" / contract.FUNNEL_FILE) == funnel
    assert read_json(tmp_path / "flink" / contract.STATS_FILE) == read_json(tmp_path / "in-process" / contract.STATS_FILE)
    # the input broke several rules, so the comparison covers several drop reasons
    assert sum(1 for stage in funnel["stages"] if any(stage["dropped"].values())) >= 3
    assert not processes_mentioning(str(flink_job_server_jar)), "FlinkRunner's job server outlived the filter"
