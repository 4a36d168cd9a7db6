"""Record-level rules with the corpus facts of a row: the facts answer the rules' corpus questions,
and the reason is still the first rule of the table that fails."""

from __future__ import annotations

import pytest

from pipelines import synthetic
from pipelines.filter_records import (
    CAPTION_COUNT,
    IMAGE_NOT_FIRST,
    URL_NOT_FIRST,
    FilterConfig,
    RecordRules,
    RowFacts,
    ShardFacts,
)


@pytest.fixture(scope="module")
def good_record():
    pair = next(p for p in synthetic.generate_pairs(40, seed=9, size=224)
                if p.expected_reason is None and not p.has_person_name)
    return {**pair.to_raw_record(), "_shard": 3, "_row": 7}


def test_shard_facts_give_each_row_its_own_and_defaults_to_the_rest():
    facts = ShardFacts([(2, URL_NOT_FIRST, 0), (5, CAPTION_COUNT, 14), (5, IMAGE_NOT_FIRST, 0), (9, CAPTION_COUNT, 11)])
    assert facts.of(2) == RowFacts(url_first=False)
    assert facts.of(5) == RowFacts(caption_occurrences=14, image_first=False)
    assert facts.of(9) == RowFacts(caption_occurrences=11)
    assert facts.of(0) == RowFacts() == RowFacts(url_first=True, caption_occurrences=1, image_first=True)


def test_an_unknown_fact_is_a_loud_error():
    with pytest.raises(ValueError, match="'duplicate_key' for row 4"):
        ShardFacts([(4, "duplicate_key", 0)])


@pytest.mark.parametrize("facts, dedup_images, reason", [
    (RowFacts(), False, None),
    (RowFacts(url_first=False), False, "duplicate_url"),
    (RowFacts(caption_occurrences=10), False, None),              # 10 kept
    (RowFacts(caption_occurrences=11), False, "frequent_caption"),  # 11 dropped
    (RowFacts(url_first=False, caption_occurrences=50), False, "duplicate_url"),  # the table's order
    (RowFacts(image_first=False), False, None),                   # only with --dedup-images
    (RowFacts(image_first=False), True, "duplicate_image"),
    (RowFacts(caption_occurrences=11, image_first=False), True, "frequent_caption"),
])
def test_facts_decide_through_the_rule_table(good_record, facts, dedup_images, reason):
    rules = RecordRules(FilterConfig(dedup_images=dedup_images))
    assert rules.check(good_record, facts)[0] == reason


def test_rules_before_the_facts_still_come_first(good_record):
    failed = {**good_record, "status": "http_error", "image": None}
    assert RecordRules().check(failed, RowFacts(url_first=False))[0] == "download_failed"
    small = {**good_record, "width": 200}
    assert RecordRules().check(small, RowFacts(caption_occurrences=99))[0] == "image_too_small"
