
"""The local engine's catalog, its CLI, `make crawl`'s module and the benchmark (tiny size)."""

import collections
import json
import os
import subprocess
import sys
import urllib.request

import pytest

from crawler.local_engine import BEHAVIOURS
from pipelines import crawl_local, schema
from pipelines.local_catalog import NO_RESULTS_QUERY, WEB_BEHAVIOURS, build_catalog

pytestmark = pytest.mark.e2e  # runs whole stages (Beam pipelines, servers, subprocesses)
from pipelines.synthetic import DEFECT_SHARES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_catalog_captions_break_every_filter_rule_and_images_meet_every_web_failure():
    local = build_catalog(n_queries=20, per_query=8)
    reasons = collections.Counter(p.expected_reason for p in local.pairs)
    assert set(DEFECT_SHARES) | {"frequent_caption", None} <= set(reasons)
    behaviours = {e.behaviour for es in local.catalog.results.values() for e in es}
    assert {b for b, _ in WEB_BEHAVIOURS.values()} <= behaviours
    assert set(behaviours) <= set(BEHAVIOURS)
    # every pair whose caption tests a filter rule downloads fine, so the filter sees it
    for pair in local.pairs:
        if pair.expected_reason not in (None, "download_failed", "duplicate_url"):  # a duplicate URL is its original
            assert local.expected_status[pair.url.rpartition("/")[2]] == "success"
    assert local.queries[-1] == NO_RESULTS_QUERY and local.catalog.results[NO_RESULTS_QUERY] == []
    assert set(local.catalog.search_modes.values()) == {"blocked", "blocked_first"}
    assert build_catalog(n_queries=20, per_query=8).expected_status == local.expected_status  # deterministic


def test_local_catalog_cli_prints_its_base_url_and_serves(tmp_path):
    queries = tmp_path / "q.txt"
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=REPO)
    process = subprocess.Popen([sys.executable, "-m", "pipelines.local_catalog", "--queries", "6", "--per-query",
                                "6", "--write-queries", str(queries)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        first = queries.read_text(encoding="utf-8").splitlines()[0]
        url = f"{base_url}/search/acjson?tn=resultjson_com&ipn=rj&word={urllib.parse.quote(first)}&pn=0&rn=30"
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = answer.read().decode("utf-8")
        assert '"objURL"' in body and first in body
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def test_make_crawl_module_crawls_the_local_engine(tmp_path, capsys):
    output = tmp_path / "crawl" / "raw"
    assert crawl_local.main(["--output", str(output), "--queries", "5", "--per-query", "6", "--stall", "2",
                             "--read-timeout", "0.3", "--total-timeout", "0.6"]) == 0
    summary = json.loads((output / "crawl_summary.json").read_text(encoding="utf-8"))
    assert summary["chunks_done"] == summary["chunks"] == 2  # 5 queries + the no-results one, 5 per chunk
    assert summary["downloads"]["success"] > 0 and summary["blocked_queries"]
    assert len(schema.list_shards(str(output))) == 2
    assert "local engine at http://127.0.0.1:" in capsys.readouterr().err


def test_download_benchmark_runs_at_a_tiny_size(tmp_path):
    report_file = tmp_path / "report.json"
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=REPO)
    subprocess.run([sys.executable, "-m", "benchmarks.download", "--images", "64", "--concurrency", "8",
                    "--workdir", str(tmp_path / "work"), "--report", str(report_file)], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=240)
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["same_kept"] and report["ours"]["downloaded"] == 64
    # 64 URLs cycle through 8 sizes: 150x150 (too small) and 800x250 (too wide) fail the image
    # rule, 201x201 and 300x900 (a ratio of exactly 3) pass it
    assert report["ours"]["kept"] == 64 - 2 * 8
    assert report["speedup"] > 0
