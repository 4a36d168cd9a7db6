"""benchmarks/crawl_scale.py at a tiny size: both sides crawl, and the report has the docs' fields."""

import json

import pytest

from benchmarks import crawl_scale

pytestmark = pytest.mark.e2e  # a local engine process and crawls in subprocesses


def test_cost_per_chunk_is_the_time_between_finished_files_over_the_window():
    times = [0.0, 1.0, 1.5, 2.5, 4.5]
    assert crawl_scale.cost_per_chunk(times, 1, 2) == pytest.approx(0.75)  # files 2 and 3, after file 1
    assert crawl_scale.cost_per_chunk(times, 4, 1) == pytest.approx(2.0)  # file 5, after file 4


def test_bad_marks_are_refused():
    with pytest.raises(ValueError, match="--at"):
        crawl_scale.ScaleConfig(at="ten")
    with pytest.raises(ValueError, match="positive"):
        crawl_scale.ScaleConfig(at="0,5")
    assert crawl_scale.ScaleConfig(at="8, 2,8", window=3).chunks == 11


def test_the_benchmark_runs_at_a_tiny_size(tmp_path):
    report_file = tmp_path / "report.json"
    assert crawl_scale.main(["--at", "2,5", "--window", "2", "--per-query", "4", "--workdir", str(tmp_path / "work"),
                             "--report", str(report_file)]) == 0
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["chunks"] == 7 and report["finished_at"] == [2, 5]
    for side in ("ours", "waves"):
        assert set(report[side]["per_chunk_s"]) == {"2", "5"}
        assert all(v > 0 for v in report[side]["per_chunk_s"].values())
        assert report[side]["growth"] > 0
    ours = report["ours"]
    for mark in ("2", "5"):
        assert ours["per_chunk_s"][mark] == pytest.approx(
            ours["search_per_chunk_s"][mark] + ours["download_per_chunk_s"][mark], abs=2e-4)
    # each wave wrote its window's shards next to the copied finished ones
    work = tmp_path / "work"
    assert len(list((work / "wave-after-5").glob("*.parquet"))) == 7
    assert len(list((work / "wave-after-5" / "hits").glob("*.parquet"))) == 7
