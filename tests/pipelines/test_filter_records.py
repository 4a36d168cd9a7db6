"""Record-level rules with the corpus facts of a shard: the facts answer the rules' corpus
questions, and the reason is still the first rule of the table that fails."""

from __future__ import annotations

import pytest

from filters import contract
from filters.text import normalise_caption
from pipelines import synthetic
from pipelines.filter_records import (
    CAPTION_COUNT,
    IMAGE_WINNER,
    NOT_IN_THIS_SHARD,
    URL_WINNER,
    FilterConfig,
    RecordRules,
    ShardFacts,
)


@pytest.fixture(scope="module")
def good_record():
    pair = next(p for p in synthetic.generate_pairs(40, seed=9, size=224)
                if p.expected_reason is None and not p.has_person_name)
    return {**pair.to_raw_record(), "_shard": 3, "_row": 7}


def _facts(record, url_winner=None, caption_count=None, image_winner=None):
    facts = []
    if url_winner is not None:
        facts.append((URL_WINNER, contract.url_key(record["url"]), url_winner))
    if caption_count is not None:
        facts.append((CAPTION_COUNT, normalise_caption(record["caption_raw"]), caption_count))
    if image_winner is not None:
        facts.append((IMAGE_WINNER, record["sha256"], image_winner))
    return ShardFacts(facts)


def test_the_winning_row_is_first_and_every_other_row_is_not(good_record):
    facts = _facts(good_record, url_winner=7, image_winner=7)
    assert facts.url_first(good_record) and facts.image_first(good_record)
    later = {**good_record, "_row": 8}
    assert not facts.url_first(later) and not facts.image_first(later)
    elsewhere = _facts(good_record, url_winner=NOT_IN_THIS_SHARD, image_winner=NOT_IN_THIS_SHARD)
    assert not elsewhere.url_first(good_record) and not elsewhere.image_first(good_record)
    other_url = {**good_record, "url": "https://other.example/x.jpg", "sha256": "f" * 64}
    assert elsewhere.url_first(other_url) and elsewhere.image_first(other_url)  # no fact: first
    assert elsewhere.url_first({**good_record, "url": ""})  # no URL is never a duplicate


def test_caption_counts_apply_to_the_normalised_caption_only():
    facts = ShardFacts([(CAPTION_COUNT, "查看源网页", 40)])
    assert facts.caption_occurrences("查看源网页") == 40
    assert facts.caption_occurrences("展开全文") == 1


def test_an_unknown_fact_is_a_loud_error():
    with pytest.raises(ValueError, match="'duplicate_key' for 'u'"):
        ShardFacts([("duplicate_key", "u", 0)])


@pytest.mark.parametrize("facts, dedup_images, reason", [
    ({}, False, None),
    ({"url_winner": NOT_IN_THIS_SHARD}, False, "duplicate_url"),
    ({"url_winner": 7}, False, None),
    ({"caption_count": 10}, False, None),                  # 10 kept
    ({"caption_count": 11}, False, "frequent_caption"),    # 11 dropped
    ({"url_winner": 2, "caption_count": 50}, False, "duplicate_url"),  # the table's order
    ({"image_winner": 2}, False, None),                    # only with --dedup-images
    ({"image_winner": 2}, True, "duplicate_image"),
    ({"image_winner": 7}, True, None),
    ({"caption_count": 11, "image_winner": 2}, True, "frequent_caption"),
])
def test_facts_decide_through_the_rule_table(good_record, facts, dedup_images, reason):
    rules = RecordRules(FilterConfig(dedup_images=dedup_images))
    assert rules.check(good_record, _facts(good_record, **facts))[0] == reason


def test_rules_before_the_facts_still_come_first(good_record):
    failed = {**good_record, "status": "http_error", "image": None}
    assert RecordRules().check(failed, _facts(failed, url_winner=NOT_IN_THIS_SHARD))[0] == "download_failed"
    small = {**good_record, "width": 200}
    assert RecordRules().check(small, _facts(small, caption_count=99))[0] == "image_too_small"
