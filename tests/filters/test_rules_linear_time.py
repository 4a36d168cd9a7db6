"""Every text rule runs in time linear in the caption's length, and no rule sees an unbounded
caption: hostile captions of many shapes, timed."""

import time

import pytest

from filters.rules import Pair, RuleSet
from filters.text import TextConfig, check_length, count_chinese_words, is_meaningless_caption


def _shapes(n: int) -> dict[str, str]:
    """Captions of about n characters, each a worst case of some pattern a rule uses."""
    return {
        "han then a.": "中" + "a." * (n // 2),
        "ascii run": "x" * n,
        "ascii run then han": "x" * n + "中",
        "digit run": "1" * n + "中",
        "hex run": "0123456789abcdef" * (n // 16) + "中",
        "base64 run": "A" * n + "=中",
        "url-like": "http://" + "a.b-" * (n // 4),
        "domain-like": "a-" * (n // 2) + ".",
        "urls": "www.a.com/" * (n // 10),
        "camera names": "IMG_1" * (n // 5),
        "boilerplate": "查看源网页" * (n // 5),
        "han": "猫" * n,
        "names": "刘德华" * (n // 3),
        "spaced a.": "中 " + "a. " * (n // 3),
    }


@pytest.fixture(scope="module")
def rules():
    return RuleSet()


def _seconds(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


@pytest.mark.parametrize("shape", sorted(_shapes(10)))
def test_each_rule_on_a_16k_caption_takes_well_under_a_second(rules, shape):
    text = _shapes(16_000)[shape]
    # Before: the meaningless-caption patterns took 6 to 33 s here, the name masker 15 s.
    assert _seconds(is_meaningless_caption, text) < 1
    assert _seconds(count_chinese_words, text) < 1
    assert _seconds(rules.matcher.find, text) < 1
    assert _seconds(rules._masker.find, text) < 1


@pytest.mark.e2e
@pytest.mark.parametrize("shape", sorted(_shapes(10)))
def test_each_rule_on_a_1mb_caption_takes_under_a_second(rules, shape):
    text = _shapes(1_000_000)[shape]
    # The functions alone, on a shared 2-core machine: linear, about a second per megabyte.
    assert _seconds(is_meaningless_caption, text) < 3
    assert _seconds(count_chinese_words, text) < 3
    assert _seconds(rules.matcher.find, text) < 1
    # Every rule as the filter runs it: the length rule drops the caption before segmentation,
    # so neither the segmenter nor the name masker ever sees it.
    assert _seconds(rules.judge_caption, text) < 1
    assert rules.judge_caption(text).reason == "text_length"


@pytest.mark.e2e
def test_the_name_masker_grows_linearly(rules):
    # The masker scores each surname it meets in Python; it is linear, not fast: 4x the text
    # must cost about 4x the time (quadratic would be 16x).
    small, large = "刘德华和" * 4_000, "刘德华和" * 16_000
    _seconds(rules._masker.find, small)  # warm the caches
    assert _seconds(rules._masker.find, large) < 8 * max(_seconds(rules._masker.find, small), 0.01)


@pytest.mark.parametrize("length, reason", [(512, None), (513, "text_length")])
def test_a_caption_over_512_characters_is_dropped_before_segmentation(length, reason):
    caption = ("一只猫" + "。" * length)[:length]
    calls = []

    def cut(text):
        calls.append(text)
        return ["一只", "猫"]

    rules = RuleSet(cut=cut, mask=lambda text: text)
    assert rules.judge(Pair(rules.caption(caption)), text_only=True).reason == reason
    assert bool(calls) == (reason is None)  # an over-long caption is never segmented
    assert check_length(caption, cut=cut) == reason


def test_the_caption_bound_is_a_setting():
    assert check_length("猫" * 20, TextConfig(max_caption_chars=10)) == "text_length"
    with pytest.raises(ValueError):
        TextConfig(max_caption_chars=0)
