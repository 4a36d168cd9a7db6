"""Person-name masking: the contract, and precision/recall on our own caption set."""

import collections

import pytest

from filters.names import MASK, PersonNameMasker, mask_person_names
from tests.filters import name_set

CAPTIONS = name_set.load()


def test_caption_set_is_large_varied_and_half_names():
    assert len(CAPTIONS) >= 150
    domains = collections.Counter(c.domain for c in CAPTIONS)
    assert {"news", "celebrity", "sport", "product", "scenery", "decor", "food", "animal"} <= set(domains)
    with_names = sum(bool(c.spans) for c in CAPTIONS)
    assert 0.35 <= with_names / len(CAPTIONS) <= 0.65
    heldout = [c for c in CAPTIONS if c.split == "heldout"]
    assert len(heldout) >= 50 and sum(bool(c.spans) for c in heldout) >= 20


def test_caption_set_holds_the_hard_cases():
    """Names jieba's dictionary lacks, and non-names that jieba tags nr."""
    import jieba
    import jieba.posseg

    jieba.initialize()
    unknown_names = [c.text[a:b] for c in CAPTIONS for a, b in c.spans if c.text[a:b] not in jieba.dt.FREQ]
    assert len(unknown_names) >= 15
    nr_not_names = 0
    for caption in CAPTIONS:
        inside = {i for a, b in caption.spans for i in range(a, b)}
        offset = 0
        for pair in jieba.posseg.cut(caption.text):
            if pair.flag == "nr" and not set(range(offset, offset + len(pair.word))) & inside:
                nr_not_names += 1
            offset += len(pair.word)
    assert nr_not_names >= 20


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_precision_and_recall_span_by_span(split):
    part = [c for c in CAPTIONS if c.split == split]
    score = name_set.score(part, PersonNameMasker().find)
    assert score.precision >= 0.90, score
    assert score.recall >= 0.90, score


@pytest.mark.parametrize("text, expected", [
    ("记者李晓峰在灾区现场报道", "记者<人名>在灾区现场报道"),
    ("王菲和那英同台演出", "<人名>和<人名>同台演出"),
    ("泰勒·斯威夫特巡回演唱会", "<人名>巡回演唱会"),
    ("欧阳子涵展示的一个红色方块", "<人名>展示的一个红色方块"),
    ("李宁运动鞋男款", "李宁运动鞋男款"),        # a brand, not a person
    ("孙悟空大闹天宫", "孙悟空大闹天宫"),          # a fictional character
    ("明星同款墨镜", "明星同款墨镜"),              # jieba tags 明星 nr
    ("金色阳光下的汉白玉栏杆", "金色阳光下的汉白玉栏杆"),
    ("", ""),
    ("no chinese here", "no chinese here"),
])
def test_mask_person_names(text, expected):
    assert mask_person_names(text) == expected


def test_mask_is_idempotent_and_masks_every_name():
    text = "宋晓楠与韩冬梅的婚礼现场"
    once = mask_person_names(text)
    assert once == f"{MASK}与{MASK}的婚礼现场"
    assert mask_person_names(once) == once


def test_custom_lists_replace_the_packaged_ones():
    masker = PersonNameMasker(known_names=["阿凡提"], non_names=["王老师傅"])
    assert masker.mask("阿凡提的故事") == f"{MASK}的故事"
    assert masker.mask("王老师傅修车") == "王老师傅修车"
