"""Each benchmark's command line runs at a tiny size and writes the fields the README's tables show.

The real runs take minutes (README "Benchmarks"); these keep the code paths alive. The download
benchmark has its own tiny run in tests/pipelines/test_crawl_catalog.py.
"""

from __future__ import annotations

import json
import subprocess
import tempfile

import pytest

from benchmarks import text_filters, token_wise_memory, train_throughput

pytestmark = pytest.mark.e2e  # runs whole stages (Beam pipelines, servers, subprocesses)


def test_text_filters_cli_writes_the_readme_fields(tmp_path):
    out = tmp_path / "text_filters.json"
    assert text_filters.main(["--captions", "200", "--seed", "1", "--min-seconds", "0.02", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["captions"] == 200
    assert result["ours_captions_per_s"] > 0 and result["jieba_captions_per_s"] > 0
    assert result["speedup"] == pytest.approx(result["ours_captions_per_s"] / result["jieba_captions_per_s"], rel=0.01)
    assert 0.995 <= result["length_rule_agreement"] <= 1
    assert 0 < result["masked_caption_agreement"] <= 1 and 0 < result["captions_compared_for_masks"] <= 200


@pytest.mark.e2e
def test_train_throughput_cli_writes_the_readme_fields(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the benchmark's work directory goes here
    out = tmp_path / "train_throughput.json"
    argv = ["--image-tower", "resnet18", "--text-layers", "1", "--text-width", "32", "--text-heads", "2",
            "--batch", "4", "--steps", "1", "--warmup", "0", "--pairs", "30", "--json", str(out)]
    assert train_throughput.main(argv) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["batch"] == 4 and result["precision"] == "fp32" and result["image_tower"] == "resnet18"
    for mode in ("without_cache", "with_cache"):  # the table's rows
        row = result[mode]
        assert row["samples_per_s"] > 0
        assert set(row["seconds"]) == {"data_and_tower", "text_forward_backward", "optimizer"}  # its columns
        assert row["seconds_per_step"] == pytest.approx(sum(row["seconds"].values()), abs=0.01)
    assert result["speedup"] == pytest.approx(
        result["with_cache"]["samples_per_s"] / result["without_cache"]["samples_per_s"], rel=0.02)
    assert result["cache_build_images_per_s"] > 0
    assert not list(tmp_path.glob("train_throughput-*"))  # its work directory is removed


@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_token_wise_memory_cli_writes_the_readme_fields(tmp_path, monkeypatch):
    """The full shape needs about 1.5 GiB and half a minute, so the shape is shrunk and each variant,
    which main() starts as `python -m benchmarks.token_wise_memory --variant V`, runs in this process."""
    monkeypatch.setattr(token_wise_memory, "SHAPE",
                        {"local": 4, "global": 8, "image_tokens": 5, "text_tokens": 6, "dim": 8})
    started = []

    def run_variant_here(argv, **kwargs):
        variant, device = argv[argv.index("--variant") + 1], argv[argv.index("--device") + 1]
        assert argv[1:3] == ["-m", "benchmarks.token_wise_memory"]
        started.append(variant)
        line = json.dumps(token_wise_memory.run_variant(variant, device))
        return subprocess.CompletedProcess(argv, 0, stdout=line + "\n", stderr="")

    monkeypatch.setattr(token_wise_memory.subprocess, "run", run_variant_here)
    out = tmp_path / "token_wise.json"
    assert token_wise_memory.main(["--json", str(out)]) == 0
    assert started == ["chunked", "naive"]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["shape"]["local"] == 4
    assert [r["variant"] for r in result["results"]] == ["chunked", "naive"]  # the table's rows
    for row in result["results"]:  # its columns: extra memory, time, loss
        assert {"extra_gib", "extra_bytes", "seconds", "loss"} <= set(row) and row["extra_bytes"] >= 0
    assert result["same_loss"] is True  # chunked and naive agree


@pytest.mark.e2e
def test_methods_cli_writes_the_table_fields(tmp_path):
    from benchmarks import methods
    from tests.support.training import clean_records, write_clean_shards

    records = clean_records(120, seed=3, size=96)
    demo = tmp_path / "demo"
    write_clean_shards(str(demo / "split" / "train"), records[:-16], rows_per_shard=40, row_group_size=8)
    write_clean_shards(str(demo / "split" / "test"), records[-16:], rows_per_shard=40, row_group_size=8)
    (demo / "split" / "split.json").write_text("{}")
    out = tmp_path / "bench"
    argv = ["--demo", str(demo), "--output", str(out), "--steps", "2", "--global-batch", "8", "--warmup-steps", "1",
            "--queue-size", "16", "--rerank-top-k", "4", "--rows", "siglip", "ranking-distill-rerank"]
    assert methods.main(argv) == 0
    report = json.loads((out / "methods.json").read_text(encoding="utf-8"))
    assert [r["row"] for r in report["rows"]] == ["siglip", "ranking-distill-rerank"]
    assert report["test_images"] == 16 and report["config"]["steps"] == 2
    for row in report["rows"]:
        assert 0 <= row["R@1"] <= row["R@5"] <= row["R@10"] <= 100 and row["samples_per_s"] > 0
        assert row["peak_rss_mib"] > 100  # a torch process
    assert report["rows"][1]["pairs_scored"] == 2 * 16 * 4
    assert "| ranking-distill-rerank |" in methods.markdown(report)
