import asyncio
import json
import pathlib
import time

import aiohttp
import pytest

from crawler.baidu import (
    QUERY_BLOCKED,
    QUERY_ERROR,
    QUERY_NO_RESULTS,
    QUERY_OK,
    SearchClient,
    SearchConfig,
    SearchHit,
    decode_objurl,
    encode_objurl,
    parse_acjson,
    search_many_sync,
)
from crawler.errors import SearchBlocked, SearchResponseError
from crawler.local_engine import Catalog
from crawler.ratelimit import RateLimiter
from tests.support.images import entry

SAMPLE = pathlib.Path(__file__).parent / "data" / "baidu_acjson_sample.json"


def test_decode_objurl_reverses_the_cipher_of_the_sample():
    page = json.loads(SAMPLE.read_text(encoding="utf-8"))
    first = page["data"][0]
    assert decode_objurl(first["objURL"]) == "https://img.example-travel.cn/upload/2021/05/xihu_sunset.jpg"
    assert decode_objurl(first["objURL"]) == first["replaceUrl"][0]["ObjURL"]
    assert decode_objurl(first["fromURL"]) == "https://www.example-travel.cn/news/2021/0512.html"
    assert decode_objurl(page["data"][1]["objURL"]) == "http://pic.example-home.com/fangzi/1203/keting01.png"


def test_decode_objurl_leaves_plain_urls_alone_and_encode_round_trips():
    assert decode_objurl("https://a.example/x.jpg") == "https://a.example/x.jpg"
    url = "http://127.0.0.1:8123/img/000123.jpg?w=500&h=333"
    assert encode_objurl(url) != url
    assert decode_objurl(encode_objurl(url)) == url


def test_parse_acjson_reads_the_sample_and_skips_the_trailing_empty_object():
    hits = parse_acjson(SAMPLE.read_bytes())
    assert hits == [
        SearchHit(url="https://img.example-travel.cn/upload/2021/05/xihu_sunset.jpg",
                  caption="杭州西湖日落美景", width=1024, height=683,
                  page_url="https://www.example-travel.cn/news/2021/0512.html", query="风景", rank=0),
        SearchHit(url="http://pic.example-home.com/fangzi/1203/keting01.png",
                  caption="北欧风格客厅装修效果图", width=800, height=600,
                  page_url="http://www.example-home.com/case/1203.shtml", query="风景", rank=1),
    ]


def test_parse_acjson_tolerates_invalid_escapes():
    body = SAMPLE.read_text(encoding="utf-8").replace('"bdSearchTime": ""', '"bdSearchTime": "it\\\'s \\\\\' ok"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert len(parse_acjson(body)) == 2


def test_parse_acjson_ranks_from_start_and_takes_the_given_query():
    hits = parse_acjson(SAMPLE.read_bytes(), query="西湖", start_rank=30)
    assert [(h.query, h.rank) for h in hits] == [("西湖", 30), ("西湖", 31)]


def test_caption_falls_back_to_page_title_without_tags_and_entities():
    body = json.dumps({"data": [{"objURL": "https://x.example/a.jpg", "fromPageTitleEnc": "",
                                 "fromPageTitle": "杭州<strong>西湖</strong>&amp;  日落\n美景"}, {}]})
    assert parse_acjson(body)[0].caption == "杭州西湖& 日落 美景"


def test_url_falls_back_to_replace_url_then_middle_then_thumb():
    entries = [
        {"objURL": "", "replaceUrl": [{"ObjURL": "https://r.example/1.jpg"}], "middleURL": "https://m.example/1.jpg"},
        {"middleURL": "https://m.example/2.jpg", "thumbURL": "https://t.example/2.jpg"},
        {"thumbURL": "https://t.example/3.jpg"},
        {"objURL": "garbage-without-scheme"},  # no usable URL at all: skipped
    ]
    hits = parse_acjson(json.dumps({"data": entries}))
    assert [h.url for h in hits] == ["https://r.example/1.jpg", "https://m.example/2.jpg", "https://t.example/3.jpg"]
    assert [h.page_url for h in hits] == ["", "", ""]


@pytest.mark.parametrize("body", ['{"antiFlag":1,"message":"Forbid spider access"}',
                                  b'{"antiFlag": "1", "message": "Forbid spider access"}',
                                  "<html><title>百度安全验证</title></html>"])
def test_anti_spider_answers_raise_search_blocked(body):
    with pytest.raises(SearchBlocked):
        parse_acjson(body)


@pytest.mark.parametrize("body, words", [("<!DOCTYPE html><html><body>百度图片</body></html>", "not JSON"),
                                         ('{"data": [{"objURL": "ippr', "malformed JSON"),
                                         ('[1, 2]', "not an object"),
                                         ('{"data": {"a": 1}}', "not a list")])
def test_bodies_that_are_not_result_pages_raise_search_response_error(body, words):
    with pytest.raises(SearchResponseError, match=words):
        parse_acjson(body)


def test_empty_data_is_no_hits():
    assert parse_acjson('{"data": [{}]}') == []
    assert parse_acjson('{"listNum": 0}') == []


def test_antiflag_zero_is_not_blocked_and_a_byte_order_mark_is_tolerated():
    assert parse_acjson('{"antiFlag": "0", "data": []}') == []
    assert parse_acjson('{"antiFlag": 0, "data": [{}]}') == []
    with pytest.raises(SearchBlocked):
        parse_acjson('{"antiFlag": "1", "message": "Forbid spider access"}')
    body = SAMPLE.read_bytes()
    assert parse_acjson(b"\xef\xbb\xbf" + body) == parse_acjson(body)
    assert parse_acjson("\ufeff" + body.decode("utf-8")) == parse_acjson(body)


def test_a_lone_surrogate_escape_does_not_reach_the_shard(tmp_path):
    from filters import contract

    page = json.loads(SAMPLE.read_text(encoding="utf-8"))
    body = json.dumps(page, ensure_ascii=True).replace("\\u5317\\u6b27", "\\u5317\\ud83d\\u6b27")
    hits = parse_acjson(body)
    assert hits[1].caption.startswith("北?欧")
    hits[1].caption.encode("utf-8")  # would raise UnicodeEncodeError with the surrogate kept
    record = {"key": "k", "url": hits[1].url, "caption": hits[1].caption, "status": "success"}
    contract.write_shard(str(tmp_path / "x.parquet"), [record], contract.RAW_SCHEMA)


def _config(engine, **kw):
    return SearchConfig(base_url=engine.base_url, requests_per_second=0, backoff_s=0.01, backoff_max_s=0.05,
                        timeout_s=5, **kw)


def test_client_pages_by_pn_and_stops_when_a_page_brings_nothing_new(serve):
    engine = serve(Catalog({"风景": [entry(f"{i}.jpg") for i in range(70)]}))
    [result] = search_many_sync(["风景"], _config(engine))
    assert result.status == QUERY_OK
    assert [h.rank for h in result.hits] == list(range(70))
    assert len({h.url for h in result.hits}) == 70
    assert result.hits[5].url == f"{engine.base_url}/img/5.jpg"
    assert result.hits[5].page_url == f"{engine.base_url}/page/5.html"
    assert result.pages == 4  # 30 + 30 + 10, then an empty page ends the query
    assert engine.search_requests["风景"] == 4


def test_client_keeps_at_most_max_results(serve):
    engine = serve(Catalog({"风景": [entry(f"{i}.jpg") for i in range(70)]}))
    [result] = search_many_sync(["风景"], _config(engine, max_results=40))
    assert len(result.hits) == 40 and result.pages == 2


def test_client_sends_browser_headers_project_token_and_warm_up_cookie(serve):
    engine = serve(Catalog({"猫": [entry("1.jpg")]}))
    search_many_sync(["猫"], _config(engine))
    headers = engine.search_headers[0]
    assert headers["Accept-Language"].startswith("zh-CN")
    assert headers["Referer"] == engine.base_url + "/"
    assert "Mozilla/5.0" in headers["User-Agent"] and "wukong-pipeline" in headers["User-Agent"]
    assert "BAIDUID=" in headers["Cookie"]


def test_blocked_query_is_retried_a_bounded_number_of_times_then_recorded_blocked(serve):
    engine = serve(Catalog({"狗": [entry("1.jpg")], "猫": [entry("2.jpg")]}, search_modes={"狗": "blocked"}))
    results = search_many_sync(["狗", "猫"], _config(engine, retries=2))
    assert results[0].status == QUERY_BLOCKED and results[0].hits == ()
    assert "Forbid spider access" in results[0].error_message
    assert engine.search_requests["狗"] == 3
    assert results[1].status == QUERY_OK


def test_temporarily_blocked_query_succeeds_after_backoff(serve):
    engine = serve(Catalog({"鱼": [entry("1.jpg")]}, search_modes={"鱼": "blocked_first"}, blocked_first=2))
    [result] = search_many_sync(["鱼"], _config(engine, retries=2))
    assert result.status == QUERY_OK and len(result.hits) == 1


def test_captcha_redirect_is_blocked_html_and_malformed_are_errors_empty_is_no_results(serve):
    engine = serve(Catalog({"空": []}, search_modes={"鸟": "captcha_redirect", "h": "html", "m": "malformed"}))
    results = {r.query: r for r in search_many_sync(["鸟", "h", "m", "空"], _config(engine, retries=0))}
    assert results["鸟"].status == QUERY_BLOCKED and "wappass" in results["鸟"].error_message
    assert results["h"].status == QUERY_ERROR and "not JSON" in results["h"].error_message
    assert results["m"].status == QUERY_ERROR and "malformed" in results["m"].error_message
    assert results["空"].status == QUERY_NO_RESULTS


def test_rate_limit_spaces_page_requests(serve):
    engine = serve(Catalog({"风景": [entry(f"{i}.jpg") for i in range(5)]}))
    config = SearchConfig(base_url=engine.base_url, requests_per_second=20, page_size=1, warm_up=False)
    started = time.monotonic()
    [result] = search_many_sync(["风景"], config)
    assert result.pages == 6  # five pages of one, then an empty one
    assert time.monotonic() - started >= 5 / 20


def test_rate_limiter_is_shared_by_concurrent_callers():
    async def run():
        limiter = RateLimiter(50)
        started = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(11)))
        return time.monotonic() - started

    assert asyncio.run(run()) >= 10 / 50 * 0.95


@pytest.mark.parametrize("kw", [{"base_url": "ftp://x"}, {"max_results": 0}, {"page_size": 0},
                                {"requests_per_second": -1}, {"retries": -1}, {"timeout_s": 0}])
def test_search_config_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        SearchConfig(**kw)


def test_client_in_a_session_of_its_own(serve):
    """The client works with a session its caller owns (as the Beam DoFn does)."""
    engine = serve(Catalog({"猫": [entry("1.jpg")]}))

    async def run():
        async with aiohttp.ClientSession() as session:
            return await SearchClient(session, _config(engine)).search("猫")

    assert asyncio.run(run()).hits[0].url.endswith("/img/1.jpg")


# --------------------------------------------------------------------------------------------
# Hostile answers: bounded parsing, a search_error for the query alone
# --------------------------------------------------------------------------------------------

HOSTILE_BODIES = {
    "float out of range": '{"data":[{"objURL":"http://a.example/1.jpg","width":1e400,"height":2}]}',
    "huge integer": '{"data":[{"objURL":"http://a.example/1.jpg","width":' + "9" * 5000 + '}]}',
    "nan": '{"data":[{"objURL":"http://a.example/1.jpg","width":NaN}]}',
    "deep array": '{"data":' + "[" * 200_000 + "]" * 200_000 + "}",
    "deep object": '{"data":[' + '{"a":' * 200_000 + "1" + "}" * 200_000 + "]}",
    "data a string": '{"data":"x"}',
    "list of numbers": "[1,2,3]",
    "unclosed": '{"data":[{"objURL":',
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_hostile_bodies_raise_search_response_error(name):
    with pytest.raises(SearchResponseError):
        parse_acjson(HOSTILE_BODIES[name])


def test_a_huge_body_is_refused_before_it_is_parsed():
    body = '{"data":[' + ",".join(['{"objURL":"http://a.example/1.jpg"}'] * 300_000) + "]}"
    with pytest.raises(SearchResponseError, match="larger"):
        parse_acjson(body)


def test_claimed_sizes_out_of_range_or_of_wrong_types_become_zero():
    body = json.dumps({"data": [{"objURL": "http://a.example/1.jpg", "width": 10**30, "height": "12"},
                                {"objURL": "http://a.example/2.jpg", "width": [1], "height": {"a": 1}},
                                {"objURL": "http://a.example/3.jpg", "width": -5, "height": 1e300}]})
    assert [(h.width, h.height) for h in parse_acjson(body)] == [(0, 12), (0, 0), (0, 0)]


def test_each_hostile_answer_is_a_search_error_of_its_own_query(serve):
    raw = {f"q{i}": body for i, body in enumerate(HOSTILE_BODIES.values())}
    engine = serve(Catalog({"猫": [entry("a.jpg")]}, search_modes={q: "raw" for q in raw}, raw_bodies=raw))
    results = {r.query: r for r in search_many_sync([*raw, "猫"], _config(engine, retries=0))}
    for query in raw:
        assert results[query].status == QUERY_ERROR, query
        assert len(results[query].error_message) <= 500
    assert results["猫"].status == "ok" and len(results["猫"].hits) == 1


def test_a_stalled_engine_costs_at_most_the_query_timeout(serve):
    engine = serve(Catalog({"猫": [entry("a.jpg")]}, search_modes={"慢": "stall"}, stall_s=30))
    started = time.monotonic()
    config = SearchConfig(base_url=engine.base_url, requests_per_second=0, timeout_s=0.3, retries=5,
                          backoff_s=0.2, backoff_max_s=0.2, query_timeout_s=1.0, warm_up=False)
    results = search_many_sync(["慢", "猫"], config)
    assert time.monotonic() - started < 5
    assert results[0].status == QUERY_ERROR and "more than 1.0 s" in results[0].error_message
    assert results[1].status == "ok"


def test_the_search_timeouts_are_flags():
    import argparse

    from filters.contract.flags import add_flags, config_values

    parser = argparse.ArgumentParser()
    add_flags(parser, SearchConfig)
    args = parser.parse_args(["--search-timeout", "3", "--search-query-timeout", "7"])
    values = config_values(args, SearchConfig)
    assert (values["timeout_s"], values["query_timeout_s"]) == (3.0, 7.0)
