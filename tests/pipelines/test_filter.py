"""The filter stage on Beam: the per-shard DoFn in a TestPipeline (outputs and counters), the whole
job on synthetic shards (every pair gets the generator's expected reason), both runners, resume
after a kill, bad inputs, and readers other than pyarrow."""

from __future__ import annotations

import collections
import glob
import hashlib
import json
import os

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from filters import contract
from filters.contract import NAME_MASK
from filters.text import is_frequent, normalise_caption
from pipelines import filter as filter_job
from pipelines import synthetic
from pipelines.beam_options import pipeline_options
from pipelines.filter_records import (
    CAPTION_COUNT,
    NOT_IN_THIS_SHARD,
    URL_WINNER,
    FilterConfig,
    RecordRules,
    ShardFacts,
    caption_as_found,
)
from pipelines.stats import find_cjk_font
from tests.support.corpus import duplicated_corpus, write_corpus

pytestmark = pytest.mark.e2e  # runs whole stages (Beam pipelines, servers, subprocesses)

QUIET = dict(log=lambda message: None)


def _pairs(n=240, seed=11):
    return synthetic.generate_pairs(n, seed=seed, size=224)


def _expected(pairs, dedup_images):
    """rank -> the drop reason docs/design.md's rules give (None: kept)."""
    expected = {}
    for p in pairs:
        reason = p.expected_reason
        if reason == "duplicate_image" and not dedup_images:
            reason = None
        expected[p.index] = reason
    return expected


def _read_dir(directory, kind):
    rows = []
    for path in contract.list_shards(directory):
        rows += contract.read_shard(path, contract.SCHEMAS[kind]).to_pylist()
    return rows


def _outcomes(output):
    """rank -> drop reason or None, from the output shards; no rank may appear twice."""
    outcomes = {}
    for row in _read_dir(os.path.join(output, "clean"), "clean"):
        assert row["rank"] not in outcomes
        outcomes[row["rank"]] = None
    for row in _read_dir(os.path.join(output, "rejects"), "reject"):
        assert row["rank"] not in outcomes
        outcomes[row["rank"]] = row["drop_reason"]
    return outcomes


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("raw"))
    synthetic.write_raw_shards(_pairs(), directory, rows_per_shard=80)
    return directory


@pytest.fixture(scope="module")
def default_run(raw_dir, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("filtered"))
    funnel = filter_job.run_filter(raw_dir, output, FilterConfig(), **QUIET)
    return output, funnel


# --------------------------------------------------------------------------------------------
# The generic DoFn in a TestPipeline
# --------------------------------------------------------------------------------------------


def test_filter_shard_outputs_and_counters(tmp_path):
    pairs = _pairs(160, seed=4)
    raw = str(tmp_path / "raw" / contract.shard_name(0))
    contract.write_shard(raw, [p.to_raw_record() for p in pairs], contract.RAW_SCHEMA)
    first_by_url, occurrences = {}, collections.Counter()
    for p in pairs:
        if p.status == contract.DownloadStatus.SUCCESS:
            first_by_url.setdefault(contract.url_key(p.url), p.index)
            occurrences[contract.url_key(p.url)] += 1
    facts = [(URL_WINNER, url, row) for url, row in first_by_url.items() if occurrences[url] > 1]
    facts.append((CAPTION_COUNT, synthetic.FREQUENT_CAPTION, synthetic.FREQUENT_TIMES))
    expected = _expected(pairs, dedup_images=False)
    output = str(tmp_path / "out")
    names = [contract.shard_name(0)]

    pipeline = BeamTestPipeline(options=pipeline_options([]))
    written = (pipeline
               | "Shards" >> beam.Create([(0, raw, facts)])
               | beam.ParDo(filter_job.FilterShard(FilterConfig(), output, batch_rows=16)))
    assert_that(written, equal_to([0]))
    result = pipeline.run()
    result.wait_until_finish()

    clean = contract.read_shard(os.path.join(output, "clean", names[0]), contract.CLEAN_SCHEMA).to_pylist()
    rejects = contract.read_shard(os.path.join(output, "rejects", names[0]), contract.REJECT_SCHEMA).to_pylist()
    assert [r["rank"] for r in clean] == [i for i, r in expected.items() if r is None]  # input order
    assert [(r["rank"], r["drop_reason"]) for r in rejects] == [(i, r) for i, r in expected.items() if r is not None]
    assert "image" not in contract.REJECT_SCHEMA.names and all(r["image"] for r in clean)
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace("filters"))["counters"]}
    want = collections.Counter("kept" if r is None else r for r in expected.values())
    assert counters == dict(want)


def test_a_failing_shard_leaves_no_output_under_a_final_name(tmp_path, monkeypatch):
    pairs = _pairs(60, seed=5)
    raw = str(tmp_path / "raw" / contract.shard_name(0))
    contract.write_shard(raw, [p.to_raw_record() for p in pairs], contract.RAW_SCHEMA)
    fn = filter_job.FilterShard(FilterConfig(), str(tmp_path / "out"), batch_rows=4)
    fn.setup()
    real_check = fn._rules.check
    seen = []

    def failing_check(record, *args):
        seen.append(record)
        if len(seen) == 40:
            raise RuntimeError("worker lost")
        return real_check(record, *args)

    monkeypatch.setattr(fn._rules, "check", failing_check)
    with pytest.raises(RuntimeError, match="worker lost"):
        list(fn.process((0, raw, [])))
    for kind in ("clean", "rejects"):
        assert os.listdir(tmp_path / "out" / kind) == []  # the temporaries were removed, no final name


# --------------------------------------------------------------------------------------------
# The whole job
# --------------------------------------------------------------------------------------------


def test_every_pair_gets_the_expected_reason(default_run):
    output, funnel = default_run
    pairs = _pairs()
    assert _outcomes(output) == _expected(pairs, dedup_images=False)
    # Kept captions are normalised and their names masked; the text as found is not published.
    clean = {row["rank"]: row for row in _read_dir(os.path.join(output, "clean"), "clean")}
    named = [p for p in pairs if p.has_person_name and p.expected_reason is None]
    assert named
    for p in named:
        assert clean[p.index]["caption"].startswith(NAME_MASK), clean[p.index]["caption"]
        assert "caption_raw" not in clean[p.index]
    for p in pairs:
        if p.index in clean and not p.has_person_name:
            assert clean[p.index]["caption"] == normalise_caption(p.caption)
            assert clean[p.index]["image"] == p.image


def test_funnel_adds_up_and_is_written(default_run):
    output, funnel = default_run
    contract.validate_funnel(funnel)
    with open(os.path.join(output, "funnel.json"), encoding="utf-8") as handle:
        assert json.load(handle) == funnel
    expected = collections.Counter(r for r in _expected(_pairs(), False).values())
    dropped = {reason: n for stage in funnel["stages"] for reason, n in stage["dropped"].items()}
    assert dropped == {r: n for r, n in expected.items() if r is not None}
    assert funnel["input"] == len(_pairs()) and funnel["output"] == expected[None]
    assert [s["stage"] for s in funnel["stages"]][:3] == ["download", "url_dedup", "image_size"]


def test_stats_and_word_cloud(default_run):
    output, funnel = default_run
    with open(os.path.join(output, "stats.json"), encoding="utf-8") as handle:
        stats = json.load(handle)
    assert stats["pairs"] == funnel["output"]
    assert stats["unique_tokens"] > 20
    per_caption = stats["tokens_per_caption"]
    assert 3 < per_caption["mean"] < 20 and per_caption["std"] > 0 and per_caption["median"] >= 1
    assert stats["captions_with_masked_names"] == sum(
        p.has_person_name and p.expected_reason is None for p in _pairs())
    if find_cjk_font():
        assert os.path.getsize(os.path.join(output, "wordcloud.png")) > 1000


def test_image_dedup_is_optional_and_has_its_own_reason(raw_dir, tmp_path):
    output = str(tmp_path / "out")
    funnel = filter_job.run_filter(raw_dir, output, FilterConfig(dedup_images=True), word_cloud=False, **QUIET)
    assert _outcomes(output) == _expected(_pairs(), dedup_images=True)
    assert funnel["stages"][-1]["stage"] == "image_dedup"
    assert funnel["stages"][-1]["dropped"]["duplicate_image"] > 0


def test_portable_runner_gives_identical_outputs(raw_dir, default_run, tmp_path):
    reference, reference_funnel = default_run
    output = str(tmp_path / "portable")
    funnel = filter_job.run_filter(
        raw_dir, output, FilterConfig(),
        ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"],
        word_cloud=False, **QUIET)
    assert funnel == reference_funnel
    for kind in ("clean", "rejects"):
        ours, theirs = sorted(glob.glob(f"{output}/{kind}/*.parquet")), sorted(glob.glob(f"{reference}/{kind}/*.parquet"))
        assert [os.path.basename(p) for p in ours] == [os.path.basename(p) for p in theirs]
        for a, b in zip(ours, theirs):
            assert pq.read_table(a).equals(pq.read_table(b)), a
    for name in ("stats.json",):
        with open(os.path.join(output, name)) as a, open(os.path.join(reference, name)) as b:
            assert json.load(a) == json.load(b)


# --------------------------------------------------------------------------------------------
# Resume, bad inputs
# --------------------------------------------------------------------------------------------


def test_rerun_after_a_kill_resumes_without_loss_or_doubles(raw_dir, default_run, tmp_path):
    reference, reference_funnel = default_run
    output = str(tmp_path / "resumed")
    filter_job.run_filter(raw_dir, output, FilterConfig(), word_cloud=False, **QUIET)
    # A kill midway: shard 1's clean file never got its final name, a temporary is left behind,
    # shard 2 was never started, the report was not written.
    os.remove(f"{output}/clean/part-00001.parquet")
    os.remove(f"{output}/clean/part-00002.parquet")
    os.remove(f"{output}/rejects/part-00002.parquet")
    open(f"{output}/clean/.part-00001.parquet.tmp-dead", "wb").write(b"half a shard")
    os.remove(f"{output}/funnel.json")
    messages = []
    funnel = filter_job.run_filter(raw_dir, output, FilterConfig(), word_cloud=False, log=messages.append)
    assert "2 shards to filter (1 already done)" in messages[0]
    assert funnel == reference_funnel
    assert _outcomes(output) == _outcomes(reference)
    assert not glob.glob(f"{output}/clean/.*")
    # A rerun of a finished job redoes nothing and changes nothing.
    messages.clear()
    assert filter_job.run_filter(raw_dir, output, FilterConfig(), word_cloud=False, log=messages.append) == funnel
    assert "0 shards to filter" in messages[0]


def test_outputs_of_another_configuration_are_refused(raw_dir, default_run, tmp_path):
    output = str(tmp_path / "out")
    filter_job.run_filter(raw_dir, output, FilterConfig(), word_cloud=False, **QUIET)
    other = FilterConfig(dedup_images=True)
    with pytest.raises(filter_job.FilterInputError, match="--overwrite"):
        filter_job.run_filter(raw_dir, output, other, word_cloud=False, **QUIET)
    funnel = filter_job.run_filter(raw_dir, output, other, word_cloud=False, overwrite=True, **QUIET)
    assert funnel["stages"][-1]["stage"] == "image_dedup"


def test_a_truncated_raw_shard_is_a_clear_error_naming_it(tmp_path, capsys):
    raw = tmp_path / "raw"
    synthetic.write_raw_shards(_pairs(120, seed=2), str(raw), rows_per_shard=60)
    bad = raw / "part-00001.parquet"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(contract.ShardReadError, match="part-00001.parquet"):
        filter_job.run_filter(str(raw), str(tmp_path / "out"), FilterConfig(), **QUIET)
    assert filter_job.main(["--input", str(raw), "--output", str(tmp_path / "out2")]) == 2
    assert "part-00001.parquet" in capsys.readouterr().err


def test_empty_input_directory_is_a_clear_error(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(filter_job.FilterInputError, match="no raw shards"):
        filter_job.run_filter(str(tmp_path / "raw"), str(tmp_path / "out"), FilterConfig(), **QUIET)


def test_awkward_captions_are_counted_never_a_crash(tmp_path):
    base = synthetic.generate_pairs(40, seed=9, size=224)
    good = next(p for p in base if p.expected_reason is None and not p.has_person_name)
    cases = {
        None: "text_length",
        "": "text_length",
        "   \t ": "text_length",
        "猫" * 100_000: "text_length",               # a 100 KB caption
        "🐱🐶😀": "text_length",                     # emoji only
        "ＨＥＬＬＯ，世界！": None,                    # full-width forms and punctuation
        "繁體中文的標題，可愛的貓咪": None,              # traditional characters
        "Nike 跑步鞋 😀 size 42": None,               # mixed scripts and emoji
        "IMG_2033.JPG": "text_length",
        "微信图片_20190101123456.jpg": "meaningless_caption",
    }
    records = []
    for i, caption in enumerate(cases):
        record = good.to_raw_record()
        record.update(key=f"k{i}", url=f"https://img.example/{i}.jpg", caption=caption, caption_raw=caption, rank=i)
        records.append(record)
    raw = tmp_path / "raw"
    contract.write_shard(str(raw / "part-00000.parquet"), records, contract.RAW_SCHEMA)
    output = str(tmp_path / "out")
    filter_job.run_filter(str(raw), output, FilterConfig(), word_cloud=False, **QUIET)
    assert _outcomes(output) == {i: reason for i, reason in enumerate(cases.values())}


def test_shards_are_readable_by_duckdb_and_hf_datasets(default_run):
    output, funnel = default_run
    import duckdb
    from datasets import load_dataset

    pattern = os.path.join(output, "clean", "*.parquet")
    count, with_image = duckdb.sql(
        f"select count(*), count(image) from read_parquet('{pattern}')").fetchall()[0]
    assert count == with_image == funnel["output"]
    reasons = dict(duckdb.sql(
        f"select drop_reason, count(*) from read_parquet('{output}/rejects/*.parquet') group by 1").fetchall())
    assert sum(reasons.values()) == funnel["input"] - funnel["output"]
    dataset = load_dataset("parquet", data_files=pattern, split="train")
    assert len(dataset) == funnel["output"]
    assert {"key", "url", "caption", "image", "width", "height", "sha256", "query"} <= set(dataset.column_names)
    assert "caption_raw" not in dataset.column_names


def test_cli_help_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        filter_job.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--input", "--output", "--dedup-images", "--font", "--sensitive-words", "--runner"):
        assert flag in text


def test_crawl_local_engine_output_filters_into_readable_shards(tmp_path):
    """The crawl stage's offline output -> `python -m pipelines.filter` (what `make filter` runs)
    -> shards that pyarrow, DuckDB and Hugging Face datasets read."""
    crawl_local = pytest.importorskip("pipelines.crawl_local")
    import duckdb
    from datasets import load_dataset

    raw, output = str(tmp_path / "raw"), str(tmp_path / "filter")
    assert crawl_local.main(["--output", raw, "--queries", "6", "--per-query", "5", "--stall", "1"]) == 0
    assert filter_job.main(["--input", raw, "--output", output, "--no-word-cloud"]) == 0
    with open(os.path.join(output, "funnel.json"), encoding="utf-8") as handle:
        funnel = json.load(handle)
    assert funnel["output"] > 0
    pattern = os.path.join(output, "clean", "*.parquet")
    assert sum(pq.read_table(p).num_rows for p in glob.glob(pattern)) == funnel["output"]
    assert duckdb.sql(f"select count(*) from read_parquet('{pattern}')").fetchall()[0][0] == funnel["output"]
    assert len(load_dataset("parquet", data_files=pattern, split="train")) == funnel["output"]


def test_frequency_is_counted_globally_after_url_dedup_before_other_rules(tmp_path):
    """10 occurrences kept, 11 dropped; a URL duplicate does not count; a pair that another rule
    drops still counts; occurrences spread over shards are added up."""
    good = next(p for p in synthetic.generate_pairs(40, seed=9, size=224)
                if p.expected_reason is None and not p.has_person_name)
    small = synthetic.encode_image(synthetic.draw_scene(good.scene, 120, 120))
    rows = []

    def add(caption, url, image=None, size=None):
        record = good.to_raw_record()
        width, height = size or (good.width, good.height)
        record.update(key=contract.url_key(url), url=url, caption=caption, caption_raw=caption, rank=len(rows),
                      image=image or good.image, width=width, height=height)
        rows.append(record)

    for i in range(10):
        add("蓝色背景上的十个圆", f"https://a.example/{i}.jpg")              # 10: kept
    for i in range(11):
        add("红色背景上的十一个圆", f"https://b.example/{i}.jpg")            # 11: dropped
    for i in range(10):
        add("绿色背景上的圆", f"https://c.example/{i}.jpg")
    add("绿色背景上的圆", "https://c.example/0.jpg")                          # a URL duplicate: still 10
    for i in range(10):
        add("黄色背景上的圆", f"https://d.example/{i}.jpg")
    add("黄色背景上的圆", "https://d.example/small.jpg", small, (120, 120))  # 11th, too small itself
    raw = tmp_path / "raw"
    half = len(rows) // 2
    contract.write_shard(str(raw / "part-00000.parquet"), rows[:half], contract.RAW_SCHEMA)
    contract.write_shard(str(raw / "part-00001.parquet"), rows[half:], contract.RAW_SCHEMA)
    output = str(tmp_path / "out")
    filter_job.run_filter(str(raw), output, FilterConfig(), word_cloud=False, **QUIET)
    outcomes = _outcomes(output)
    by_caption = collections.defaultdict(collections.Counter)
    for row in rows:
        by_caption[row["caption"]][outcomes[row["rank"]]] += 1
    assert by_caption["蓝色背景上的十个圆"] == {None: 10}
    assert by_caption["红色背景上的十一个圆"] == {"frequent_caption": 11}
    assert by_caption["绿色背景上的圆"] == {None: 10, "duplicate_url": 1}
    assert by_caption["黄色背景上的圆"] == {"frequent_caption": 10, "image_too_small": 1}


def test_sensitive_lists_are_extended_by_flag(tmp_path):
    good = next(p for p in synthetic.generate_pairs(40, seed=9, size=224)
                if p.expected_reason is None and not p.has_person_name)
    rows = []
    for i, caption in enumerate(["榴莲味的冰淇淋", "榴莲酥礼盒", "香草味的冰淇淋"]):
        record = good.to_raw_record()
        record.update(key=f"k{i}", url=f"https://e.example/{i}.jpg", caption=caption, caption_raw=caption, rank=i)
        rows.append(record)
    raw = tmp_path / "raw"
    contract.write_shard(str(raw / "part-00000.parquet"), rows, contract.RAW_SCHEMA)
    words, allow = tmp_path / "words.txt", tmp_path / "allow.txt"
    words.write_text("榴莲\n", encoding="utf-8")
    allow.write_text("榴莲酥\n", encoding="utf-8")
    output = str(tmp_path / "out")
    assert filter_job.main(["--input", str(raw), "--output", output, "--no-word-cloud",
                            "--extra-sensitive-words", str(words), "--extra-sensitive-allow", str(allow)]) == 0
    assert _outcomes(output) == {0: "sensitive_word", 1: None, 2: None}
    assert filter_job.main(["--input", str(raw), "--output", str(tmp_path / "o2"),
                            "--sensitive-words", str(tmp_path / "missing.txt")]) == 2


def test_an_edited_word_list_makes_old_outputs_stale(tmp_path):
    raw = tmp_path / "raw"
    synthetic.write_raw_shards(_pairs(120, seed=6), str(raw), rows_per_shard=120)
    words = tmp_path / "words.txt"
    words.write_text("榴莲\n", encoding="utf-8")
    config = FilterConfig(extra_sensitive_words=(str(words),))
    output = str(tmp_path / "out")
    filter_job.run_filter(str(raw), output, config, word_cloud=False, **QUIET)
    words.write_text("榴莲\n圆形\n", encoding="utf-8")  # same path, new content
    with pytest.raises(filter_job.FilterInputError):
        filter_job.run_filter(str(raw), output, config, word_cloud=False, **QUIET)


def test_a_rerun_with_image_dedup_takes_finished_shards_into_account(raw_dir, tmp_path):
    """Killed after some shards: the rerun's image winners include the images the finished
    shards kept, read from their clean shards, so the output is the uninterrupted one."""
    output = str(tmp_path / "out")
    config = FilterConfig(dedup_images=True)
    whole = filter_job.run_filter(raw_dir, output, config, word_cloud=False, **QUIET)
    expected = _outcomes(output)
    later = [p for p in contract.list_shards(raw_dir)][1:]  # the first shard stays finished
    for path in later:
        name = os.path.basename(path)
        for kind in ("clean", "rejects"):
            os.remove(os.path.join(output, kind, name))
    again = filter_job.run_filter(raw_dir, output, config, word_cloud=False, **QUIET)
    assert _outcomes(output) == expected
    shas = [r["sha256"] for r in _read_dir(os.path.join(output, "clean"), "clean")]
    assert len(shas) == len(set(shas))
    assert again == whole


# --------------------------------------------------------------------------------------------
# Verdicts that need the whole corpus
# --------------------------------------------------------------------------------------------

# What the filter wrote on duplicated_corpus() before its corpus facts moved from side inputs to a
# shuffle keyed by shard (the side-input design, main at 77d3564): the outputs must not change.
PINNED_DIGESTS = {
    False: "526476d8dec4f1813971fca1af2b4c412e99f93a3ba7de5542aea27625cd33f7",
    True: "16fd3c8e9ad3a7ad7ce5e2fd2e7955a1f080e2193a0231d86873aa50531e2ddc",
}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("corpus"))
    write_corpus(duplicated_corpus(), directory, rows_per_shard=100)
    return directory


def _content_digest(output):
    """sha256 of every clean and reject row in shard and row order, funnel.json and stats.json.
    The image bytes and their sha256 are left out: they come from Pillow's encoder, not from the
    filter, and identical bytes still show in the duplicate_image verdicts."""
    digest = hashlib.sha256()
    for kind, schema in (("clean", contract.CLEAN_SCHEMA), ("rejects", contract.REJECT_SCHEMA)):
        for path in contract.list_shards(os.path.join(output, kind)):
            digest.update(os.path.basename(path).encode())
            for row in contract.read_shard(path, schema).to_pylist():
                row.pop("image", None)
                row.pop("sha256", None)
                digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
    for name in ("funnel.json", "stats.json"):
        content = contract.read_json(os.path.join(output, name))
        digest.update(json.dumps(content, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("dedup_images", [False, True])
def test_outputs_are_those_of_the_side_input_design(corpus_dir, tmp_path, dedup_images):
    output = str(tmp_path / "out")
    filter_job.run_filter(corpus_dir, output, FilterConfig(dedup_images=dedup_images), word_cloud=False, **QUIET)
    assert _content_digest(output) == PINNED_DIGESTS[dedup_images]


def _reasons_read_plainly(records, config, rows_per_shard=100):
    """rank -> drop reason, from docs/design.md's corpus rules computed in memory over the whole
    corpus (rows in corpus order), handed to the record rules as each row's shard's facts."""
    def counted(record):
        return record["status"] == contract.DownloadStatus.SUCCESS and record["url"]

    first_by_url = {}
    for record in records:
        if counted(record):
            first_by_url.setdefault(contract.url_key(record["url"]), record["rank"])
    winners = [r for r in records if counted(r) and first_by_url[contract.url_key(r["url"])] == r["rank"]]
    counts = collections.Counter(normalise_caption(caption_as_found(r)) for r in winners)
    rules = RecordRules(config)
    reasons = {}
    for record in records:
        shard, row = divmod(record["rank"], rows_per_shard)
        caption = normalise_caption(caption_as_found(record))
        facts = [(CAPTION_COUNT, caption, counts[caption])] if is_frequent(counts[caption], config.text) else []
        first = first_by_url.get(contract.url_key(record["url"])) if record["url"] else None
        if first is not None:
            first_shard, first_row = divmod(first, rows_per_shard)
            facts.append((URL_WINNER, contract.url_key(record["url"]),
                          first_row if first_shard == shard else NOT_IN_THIS_SHARD))
        reasons[record["rank"]] = rules.check({**record, "_shard": shard, "_row": row}, ShardFacts(facts))[0]
    return reasons


def test_every_row_gets_the_reason_of_the_corpus_rules_read_plainly(corpus_dir, tmp_path):
    records = duplicated_corpus()
    output = str(tmp_path / "out")
    filter_job.run_filter(corpus_dir, output, FilterConfig(), word_cloud=False, **QUIET)
    outcomes = _outcomes(output)
    assert outcomes == _reasons_read_plainly(records, FilterConfig())
    # The corpus has the cases the facts must get right, across shards.
    assert any(not r["url"] and outcomes[r["rank"]] == "frequent_caption" for r in records)
    by_url = collections.defaultdict(list)
    for r in records:
        by_url[r["key"]].append(r["rank"] // 100)
    assert sum(len(set(shards)) > 1 for shards in by_url.values()) > 20
    failed_first = [ranks for ranks in (
        [r["rank"] for r in records if r["key"] == key] for key in by_url)
        if records[ranks[0]]["status"] != contract.DownloadStatus.SUCCESS and len(ranks) > 1]
    assert any(outcomes[ranks[1]] != "duplicate_url" for ranks in failed_first)


def test_no_worker_holds_a_side_input_of_the_corpus(raw_dir, tmp_path):
    """The corpus facts reach the shards through a shuffle keyed by shard: the only side inputs
    left are the report's, each a single value (a count of written shards, the funnel counts, the
    stats; CombineGlobally's default also comes as a one-element list)."""
    for dedup_images in (False, True):
        pipeline = beam.Pipeline(options=pipeline_options([]))
        paths = contract.list_shards(raw_dir)
        filter_job.build_pipeline(pipeline, paths, str(tmp_path / "out"), FilterConfig(dedup_images=dedup_images),
                                  range(len(paths)), 240)
        side_inputs = []  # (label, kind) of every side input the job reads

        class Visitor(beam.pipeline.PipelineVisitor):
            def visit_transform(self, applied):
                side_inputs.extend((applied.full_label, type(s).__name__) for s in applied.side_inputs)

        pipeline.visit(Visitor())
        assert side_inputs and all(label.startswith("Report/") for label, _ in side_inputs), side_inputs
