"""The rule table in the paper's order: the first failing rule names the drop."""

import io

import pytest
from PIL import Image

from filters.contract import STAGES, DropReason
from filters.rules import RULES, Pair, RuleSet
from filters.sensitive import SensitiveWordMatcher
from filters.text import TextConfig, normalise_caption

HOT = {"高清壁纸图片大全": 11}


@pytest.fixture(scope="module")
def rules():
    return RuleSet()


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
def test_first_failing_rule(rules, caption, reason):
    assert rules.judge_caption(caption, HOT.get(normalise_caption(caption), 1)).reason == reason


def test_kept_captions_are_normalised_and_masked(rules):
    verdict = rules.judge_caption("  记者李晓峰\u3000在灾区  现场报道 ")
    assert verdict.reason is None
    assert verdict.caption == "记者<人名> 在灾区 现场报道"
    assert verdict.names_masked


def test_length_bound_comes_from_the_config():
    rules = RuleSet(text=TextConfig(max_chinese_words=2))
    assert rules.judge_caption("红色 红色").reason is None
    assert rules.judge_caption("红色 红色 红色").reason == "text_length"


def test_the_table_follows_the_contracts_stage_order():
    assert [(r.stage, r.reason) for r in RULES] == [(s.name, r) for s in STAGES for r in s.reasons]


@pytest.mark.parametrize("occurrences, reason", [(10, None), (11, "frequent_caption"), (1, None)])
def test_a_caption_seen_ten_times_is_kept_and_eleven_dropped(rules, occurrences, reason):
    assert rules.judge_caption("一只可爱的小猫", occurrences).reason == reason


def test_sensitive_words_are_looked_for_in_the_unmasked_caption():
    # The mask would cut the listed word in half: matching on the masked caption would miss it.
    rules = RuleSet(matcher=SensitiveWordMatcher(["张伟代考"]), mask=lambda t: t.replace("张伟", "<人名>"))
    verdict = rules.judge_caption("记者张伟代考四六级")
    assert verdict.reason == "sensitive_word"
    assert verdict.caption == "记者<人名>代考四六级"  # the stored caption is still masked


def _jpeg(size=(300, 300)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _pair(rules, **fields):
    values = dict(caption=rules.caption("一只可爱的小猫"), image=_jpeg(), width=300, height=300)
    values.update(fields)
    return Pair(**values)


@pytest.mark.parametrize("fields, reason", [
    ({}, None),
    ({"status": "timeout", "image": None}, "download_failed"),
    ({"image": None}, "download_failed"),
    ({"status": "timeout", "url_first": False}, "download_failed"),  # the first failing rule wins
    ({"url_first": False}, "duplicate_url"),
    ({"url_first": False, "width": 100}, "duplicate_url"),
    ({"width": 200}, "image_too_small"),
    ({"width": 901}, "aspect_ratio"),
    ({"image": b"\xff\xd8\xff\xe0" + b"\x00" * 40}, "image_corrupt"),
    ({"caption_occurrences": 11}, "frequent_caption"),
    ({"image_first": False}, None),  # image de-duplication is off by default
])
def test_pairs_fail_the_first_rule_in_table_order(rules, fields, reason):
    assert rules.judge(_pair(rules, **fields)).reason == reason


def test_image_deduplication_comes_last_when_switched_on():
    rules = RuleSet(dedup_images=True)
    assert rules.judge(_pair(rules, image_first=False)).reason == DropReason.DUPLICATE_IMAGE
    assert rules.judge(_pair(rules, image_first=False, caption_occurrences=11)).reason == "frequent_caption"


def test_the_caption_is_normalised_once_and_segmented_once():
    calls = []

    def cut(text):
        calls.append(text)
        return list(text)

    rules = RuleSet(cut=cut)
    rules.judge(_pair(rules, caption=rules.caption("  小猫\u3000在睡觉 ")))
    assert calls == ["小猫 在睡觉"]


def test_image_bounds_come_from_the_config():
    from filters.image import ImageConfig

    loose = RuleSet(image=ImageConfig(min_side=100, max_aspect_ratio=5.0))
    # 150 px sides and a 4:1 ratio fail the paper's bounds and pass these
    assert loose.judge(_pair(loose, width=150, height=150)).reason is None
    assert loose.judge(_pair(loose, width=600, height=150)).reason is None
    assert loose.judge(_pair(loose, width=100, height=150)).reason == "image_too_small"
    assert loose.judge(_pair(loose, width=760, height=150)).reason == "aspect_ratio"


def test_the_character_bound_and_the_frequency_bound_come_from_the_config():
    rules = RuleSet(text=TextConfig(max_caption_chars=10, max_occurrences=2))
    assert rules.judge_caption("一只可爱的小猫在睡觉").reason is None            # 10 characters
    assert rules.judge_caption("一只可爱的小猫在睡觉了").reason == "text_length"  # 11
    assert rules.judge_caption("一只可爱的小猫", occurrences=2).reason is None
    assert rules.judge_caption("一只可爱的小猫", occurrences=3).reason == "frequent_caption"


def test_a_caption_judged_alone_counts_as_seen_once():
    rules = RuleSet(text=TextConfig(max_occurrences=1))
    assert rules.judge_caption("一只可爱的小猫").reason is None


def test_pairs_dropped_before_the_name_rule_keep_the_caption_unmasked(rules):
    # Reject shards are internal and keep the normalised caption as the rules saw it; only pairs
    # that reach the name rule are stored masked.
    verdict = rules.judge_caption("  记者李晓峰  ", occurrences=11)
    assert (verdict.reason, verdict.caption, verdict.names_masked) == ("frequent_caption", "记者李晓峰", False)
    verdict = rules.judge_caption("记者李晓峰 " + "x" * 600)
    assert verdict.reason == "text_length" and verdict.caption.startswith("记者李晓峰 ") and not verdict.names_masked


def test_a_pair_dropped_after_masking_reports_the_mask(rules):
    verdict = rules.judge_caption("刘德华代言网络赌博")
    assert verdict.reason == "sensitive_word"
    assert verdict.caption == "<人名>代言网络赌博" and verdict.names_masked is True
    kept = rules.judge_caption("一只可爱的小猫")
    assert (kept.reason, kept.caption, kept.names_masked) == (None, "一只可爱的小猫", False)


def test_a_custom_matcher_replaces_the_default_lists():
    rules = RuleSet(matcher=SensitiveWordMatcher(["榴莲"]))
    assert rules.judge_caption("榴莲千层蛋糕").reason == "sensitive_word"
    assert rules.judge_caption("一只猫，网络赌博").reason is None  # the default list is not in use


def test_the_masker_reuses_the_tokens_of_the_caption(monkeypatch):
    # The caption is segmented once (Caption.tokens); the masker must not segment it again.
    from filters import names

    rules = RuleSet()
    caption = rules.caption("记者李晓峰在灾区现场报道")
    caption.tokens  # segmented here, before the segmenter is taken away

    class NoSecondCut:
        @staticmethod
        def cut(text, hmm=True):
            raise AssertionError(f"segmented again: {text}")

    monkeypatch.setattr(names, "rjieba", NoSecondCut)
    assert rules.mask(caption) == "记者<人名>在灾区现场报道"


def test_image_deduplication_is_off_by_default():
    assert DropReason.DUPLICATE_IMAGE not in [rule.reason for rule in RuleSet().rules]
    assert [rule.reason for rule in RuleSet(dedup_images=True).rules][-1] == DropReason.DUPLICATE_IMAGE
