"""The crawl pipeline against the local engine (in a thread of the test process)."""

import hashlib
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawler.baidu import SearchConfig
from crawler.download import DownloadConfig
from filters import contract
from pipelines import crawl
from pipelines.local_catalog import NO_RESULTS_QUERY
from tests.support.crawl import crawl_argv, expected_paths, image_path, read_raw, running_catalog

pytestmark = pytest.mark.e2e  # runs whole stages (Beam pipelines, servers, subprocesses)


@pytest.fixture
def local():
    """A 12-query catalog (second query blocked at first, last always blocked) and its engine."""
    with running_catalog(n_queries=12, per_query=6, seed=3, stall_s=3) as served:
        yield served


def test_crawl_writes_every_hit_once_with_its_status(local, tmp_path):
    catalog, engine = local
    outcome = crawl.run(crawl_argv(local, tmp_path))
    table = read_raw(tmp_path / "raw")
    rows = table.to_pylist()

    urls = [r["url"] for r in rows]
    assert len(urls) == len(set(urls)), "duplicate URLs in the raw shards"
    first_query = expected_paths(catalog)
    assert {image_path(u) for u in urls} == set(first_query)  # complete: nothing lost
    pairs = {p.url.rpartition("/")[2]: p for p in catalog.pairs}
    for row in rows:
        path = image_path(row["url"])
        assert row["status"] == catalog.expected_status[path], (path, row["error_message"])
        assert row["query"] == first_query[path]  # the first by query order wins
        assert row["caption_raw"] == " ".join(pairs[path].caption.split())  # as Baidu's parser gives it
        assert row["caption"] is None  # the filter normalises; the crawl stores the caption as found
        assert row["key"] == contract.url_key(row["url"])
        if row["status"] == "success":
            pair = pairs[path]
            assert (row["width"], row["height"], row["image_format"]) == (pair.width, pair.height, pair.image_format)
            assert row["sha256"] == hashlib.sha256(row["image"]).hexdigest()
        else:
            assert row["image"] is None and row["error_message"]
    statuses = {r["status"] for r in rows}
    assert statuses >= {"success", "http_error", "noai", "unsafe_destination", "not_an_image", "too_large",
                        "robots_disallowed", "timeout"}

    totals = outcome.totals
    assert totals["blocked_queries"] == [catalog.queries[-2]]  # the last catalog query; no-results comes after
    assert totals["queries"] == {"blocked": 1, "no_results": 1, "ok": 11}
    assert totals["rows"] == len(rows)
    assert totals["hits"] == len(rows) + totals["duplicates"] and totals["duplicates"] > 0
    summary = json.loads((tmp_path / "raw" / crawl.SUMMARY_FILE).read_text(encoding="utf-8"))
    assert summary["blocked_queries"] == totals["blocked_queries"]
    # Beam counters agree with the data
    counters = outcome.counters
    assert counters["duplicates"] == totals["duplicates"]
    assert counters["queries"] == 13 and counters["queries_blocked"] == 1 and counters["queries_no_results"] == 1
    assert counters["hits"] == totals["hits"]
    for status, n in totals["downloads"].items():
        assert counters[f"download_{status}"] == n
    # a query without results is recorded as such, and the blocked one as blocked
    stats = [json.loads(p.read_text(encoding="utf-8")) for p in (tmp_path / "raw" / "stats").glob("*.json")]
    by_query = {r["query"]: r for s in stats for r in s["query_results"]}
    assert by_query[NO_RESULTS_QUERY]["status"] == "no_results"
    assert by_query[catalog.queries[-2]]["status"] == "blocked"
    assert by_query[catalog.queries[1]]["status"] == "ok"  # blocked once, then recovered


def test_rerun_skips_finished_chunks_and_resumes_missing_ones(local, tmp_path):
    catalog, engine = local
    argv = crawl_argv(local, tmp_path, "--wave-chunks", "2")  # ignored, and still accepted
    first = crawl.run(argv)
    assert first.crawled_chunks == 5
    before = read_raw(tmp_path / "raw").sort_by("url")
    requests = sum(engine.search_requests.values())

    again = crawl.run(argv)
    assert again.crawled_chunks == 0
    assert sum(engine.search_requests.values()) == requests  # nothing searched again

    shards = contract.list_shards(str(tmp_path / "raw"))
    os.remove(shards[1])
    stale = tmp_path / "raw" / ".part-00001-x.parquet.tmp-dead"
    stale.write_bytes(b"half a shard")
    resumed = crawl.run(argv)
    assert resumed.crawled_chunks == 1 and resumed.searched_chunks == 0
    assert sum(engine.search_requests.values()) == requests  # a lost raw shard is downloaded again, not searched
    assert not stale.exists()
    after = read_raw(tmp_path / "raw").sort_by("url")
    assert after.column("url").to_pylist() == before.column("url").to_pylist()
    assert after.column("status").to_pylist() == before.column("status").to_pylist()
    assert resumed.totals == first.totals


def test_the_phases_run_apart_and_downloads_are_redone_without_searching(local, tmp_path, capsys):
    _, engine = local
    argv = crawl_argv(local, tmp_path)
    searched = crawl.run([*argv, "--phase", "search"])
    assert searched.searched_chunks == 5 and searched.crawled_chunks == 0
    hits = tmp_path / "raw" / crawl.HITS_DIR
    assert len(list(hits.glob("*.parquet"))) == 5 and not list((tmp_path / "raw").glob("*.parquet"))
    requests = sum(engine.search_requests.values())

    first = crawl.run([*argv, "--phase", "download"])
    assert first.crawled_chunks == 5 and sum(engine.search_requests.values()) == requests
    # again, resized, into another output, from the first output's hit lists
    resized = tmp_path / "resized"
    again = crawl.run([*argv[:2], "--output", str(resized), "--hits", str(hits), *argv[4:], "--phase", "download",
                       "--resize-mode", "center_crop", "--image-size", "64"])
    assert sum(engine.search_requests.values()) == requests  # never searched again
    assert not (resized / crawl.HITS_DIR).exists()
    # the same hits and winners; the statuses may differ (the resizer refuses some images)
    assert {k: v for k, v in again.totals.items() if k != "downloads"} == {
        k: v for k, v in first.totals.items() if k != "downloads"}
    rows = {r["url"]: r for r in read_raw(resized).to_pylist()}
    original = {r["url"]: r for r in read_raw(tmp_path / "raw").to_pylist()}
    assert rows.keys() == original.keys()
    ok = [r for r in rows.values() if r["status"] == "success"]
    assert ok and all((r["width"], r["height"]) == (64, 64) for r in ok)
    assert all(r["query"] == original[u]["query"] and r["rank"] == original[u]["rank"] for u, r in rows.items())

    capsys.readouterr()
    assert crawl.main([*argv[:2], "--output", str(tmp_path / "none"), "--hits", str(tmp_path / "empty"),
                       *argv[4:], "--phase", "download"]) == 2
    err = capsys.readouterr().err
    assert "5 of 5 chunks have no hit list in" in err and str(tmp_path / "empty") in err


def test_retry_blocked_crawls_the_blocked_chunk_again_without_duplicates(local, tmp_path):
    catalog, engine = local
    argv = crawl_argv(local, tmp_path)
    first = crawl.run(argv)
    blocked = first.totals["blocked_queries"]
    assert blocked == [catalog.queries[-2]]
    before = {r["url"]: r for r in read_raw(tmp_path / "raw").to_pylist()}

    assert crawl.run(argv).crawled_chunks == 0  # a plain rerun leaves blocked queries alone
    shards = {p: os.stat(p).st_mtime_ns for p in contract.list_shards(str(tmp_path / "raw"))}
    requests = engine.search_requests.copy()
    still = crawl.run([*argv, "--retry-blocked"])  # blocked again: nothing new, nothing downloaded again
    assert (still.searched_chunks, still.crawled_chunks) == (1, 0)
    assert {q for q, n in engine.search_requests.items() if n != requests[q]} == {blocked[0]}  # only it
    assert {p: os.stat(p).st_mtime_ns for p in contract.list_shards(str(tmp_path / "raw"))} == shards
    catalog.catalog.search_modes.pop(blocked[0])  # the engine stops blocking
    again = crawl.run([*argv, "--retry-blocked"])
    assert again.crawled_chunks == 1
    assert again.totals["blocked_queries"] == [] and again.totals["queries"] == {"no_results": 1, "ok": 12}
    rows = read_raw(tmp_path / "raw").to_pylist()
    urls = [r["url"] for r in rows]
    assert len(urls) == len(set(urls))
    everything = {e.path for q in catalog.queries for e in catalog.catalog.results[q]}
    assert {image_path(u) for u in urls} == everything
    assert set(before) <= set(urls)  # what other chunks had stays
    newly = [r for r in rows if r["url"] not in before]
    assert newly and all(r["query"] == blocked[0] for r in newly)


def test_retry_blocked_keeps_the_pairs_of_a_query_blocked_only_this_time(local, tmp_path):
    catalog, engine = local
    argv = crawl_argv(local, tmp_path)
    first = crawl.run(argv)
    [blocked] = first.totals["blocked_queries"]
    before = {r["url"]: r for r in read_raw(tmp_path / "raw").to_pylist()}
    # a query of the same chunk (chunks of 3 queries) that was answered the first time
    position = catalog.queries.index(blocked)
    neighbours = [q for q in catalog.queries[position - position % 3: position - position % 3 + 3]
                  if q != blocked and any(r["query"] == q for r in before.values())]
    assert neighbours
    modes = catalog.catalog.search_modes
    modes[neighbours[0]] = modes.pop(blocked)  # the retry is blocked on the other query instead
    again = crawl.run([*argv, "--retry-blocked"])
    assert again.crawled_chunks == 1
    rows = read_raw(tmp_path / "raw").to_pylist()
    urls = [r["url"] for r in rows]
    assert len(urls) == len(set(urls))
    assert set(before) <= set(urls)  # nothing the first crawl had is lost
    assert any(r["query"] == blocked for r in rows)  # and the retried query's pairs arrived


def test_url_list_mode_reads_csv_tsv_and_parquet(local, tmp_path):
    catalog, engine = local
    entries = [e for e in catalog.catalog.results[catalog.queries[0]]
               if catalog.expected_status[e.path] == "success"]
    urls = [f"{engine.base_url}/img/{e.path}" for e in entries]
    rows = [f'{u},"图片 {i}"' for i, u in enumerate(urls[:2])]
    rows += [f"{urls[0]},重复", f"{urls[1].replace('http://', 'HTTP://')}#top,同一张"]
    (tmp_path / "a.csv").write_text("url,caption\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "b.tsv").write_text("caption\turl\n" + "".join(f"第{i}张\t{u}\n" for i, u in enumerate(urls[2:3])),
                                    encoding="utf-8")
    pq.write_table(pa.table({"url": urls[3:], "caption": ["帕奎特"] * len(urls[3:])}), tmp_path / "c.parquet")
    base = crawl_argv(local, tmp_path)[4:]  # drop --queries FILE --output DIR
    totals = {}
    for name in ("a.csv", "b.tsv", "c.parquet"):
        totals[name] = crawl.run(["--url-list", str(tmp_path / name), "--output",
                                  str(tmp_path / name.split(".")[0]), *base]).totals
        assert totals[name]["downloads"] == {"success": totals[name]["rows"]}
    rows = read_raw(tmp_path / "a").to_pylist()
    assert [(r["url"], r["caption_raw"], r["query"], r["rank"]) for r in rows] == [
        (urls[0], "图片 0", "", 0), (urls[1], "图片 1", "", 1)]
    assert totals["a.csv"]["duplicates"] == 2  # rows 2 and 3 repeat rows 0 and 1 (the second once normalised)
    assert read_raw(tmp_path / "b").to_pylist()[0]["caption_raw"] == "第0张"
    assert len(read_raw(tmp_path / "c")) == len(urls) - 3


@pytest.mark.parametrize("content, message", [
    (b"", "no queries"),
    (b"\n  \n\n", "no queries"),
    ("风景\n".encode("utf-8") + "猫咪\n".encode("gbk"), "not UTF-8 text (line 2"),
])
def test_bad_query_files_are_clear_errors(tmp_path, capsys, content, message):
    queries = tmp_path / "q.txt"
    queries.write_bytes(content)
    assert crawl.main(["--queries", str(queries), "--output", str(tmp_path / "raw")]) == 2
    assert message in capsys.readouterr().err


def test_bad_inputs_and_flags_are_clear_errors(tmp_path, capsys):
    (tmp_path / "nourl.csv").write_text("link,caption\nhttp://x/a.jpg,a\n", encoding="utf-8")
    assert crawl.main(["--url-list", str(tmp_path / "nourl.csv"), "--output", str(tmp_path / "o")]) == 2
    assert "no 'url' column" in capsys.readouterr().err
    assert crawl.main(["--url-list", str(tmp_path / "missing*.csv"), "--output", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert crawl.main(["--queries", str(tmp_path / "missing.txt"), "--output", str(tmp_path / "o")]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "q.txt").write_text("猫\n", encoding="utf-8")
    assert crawl.main(["--queries", str(tmp_path / "q.txt"), "--output", str(tmp_path / "o"),
                       "--allow-host", "127.0.0.1:port"]) == 2
    assert "bad port" in capsys.readouterr().err
    assert crawl.main(["--url-list", str(tmp_path / "nourl.csv"), "--output", str(tmp_path / "o"),
                       "--phase", "search"]) == 2
    assert "--phase search needs --queries" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        crawl.main(["--output", str(tmp_path / "o")])  # neither --queries nor --url-list
    with pytest.raises(SystemExit):
        crawl.main(["--queries", str(tmp_path / "q.txt"), "--output", str(tmp_path / "o"), "--phase", "both"])


def test_help_explains_itself(capsys):
    with pytest.raises(SystemExit):
        crawl.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--queries", "--url-list", "--phase", "--hits", "--search-base-url", "--allow-host", "--search-rate", "--max-bytes",
                 "--no-robots", "--resize-mode", "DataflowRunner", "FlinkRunner"):
        assert flag in text


def _config(*argv):
    argv = ["--queries", "q.txt", "--output", "out", *argv]
    return crawl.config_from_args(crawl.build_parser().parse_args(argv), argv)


def test_flags_become_the_workers_config():
    config = _config("--search-rate", "2.5", "--max-results", "90", "--no-robots", "--allow-host", "127.0.0.1:8000",
                     "--allow-host", "localhost", "--resize-mode", "center_crop", "--image-size", "224",
                     "--encode-format", "webp", "--max-bytes", "1000")
    assert (config.search.requests_per_second, config.search.max_results) == (2.5, 90)
    assert config.download.respect_robots is False and config.download.max_bytes == 1000
    assert config.download.allow_hosts == ("127.0.0.1:8000", "localhost")
    resize = config.download.resize
    assert (resize.resize_mode, resize.image_size, resize.encode_format) == ("center_crop", 224, "webp")
    assert config.hits_dir == "out/hits" and _config("--hits", "elsewhere").hits_dir == "elsewhere"
    default = _config()
    assert default.download.resize is None and default.search.base_url == "https://image.baidu.com"
    assert default.search.max_results == 1000 and default.download.respect_robots


def test_search_and_download_flags_with_the_same_field_stay_apart():
    """SearchConfig and DownloadConfig both have `retries` and `backoff_s`: each flag sets its own."""
    default = _config()
    assert (default.search.retries, default.search.backoff_s) == (SearchConfig().retries, SearchConfig().backoff_s)
    assert (default.download.retries, default.download.backoff_s) == (DownloadConfig().retries,
                                                                      DownloadConfig().backoff_s)
    given = _config("--search-retries", "5", "--backoff", "0.5", "--retries", "1", "--search-backoff", "7")
    assert (given.search.retries, given.search.backoff_s) == (5, 7.0)
    assert (given.download.retries, given.download.backoff_s) == (1, 0.5)
    assert _config("--search-retr", "4").search.retries == 4  # an abbreviation as argparse reads it


def test_a_url_list_edited_in_place_gets_new_chunk_names(tmp_path):
    import os

    from pipelines.crawl_inputs import plan_url_chunks

    path = tmp_path / "list.csv"
    path.write_text("url,caption\nhttp://a.example/1.jpg,猫\n", encoding="utf-8")
    before = [c.name for c in plan_url_chunks(str(path), 10)]
    assert [c.name for c in plan_url_chunks(str(path), 10)] == before  # stable when unchanged
    path.write_text("url,caption\nhttp://b.example/2.jpg,狗\n", encoding="utf-8")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert [c.name for c in plan_url_chunks(str(path), 10)] != before


def test_retry_failed_searches_again_the_queries_that_failed(local, tmp_path, capsys):
    catalog, engine = local
    failing = catalog.queries[0]
    catalog.catalog.search_modes[failing] = "malformed"
    argv = crawl_argv(local, tmp_path)
    first = crawl.run(argv)
    assert first.totals["queries"].get("search_error") == 1
    capsys.readouterr()

    assert crawl.run(argv).crawled_chunks == 0  # a plain rerun leaves them, and says so
    assert "1 search_error queries in 1 finished chunks (add --retry-failed" in capsys.readouterr().err
    catalog.catalog.search_modes.pop(failing)  # the engine answers again
    again = crawl.run([*argv, "--retry-failed"])
    assert again.crawled_chunks == 1
    assert "search_error" not in again.totals["queries"]
    urls = [r["url"] for r in read_raw(tmp_path / "raw").to_pylist()]
    assert len(urls) == len(set(urls))
    assert {image_path(u) for u in urls} >= {e.path for e in catalog.catalog.results[failing]}
