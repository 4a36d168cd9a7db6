import pytest

from crawler.errors import QueryFileError
from crawler.queries import (
    DEFAULT_QUERY_COUNT,
    EXCLUDED_POS,
    DictEntry,
    default_queries,
    is_image_query,
    main,
    parse_dictionary,
    rank_queries,
    read_queries,
)
from filters.contract.urls import normalise_url

DICT = """\
的 318825 uj
风景 9000 n
猫 8000 n
是 7000 v
我们 6000 r
刘德华 5000 nr
三个 4000 m
美丽 3000 a
山水 3000 n
山川 3000 n
iPhone 2900 eng
杭州 2800 ns
很 2700 d
上面 2600 f
broken line
"""


def test_rank_queries_applies_the_pos_rules_frequency_order_and_code_point_ties():
    ranked = rank_queries(parse_dictionary(DICT.splitlines()), size=100)
    # 的/我们/刘德华/三个/很/上面: excluded POS; 是: a single-character verb; iPhone: not Han
    assert ranked == ["风景", "猫", "山川", "山水", "美丽", "杭州"]
    assert "山川" < "山水"  # the tie at 3000 is broken by code points
    assert rank_queries(parse_dictionary(DICT.splitlines()), size=2) == ["风景", "猫"]


def test_is_image_query_single_characters_only_as_nouns():
    assert is_image_query(DictEntry("山", 10, "n")) and is_image_query(DictEntry("春", 10, "t"))
    assert not is_image_query(DictEntry("大", 10, "a")) and not is_image_query(DictEntry("有", 10, "v"))
    assert not is_image_query(DictEntry("三", 10, "m")) and not is_image_query(DictEntry("，", 10, "x"))


@pytest.mark.e2e
def test_default_list_is_deterministic_and_has_the_papers_size_without_excluded_words():
    import jieba

    queries = default_queries()
    assert len(queries) == DEFAULT_QUERY_COUNT == 200_000
    assert len(set(queries)) == len(queries)
    assert queries[:3] == default_queries(3)
    pos = {}
    with jieba.get_dict_file() as handle:
        for raw in handle:
            word, _, tag = raw.decode("utf-8").split()
            pos[word] = tag
    assert not [q for q in queries if pos[q] in EXCLUDED_POS]
    assert "中国" in queries[:10] and "的" not in queries and "我们" not in queries


def test_read_queries_skips_blank_lines_bom_and_repeats_and_collapses_spaces():
    data = "\ufeff风景\n\n  猫  \r\n风景\n红色  汽车\n   \n".encode("utf-8")
    assert read_queries(data) == ["风景", "猫", "红色 汽车"]
    assert read_queries(b"") == []


def test_non_utf8_query_file_is_a_clear_error_naming_the_line():
    data = "风景\n猫\n".encode("utf-8") + "汽车\n".encode("gbk")
    with pytest.raises(QueryFileError, match=r"q\.txt: not UTF-8 text \(line 3"):
        read_queries(data, source="q.txt")


@pytest.mark.e2e
def test_cli_writes_the_list(tmp_path):
    out = tmp_path / "queries.txt"
    assert main(["--output", str(out), "--size", "50"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines == default_queries(50)


def test_normalise_url():
    assert normalise_url(" HTTP://Example.COM:80/a/B.jpg?x=1#frag ") == "http://example.com/a/B.jpg?x=1"
    assert normalise_url("https://example.com") == "https://example.com/"
    assert normalise_url("https://example.com:8443/a") == "https://example.com:8443/a"
    assert normalise_url("not a url") == "not a url"
