"""Clean shards are published, so no column of theirs may hold a name the masker replaced: the
filter job on raw shards with names (after titles such as 记者/教练, and bare), then a search of
every string column of every clean shard for every such name."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from filters import contract
from filters.names import default_masker
from filters.text import normalise_caption
from pipelines import filter as filter_job
from pipelines import synthetic
from pipelines.filter_records import FilterConfig

pytestmark = pytest.mark.e2e  # runs the whole filter stage

CAPTIONS = [
    "记者李晓峰在灾区现场报道",
    "教练王建国指导队员训练",
    "主持人 何炅 在后台",
    "周杰伦演唱会现场照片",
    "王菲和那英同台演出",
    "摄影师张伟拍摄的黄山日出",
    "刘德华 电影海报 高清",
    "校长陈志明为新生颁奖",
    "一只橘猫趴在窗台上",  # no name: stays as it was
]
# A query can be a person's name as well (the Wukong query list holds celebrities).
QUERIES = ["灾区", "训练", "何炅", "周杰伦", "王菲", "黄山", "刘德华", "颁奖", "猫"]


def _names_in(text: str) -> set[str]:
    """The names the masker replaces in `text`, read off its own `find`."""
    text = normalise_caption(text)
    return {text[start:end] for start, end in default_masker().find(text)}


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy")
    good = next(p for p in synthetic.generate_pairs(60, seed=3, size=224) if p.expected_reason is None)
    records = []
    for i, (caption, query) in enumerate(zip(CAPTIONS, QUERIES)):
        record = good.to_raw_record()
        url = f"https://img.example/{i}.jpg"
        record.update(key=contract.url_key(url), url=url, caption=None, caption_raw=caption, query=query, rank=i)
        records.append(record)
    raw = root / "raw"
    contract.write_shard(str(raw / "part-00000.parquet"), records, contract.RAW_SCHEMA)
    output = str(root / "out")
    filter_job.run_filter(str(raw), output, FilterConfig(), word_cloud=False, log=lambda message: None)
    return output


def test_the_masker_finds_names_in_the_test_captions():
    names = set().union(*map(_names_in, CAPTIONS))
    # Titled and bare names alike; if the masker stops finding them the search below proves nothing.
    assert {"李晓峰", "王建国", "周杰伦", "王菲", "那英", "刘德华"} <= names


def test_no_clean_column_holds_a_masked_name(filtered):
    names = set().union(*map(_names_in, CAPTIONS + QUERIES))
    shards = contract.list_shards(os.path.join(filtered, "clean"))
    assert shards
    rows = 0
    for path in shards:
        table = contract.read_shard(path, contract.CLEAN_SCHEMA)
        assert "caption_raw" not in table.column_names
        rows += table.num_rows
        for field in table.schema:
            if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
                continue
            for value in table.column(field.name).to_pylist():
                leaked = {n for n in names if value and n in value}
                assert not leaked, (field.name, value)
    assert rows == len(CAPTIONS)  # every caption was kept, so every one was searched


def test_masked_captions_and_queries_carry_the_mask(filtered):
    clean = []
    for path in contract.list_shards(os.path.join(filtered, "clean")):
        clean += contract.read_shard(path, contract.CLEAN_SCHEMA).to_pylist()
    by_rank = {row["rank"]: row for row in clean}
    assert by_rank[0]["caption"] == "记者" + contract.NAME_MASK + "在灾区现场报道"
    assert by_rank[3]["query"] == contract.NAME_MASK
    assert by_rank[8]["caption"] == CAPTIONS[8] and by_rank[8]["query"] == "猫"  # nothing to mask


def test_internal_rejects_keep_the_caption_as_found():
    assert "caption_raw" in contract.REJECT_COLUMNS and "caption_raw" in contract.RAW_COLUMNS
