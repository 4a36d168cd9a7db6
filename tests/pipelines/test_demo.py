"""pipelines.demo: the whole pipeline offline, shortened so CI catches a broken path between stages."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from pipelines import demo, schema
from tests.support.clean_shards import record, write_shards

pytestmark = pytest.mark.e2e  # runs whole stages (Beam pipelines, servers, subprocesses)

SHORT = demo.DemoConfig(queries=24, per_query=8, test_share=0.3, train_steps=20, global_batch=16, warmup_steps=3,
                        image_size=64)
CONTRACT_COLUMNS = {"key", "url", "caption", "image", "width", "height", "sha256", "query"}
METRICS = {"i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "MR"}


def test_shortened_demo_end_to_end(tmp_path, capfd):
    out = str(tmp_path / "demo")
    result = demo.run_demo(out, SHORT, min_r1_over_chance=0)

    assert schema.list_shards(os.path.join(out, "raw"))
    clean = schema.list_shards(os.path.join(out, "clean"))
    assert clean and schema.list_shards(os.path.join(out, "rejects"))
    assert CONTRACT_COLUMNS <= set(pq.read_schema(clean[0]).names)  # plain pyarrow reads the contract
    funnel = json.loads(open(os.path.join(out, "funnel.json"), encoding="utf-8").read())
    schema.validate_funnel(funnel)
    kept = sum(pq.ParquetFile(path).metadata.num_rows for path in clean)
    assert funnel["output"] == kept > 0
    for name in ("stats.json", "wordcloud.png", "report/index.html", "train/checkpoints/step-00000020.pt"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name

    on_disk = json.loads(open(os.path.join(out, "eval.json"), encoding="utf-8").read())
    assert on_disk == result
    assert set(result["metrics"]) == METRICS and set(result["chance"]) == METRICS
    held = result["held_out"]
    assert held["images_on_both_sides"] == 0
    assert held["test_pairs"] == result["n_images"] > 0 and held["train_pairs"] + held["test_pairs"] == kept
    expected_ratio = (result["metrics"]["i2t_R@1"] + result["metrics"]["t2i_R@1"]) / (
        result["chance"]["i2t_R@1"] + result["chance"]["t2i_R@1"])
    assert result["R@1_over_chance"] == pytest.approx(expected_ratio, abs=0.01)
    err = capfd.readouterr().err
    assert "[demo] 1/6 crawl: python -m pipelines.crawl_local" in err and "R@1 is" in err

    # a rerun continues: every stage is found finished, nothing is redone
    demo.run_demo(out, SHORT, min_r1_over_chance=0)
    assert capfd.readouterr().err.count("done in an earlier run, skipped") == 6

    # other settings over an existing run: refused, with the way out
    with pytest.raises(demo.DemoError, match="train_steps.*--fresh"):
        demo.run_demo(out, demo.DemoConfig(**{**SHORT.__dict__, "train_steps": 30}), min_r1_over_chance=0)


def test_a_failed_stage_is_named_and_earlier_work_kept(tmp_path):
    kept = tmp_path / "earlier.txt"
    kept.write_text("finished work")
    stage = demo.Stage("split", ("pipelines.split", "--input", str(tmp_path / "missing"), "--output",
                                 str(tmp_path / "split")), done=lambda: False)
    with pytest.raises(demo.DemoError, match=r"stage split failed \(exit 2\).*rerun"):
        demo.run_stage(3, 6, stage, dict(os.environ))
    assert kept.read_text() == "finished work"


def test_stage_that_writes_nothing_is_an_error(tmp_path):
    stage = demo.Stage("noop", ("pipelines.split", "--help"), done=lambda: False)
    with pytest.raises(demo.DemoError, match="output is missing"):
        demo.run_stage(1, 1, stage, dict(os.environ))


def write_eval(out, metrics: dict[str, float], chance: dict[str, float]) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, demo.EVAL_FILE), "w", encoding="utf-8") as handle:
        json.dump({"metrics": metrics, "chance": chance}, handle)


def test_annotate_eval_counts_images_on_both_sides_and_the_ratio(tmp_path):
    out = str(tmp_path)
    write_shards(os.path.join(out, "split", "train"), [record(0, b"a"), record(1, b"shared")], per_shard=10)
    write_shards(os.path.join(out, "split", "test"), [record(2, b"shared"), record(3, b"b")], per_shard=10)
    schema.write_json(os.path.join(out, "split", "split.json"), {"pairs": {"train": 2, "test": 2}})
    metrics = dict.fromkeys(METRICS, 0.0) | {"i2t_R@1": 30.0, "t2i_R@1": 10.0}
    write_eval(out, metrics, dict.fromkeys(METRICS, 2.0))
    result = demo.annotate_eval(out)
    assert result["held_out"]["images_on_both_sides"] == 1
    assert result["R@1_over_chance"] == 10.0
    assert "chance" in result["chance_note"]
    with pytest.raises(demo.DemoError, match="both sides"):
        demo.check_result(result, 0)


@pytest.mark.parametrize("ratio, bar, fails", [(4.9, 5.0, True), (5.0, 5.0, False), (1.0, 0, False)])
def test_check_result_holds_the_bar(ratio, bar, fails):
    result = {"held_out": {"images_on_both_sides": 0}, "R@1_over_chance": ratio}
    if fails:
        with pytest.raises(demo.DemoError, match="below the demo's bar"):
            demo.check_result(result, bar)
    else:
        demo.check_result(result, bar)


def test_help_explains_the_stages(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("crawl", "filter", "sha256", "train", "--fresh", "--min-r1-over-chance"):
        assert word in text
