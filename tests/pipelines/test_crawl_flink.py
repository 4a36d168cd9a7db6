"""The crawl on a standalone Flink cluster (FlinkRunner, EXTERNAL SDK harnesses from Beam's
worker pool) writes the same raw shards as on the in-process runner, from the same command line.

Run with `make test-flink`; the cluster comes from the fixture `flink` (tests/pipelines/conftest.py)."""

import pytest

from filters import contract
from pipelines.local_catalog import write_url_list
from tests.support.crawl import crawl_argv, running_catalog
from tests.support.flink_cluster import processes_mentioning
from tests.support.runner_parity import run_stage, shard_rows

# the first flink test also downloads Flink and the job server and starts the cluster
pytestmark = [pytest.mark.e2e, pytest.mark.flink, pytest.mark.timeout(900)]

#: error_message holds the words of the HTTP client, which may differ in a timeout's details.
LEAVE_OUT = ("error_message",)


@pytest.fixture
def local():
    with running_catalog(n_queries=6, per_query=6, seed=7, blocking=False, stall_s=3) as served:
        yield served


def _same_raw_shards(tmp_path, reference_argv, flink_argv, flink, jar):
    seconds_in_process = run_stage("pipelines.crawl", reference_argv, tmp_path / "in-process.log")
    before = flink.finished_jobs()
    seconds_flink = run_stage("pipelines.crawl", flink_argv, tmp_path / "flink.log")
    ran = {job: parallelism for job, parallelism in flink.finished_jobs().items() if job not in before}
    assert ran and set(ran.values()) == {flink.parallelism}, f"the cluster ran {ran}"
    print(f"[flink] crawl: in-process {seconds_in_process:.1f} s, Flink {seconds_flink:.1f} s")
    reference = shard_rows(tmp_path / "in-process" / "raw", contract.RAW_SCHEMA, LEAVE_OUT)
    assert shard_rows(tmp_path / "flink" / "raw", contract.RAW_SCHEMA, LEAVE_OUT) == reference
    assert {r["status"] for r in reference} > {"success"}  # failures took part too, not only successes
    assert not processes_mentioning(str(jar)), "FlinkRunner's job server outlived the crawl"


def test_crawl_of_the_local_engine_on_flink_matches_the_in_process_runner(local, tmp_path, flink, flink_beam_args,
                                                                           flink_job_server_jar):
    _same_raw_shards(tmp_path, crawl_argv(local, tmp_path / "in-process"),
                     crawl_argv(local, tmp_path / "flink", *flink_beam_args), flink, flink_job_server_jar)


def test_crawl_of_a_url_list_on_flink_matches_the_in_process_runner(local, tmp_path, flink, flink_beam_args,
                                                                     flink_job_server_jar):
    catalog, engine = local
    # every image of the catalog once, and the first query's again (duplicates to drop)
    entries = [e for query in catalog.queries for e in catalog.catalog.results[query]]
    entries += catalog.catalog.results[catalog.queries[0]]
    url_list = tmp_path / "urls.csv"
    write_url_list(str(url_list), engine.base_url, [(f"/img/{e.path}", e.caption) for e in entries])

    def argv(name, *extra):
        common = crawl_argv(local, tmp_path / name, *extra)[4:]  # without --queries FILE --output DIR
        return ["--url-list", str(url_list), "--output", str(tmp_path / name / "raw"), *common]

    _same_raw_shards(tmp_path, argv("in-process"), argv("flink", *flink_beam_args), flink, flink_job_server_jar)
