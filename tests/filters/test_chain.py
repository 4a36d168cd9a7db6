"""The text rules chained in the paper's order: the first failing rule names the drop."""

import pytest

from filters.chain import TextFilterChain
from filters.text import TextConfig

HOT = {"高清壁纸图片大全"}


@pytest.fixture(scope="module")
def chain():
    return TextFilterChain()


@pytest.mark.parametrize("caption, reason", [
    ("000.jpg", "text_length"),                     # a file name fails rule 1 first
    ("IMG_2033.JPG", "text_length"),
    (None, "text_length"),
    ("", "text_length"),
    ("   ", "text_length"),
    ("😀🎉", "text_length"),
    (" ".join(["红色"] * 32), "text_length"),
    ("微信图片_20190101123456.jpg", "meaningless_caption"),
    ("查看源网页", "meaningless_caption"),
    ("高清壁纸图片大全", "frequent_caption"),
    ("高清壁纸图片大全  ", "frequent_caption"),      # counted in normalised form
    ("一只猫，网络赌博", "sensitive_word"),
    ("刘德华代言网络赌博", "sensitive_word"),        # masked, then dropped
    ("一只可爱的猫", None),
    ("繁體中文的標題", None),
    ("ＦＵＬＬ－ＷＩＤＴＨ：猫咪！", None),
    ("iPhone 手机壳 😀", None),
])
def test_first_failing_rule(chain, caption, reason):
    assert chain.apply(caption, HOT).reason == reason


def test_kept_captions_are_normalised_and_masked(chain):
    verdict = chain.apply("  记者李晓峰\u3000在灾区  现场报道 ", HOT)
    assert verdict.reason is None
    assert verdict.caption == "记者<人名> 在灾区 现场报道"
    assert verdict.names_masked


def test_length_bound_comes_from_the_config():
    chain = TextFilterChain(TextConfig(max_chinese_words=2))
    assert chain.apply("红色 红色", HOT).reason is None
    assert chain.apply("红色 红色 红色", HOT).reason == "text_length"
