"""The download phase's pieces: hits read in order, the first by order winning, pending chunks only."""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from crawler.baidu import QueryResult, SearchHit
from filters import contract
from pipelines.beam_options import pipeline_options
from pipelines.crawl_download import HitSource, PickFirstFn, read_hits
from pipelines.crawl_hits import hit_rows, query_record, write_hit_list
from pipelines.crawl_inputs import plan_query_chunks, plan_url_chunks


def test_the_first_hit_by_order_wins_and_the_others_count_as_duplicates():
    def hit(chunk, order):
        return {"chunk": chunk, "order": order, "url": "u"}

    groups = [
        ("a", [hit("c2", (0, 2, 0, 5)), hit("c1", (0, 1, 3, 9)), hit("c1", (0, 1, 3, 2))]),  # c1's rank 2
        ("b", [hit("c0", (5, 0, 0, 0)), hit("c4", (0, 4, 0, 0))]),  # a later round loses to any earlier one
        ("c", [hit("c3", (0, 3, 0, 0))]),
    ]
    with BeamTestPipeline(options=pipeline_options([])) as p:  # in-process, as the crawl runs
        out = p | beam.Create(groups) | beam.ParDo(PickFirstFn())
        assert_that(out, equal_to([
            ("c1", ("hit", hit("c1", (0, 1, 3, 2)))), ("c2", ("dup", 1)), ("c1", ("dup", 1)),
            ("c4", ("hit", hit("c4", (0, 4, 0, 0)))), ("c0", ("dup", 1)),
            ("c3", ("hit", hit("c3", (0, 3, 0, 0)))),
        ]))
    duplicates = p.result.metrics().query()["counters"]
    assert sum(c.committed for c in duplicates if c.key.metric.name == "duplicates") == 3


def test_query_hits_are_keyed_by_url_identity_in_round_chunk_position_rank_order(tmp_path):
    [_, chunk] = plan_query_chunks(["猫", "狗", "鸟", "鱼"], 2)
    results = [QueryResult(q, "ok", (SearchHit(f"http://x/{q}.jpg", q, 0, 0, "", q, 0),
                                     SearchHit("HTTP://X/same.jpg#top", q, 0, 0, "", q, 1)), 1)
               for q in chunk.queries]
    rows = [row for position, r in enumerate(results) for row in hit_rows(r, position, 3)]
    path = str(tmp_path / (chunk.name + ".parquet"))
    write_hit_list(path, rows, [query_record(r, i) for i, r in enumerate(results)])
    read = list(read_hits(HitSource(chunk, path)))
    assert [(h["query"], h["rank"], h["order"]) for _, h in read] == [
        ("鸟", 0, (3, 1, 0, 0)), ("鸟", 1, (3, 1, 0, 1)), ("鱼", 0, (3, 1, 1, 0)), ("鱼", 1, (3, 1, 1, 1))]
    assert read[1][0] == read[3][0] == contract.url_key("http://x/same.jpg")
    assert {h["chunk"] for _, h in read} == {chunk.name}


def test_url_list_rows_are_hits_ranked_by_their_row(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("url,caption\nhttp://a/1.jpg,猫\nhttp://a/2.jpg,狗\nhttp://a/3.jpg,\n", encoding="utf-8")
    [first, second] = plan_url_chunks(str(path), 2)
    read = [h for _, h in read_hits(HitSource(first))] + [h for _, h in read_hits(HitSource(second))]
    assert [(h["url"], h["caption_raw"], h["rank"], h["query"], h["order"]) for h in read] == [
        ("http://a/1.jpg", "猫", 0, "", (0, 0, 0, 0)), ("http://a/2.jpg", "狗", 1, "", (0, 0, 1, 1)),
        ("http://a/3.jpg", "", 2, "", (0, 1, 2, 2))]
