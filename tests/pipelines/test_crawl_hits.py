"""Hit lists: one atomic file per chunk with its hits and query records, and the merge of a retry."""

import pytest

from crawler.baidu import QueryResult, SearchHit
from pipelines.crawl_hits import (
    HitListError,
    hit_order,
    hit_rows,
    merge_retry,
    query_record,
    read_hit_list,
    read_query_records,
    write_hit_list,
)


def _result(query, status, urls, pages=1, error=None):
    hits = tuple(SearchHit(url=u, caption=f"{query} {i}", width=300 + i, height=200, page_url=f"http://p/{i}",
                           query=query, rank=i) for i, u in enumerate(urls))
    return QueryResult(query, status, hits, pages, error)


def _chunk():
    results = [_result("猫", "ok", ["http://a/1.jpg", " http://a/2.jpg "]),
               _result("狗", "blocked", ["http://a/3.jpg"], error="blocked at pn=30"),
               _result("鸟", "no_results", [])]
    rows = [row for position, r in enumerate(results) for row in hit_rows(r, position, 0)]
    return rows, [query_record(r, position) for position, r in enumerate(results)]


def test_a_hit_list_keeps_hits_and_query_records_together(tmp_path):
    rows, queries = _chunk()
    path = str(tmp_path / "hits" / "part-00000-abc.parquet")
    write_hit_list(path, rows, queries)
    assert [p.name for p in (tmp_path / "hits").iterdir()] == ["part-00000-abc.parquet"]  # no temporary left
    read_rows, read_queries = read_hit_list(path)
    assert read_rows == rows
    assert read_queries == read_query_records(path) == queries
    assert [q["status"] for q in queries] == ["ok", "blocked", "no_results"]
    assert rows[1]["url"] == "http://a/2.jpg"  # stripped
    assert (rows[0]["width"], rows[0]["height"], rows[0]["page_url"]) == (300, 200, "http://p/0")  # the engine's claim


def test_unreadable_hit_lists_are_errors_that_name_the_file(tmp_path):
    broken = tmp_path / "part-00001-x.parquet"
    broken.write_bytes(b"PAR1 half a file")
    with pytest.raises(HitListError, match="part-00001-x.parquet"):
        read_hit_list(str(broken))
    with pytest.raises(HitListError, match="part-00002-y.parquet"):
        read_query_records(str(tmp_path / "part-00002-y.parquet"))


def test_a_retry_keeps_earlier_hits_and_adds_the_new_ones_in_a_later_round():
    rows, queries = _chunk()
    again = _result("狗", "ok", ["http://a/3.jpg", "http://a/4.jpg", "HTTP://A/4.jpg#x"], pages=2)
    merged_rows, merged_queries = merge_retry(rows, queries, {1: again}, round_=7)
    dog = [(r["url"], r["rank"], r["round"]) for r in merged_rows if r["position"] == 1]
    # the URL found before keeps its round; a URL that normalises like a known one is not added twice
    assert dog == [("http://a/3.jpg", 0, 0), ("http://a/4.jpg", 1, 7)]
    assert merged_queries[1] == {"position": 1, "query": "狗", "status": "ok", "hits": 2, "pages": 2,
                                 "error_message": None}
    assert merged_queries[0] == queries[0] and merged_queries[2] == queries[2]
    assert [r for r in merged_rows if r["position"] != 1] == [r for r in rows if r["position"] != 1]
    # blocked again, with nothing new: the list is unchanged apart from the record
    still, still_queries = merge_retry(rows, queries, {1: _result("狗", "blocked", [])}, round_=8)
    assert still == rows and still_queries[1]["status"] == "blocked" and still_queries[1]["hits"] == 1


def test_a_later_round_comes_after_every_earlier_hit():
    assert hit_order(0, 9, 99, 999) < hit_order(1, 0, 0, 0)
    assert hit_order(0, 1, 0, 5) < hit_order(0, 1, 1, 0) < hit_order(0, 2, 0, 0)
