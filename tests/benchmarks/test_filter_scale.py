"""The filter scale benchmark: its generated corpus has the shape it claims, and its command line
runs the filter with Beam's flags and reports time and memory per process."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from benchmarks import filter_scale
from filters import contract
from filters.text import normalise_caption


def test_the_corpus_repeats_a_quarter_of_its_urls_across_shards():
    corpus = filter_scale.ScaleCorpus(rows=(40_000,))
    columns = filter_scale.corpus_columns(40_000, corpus)
    repeated = 40_000 - len(np.unique(columns["url"]))
    assert 0.24 < repeated / 40_000 < 0.26
    first_row = {}
    across = 0
    for row, url in enumerate(columns["url"]):
        first = first_row.setdefault(int(url), row)
        across += first // corpus.rows_per_shard != row // corpus.rows_per_shard
    assert across > 0.5 * repeated  # most repeats are in a later shard than their first
    assert 0.015 < columns["failed"].mean() < 0.025


def test_captions_follow_a_zipf_law():
    counts = collections.Counter(filter_scale.corpus_columns(40_000, filter_scale.ScaleCorpus())["caption_rank"].tolist())
    ranked = [n for _, n in counts.most_common()]
    assert ranked[0] > 2_000 and sum(n > 10 for n in ranked) > 50  # hot captions ...
    assert sum(n == 1 for n in ranked) > len(ranked) / 2            # ... and a long tail
    # k^-1.1: the tenth is about 10^1.1 = 12.6 times rarer than the first
    assert 8 < ranked[0] / ranked[9] < 20


def test_captions_of_different_ranks_differ_after_normalisation():
    captions = {normalise_caption(filter_scale.caption_of(k)) for k in range(20_000)}
    assert len(captions) == 20_000


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="--rows"):
        filter_scale.ScaleCorpus(rows=(0,))
    with pytest.raises(ValueError, match="--duplicate-share"):
        filter_scale.ScaleCorpus(duplicate_share=1.0)


def test_written_shards_are_raw_shards_and_reused(tmp_path):
    corpus = filter_scale.ScaleCorpus(rows_per_shard=150)
    paths = filter_scale.write_corpus(str(tmp_path / "raw"), 400, corpus)
    assert len(paths) == 3
    table = contract.read_shard(paths[0], contract.RAW_SCHEMA)
    assert table.num_rows == 150 and table.column("rank").to_pylist() == list(range(150))
    mtime = (tmp_path / "raw" / "part-00000.parquet").stat().st_mtime_ns
    assert filter_scale.write_corpus(str(tmp_path / "raw"), 400, corpus) == paths
    assert (tmp_path / "raw" / "part-00000.parquet").stat().st_mtime_ns == mtime  # not rewritten


@pytest.mark.e2e
def test_cli_times_the_filter_with_beam_flags_and_reports_each_worker(tmp_path):
    out = tmp_path / "filter_scale.json"
    argv = ["--rows", "200", "--rows", "500", "--rows-per-shard", "150", "--work", str(tmp_path / "work"),
            "--json", str(out), "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert filter_scale.main(argv) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["beam_args"] == argv[-2:]
    assert [r["rows"] for r in report["runs"]] == [200, 500]
    for run in report["runs"]:
        assert run["shards"] == -(-run["rows"] // 150)
        assert run["duplicate_url"] > 0 and run["frequent_caption"] > 0 and 0 < run["kept"] < run["rows"]
        assert run["us_per_row"] == pytest.approx(run["pipeline_s"] / run["rows"] * 1e6, rel=0.01)
        assert run["driver_peak_mib"] > 50
        assert len(run["workers"]) == 2 and all(w["peak_mib"] > 50 for w in run["workers"])
        assert all("sdk_worker_main" in w["command"] for w in run["workers"])
    small, large = report["runs"]
    assert report["per_row_ratio"] == pytest.approx(large["us_per_row"] / small["us_per_row"], rel=0.01)
    work = tmp_path / "work"
    assert not [p for p in work.glob("filtered-*") if p.is_dir()]  # outputs removed, their logs kept
    assert "filter: " in (work / "filtered-500.log").read_text(encoding="utf-8")
    assert len(list((tmp_path / "work" / "raw-500").glob("*.parquet"))) == 4


def test_worker_peak_counts_only_sdk_harnesses():
    """On Flink the watched pool's tree also holds the pool, the Java job server and the pip and
    sdist runs of job submission; only the SDK harnesses run the filter's DoFns."""
    assert filter_scale.is_sdk_worker("/venv/bin/python -m apache_beam.runners.worker.sdk_worker_main")
    assert filter_scale.is_sdk_worker("python -c from apache_beam.runners.worker.sdk_worker import SdkHarness")
    # a harness started by pipelines.worker_pool, through its launcher
    assert filter_scale.is_sdk_worker("/venv/bin/python /tmp/wukong-worker-pool-ab12/sdk_worker --id=1-1 "
                                      "--control_endpoint=localhost:1")
    for other in ("/venv/bin/python -m apache_beam.runners.worker.worker_pool_main --service_port=1",
                  "/venv/bin/python -m pipelines.worker_pool --service_port=1 --malloc-arena-max=2",
                  "java -jar job-server-flink-1.19-beam-2.62.0.jar", "/venv/bin/python -m pip freeze",
                  "/venv/bin/python setup.py sdist --dist-dir /tmp/x"):
        assert not filter_scale.is_sdk_worker(other)
