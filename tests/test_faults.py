"""kill -9 at several moments, then a rerun: the output is the uninterrupted run's.

Each stage runs as a subprocess, is killed with SIGKILL when its output holds a given number of
finished shards (the moment), and is run again to the end. The final output must equal that of
an uninterrupted run: the same keys and sha256s, no duplicates, no temporaries left, the same
totals (crawl_summary.json) or funnel (funnel.json).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from filters import contract
from pipelines import synthetic
from pipelines.crawl_hits import HITS_SCHEMA, read_query_records
from tests.support.crawl import crawl_argv, running_catalog

pytestmark = pytest.mark.e2e  # subprocesses, servers, Beam pipelines

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=str(REPO))


def _run(module: str, argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", module, *argv], cwd=REPO, env=ENV, capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]


def _kill_at(module: str, argv: list[str], shards: Path, moment: int) -> bool:
    """Start the stage and SIGKILL it once `shards` holds `moment` finished shards; False when
    it ended first (the moment fell after its last shard)."""
    process = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=REPO, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if shards.exists() and len(list(shards.glob("*.parquet"))) >= moment:
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if process.poll() is None and time.monotonic() >= deadline:
            process.kill()
        process.wait()
    return process.returncode == -signal.SIGKILL


def _rows(directory: Path, kind: str, columns: tuple[str, ...]) -> list[tuple]:
    schema = HITS_SCHEMA if kind == "hits" else contract.SCHEMAS[kind]
    rows = []
    for path in contract.list_shards(str(directory)):
        table = contract.read_shard(path, schema, columns=list(columns))
        rows += [tuple(r[c] for c in columns) for r in table.to_pylist()]
    return sorted(rows, key=repr)


def _no_temporaries(directory: Path) -> None:
    assert not [p for p in directory.rglob("*") if contract.storage.is_temporary(p.name)]


def _same_crawl(output: Path, reference: Path) -> None:
    columns = ("key", "url", "status", "sha256", "query", "rank")
    rows = _rows(output, "raw", columns)
    assert rows == _rows(reference, "raw", columns)
    urls = [r[1] for r in rows]
    assert len(urls) == len(set(urls)), "duplicates after the rerun"
    _no_temporaries(output)
    summary = json.loads((output / "crawl_summary.json").read_text())
    assert summary == json.loads((reference / "crawl_summary.json").read_text())


# --------------------------------------------------------------------------------------------
# The crawl
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local():
    with running_catalog(n_queries=10, per_query=5, seed=7, stall_s=2) as served:
        yield served


_HIT_COLUMNS = ("query", "rank", "url", "caption", "round")


def _queries_argv(local, directory: Path, search_rate: str = "20") -> list[str]:
    return crawl_argv(local, directory, "--search-rate", search_rate, chunk_size=1)


def _url_list_argv(local, directory: Path) -> list[str]:
    catalog, engine = local
    directory.mkdir(parents=True, exist_ok=True)
    urls = [f"{engine.base_url}/img/{e.path}" for q in catalog.queries for e in catalog.catalog.results[q]]
    (directory / "urls.csv").write_text(
        "url,caption\n" + "".join(f'{u},"图片 {i}"\n' for i, u in enumerate(urls)), encoding="utf-8")
    base = crawl_argv(local, directory)[4:]  # without --queries FILE --output DIR
    return ["--url-list", str(directory / "urls.csv"), "--output", str(directory / "raw"), *base,
            "--chunk-size", "6"]


def _searched_queries(hits: Path) -> set[str]:
    """The queries of the hit lists in `hits` (their footers name every query, hits or not)."""
    return {r["query"] for path in hits.glob("*.parquet") for r in read_query_records(str(path))}


@pytest.mark.parametrize("mode, phase", [("queries", "search"), ("queries", "download"), ("url_list", "download")])
def test_a_crawl_killed_at_any_moment_reruns_to_the_uninterrupted_output(local, tmp_path, mode, phase):
    """The search phase is killed as its hit lists appear (a slower search rate leaves time to),
    the download phase as its raw shards do."""
    _, engine = local
    if mode == "queries":
        def make_argv(directory):
            return _queries_argv(local, directory, "5" if phase == "search" else "20")
    else:
        def make_argv(directory):
            return _url_list_argv(local, directory)
    reference = tmp_path / "reference"
    _run("pipelines.crawl", make_argv(reference))
    killed = []
    for moment in (1, 3, 6):
        run = tmp_path / f"killed-at-{moment}"
        argv = make_argv(run)
        watched = run / "raw" / "hits" if phase == "search" else run / "raw"
        killed.append(_kill_at("pipelines.crawl", argv, watched, moment))
        searched = _searched_queries(run / "raw" / "hits")
        if killed[-1] and phase == "search":
            assert not list((run / "raw").glob("*.parquet")), "a raw shard before the search phase ended"
        before = engine.search_requests.copy()
        _run("pipelines.crawl", argv)
        again = {q for q, n in engine.search_requests.items() if n > before[q]}
        assert not again & searched, "a finished search was repeated"
        _same_crawl(run / "raw", reference / "raw")
        if mode == "queries":
            assert _rows(run / "raw" / "hits", "hits", _HIT_COLUMNS) == _rows(reference / "raw" / "hits", "hits",
                                                                            _HIT_COLUMNS)
    assert any(killed), "no kill landed before the crawl's end"


def test_crawl_local_killed_in_either_phase_and_rerun_keeps_its_urls(tmp_path):
    argv = ["--queries", "8", "--per-query", "4", "--stall", "1", "--chunk-size", "1", "--search-rate", "4"]
    reference = tmp_path / "reference" / "raw"
    _run("pipelines.crawl_local", ["--output", str(reference), *argv])
    killed = {}
    for watched, moment in (("hits", 2), ("raw", 1), ("raw", 4)):
        output = tmp_path / f"killed-at-{watched}-{moment}" / "raw"
        killed[watched, moment] = _kill_at("pipelines.crawl_local", ["--output", str(output), *argv],
                                           output / "hits" if watched == "hits" else output, moment)
        _run("pipelines.crawl_local", ["--output", str(output), *argv])
        rows = _rows(output, "raw", ("key", "url", "sha256"))
        urls = [r[1] for r in rows]
        assert len(urls) == len(set(urls)), "pairs crawled twice after the rerun"
        # The port (and so the URLs and keys) differs from the reference run's; the image paths and
        # bytes must not, and within the killed run one port serves both halves.
        assert len({u.split("/img/", 1)[0] for u in urls}) == 1
        paths = sorted((u.split("/img/", 1)[1], s) for _, u, s in rows)
        assert paths == sorted((u.split("/img/", 1)[1], s)
                               for _, u, s in _rows(reference, "raw", ("key", "url", "sha256")))
        _no_temporaries(output)
    assert killed["hits", 2], "the kill in the search phase came after the crawl's end"
    assert any(killed.values())


# --------------------------------------------------------------------------------------------
# The filter
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("raw")
    synthetic.write_raw_shards(synthetic.generate_pairs(240, seed=11, size=224), str(directory), rows_per_shard=20)
    return directory


def _same_filter(output: Path, reference: Path) -> None:
    for kind, sub in (("clean", "clean"), ("reject", "rejects")):
        columns = ("key", "sha256") if kind == "clean" else ("key", "drop_reason")
        assert _rows(output / sub, kind, columns) == _rows(reference / sub, kind, columns)
    keys = [k for k, _ in _rows(output / "clean", "clean", ("key", "sha256"))]
    assert len(keys) == len(set(keys))
    _no_temporaries(output)
    assert json.loads((output / "funnel.json").read_text()) == json.loads((reference / "funnel.json").read_text())


@pytest.mark.parametrize("dedup", [False, True])
def test_a_filter_killed_at_any_moment_reruns_to_the_uninterrupted_output(raw_dir, tmp_path, dedup):
    extra = ["--no-word-cloud", "--direct_num_workers", "1"] + (["--dedup-images"] if dedup else [])
    reference = tmp_path / "reference"
    _run("pipelines.filter", ["--input", str(raw_dir), "--output", str(reference), *extra])
    killed = []
    for moment in (1, 5):
        output = tmp_path / f"killed-at-{moment}"
        argv = ["--input", str(raw_dir), "--output", str(output), *extra]
        killed.append(_kill_at("pipelines.filter", argv, output / "clean", moment))
        _run("pipelines.filter", argv)
        _same_filter(output, reference)
    assert any(killed), "no kill landed before the filter's end"
