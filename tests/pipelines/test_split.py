"""pipelines.split: clean shards into train/test by image sha256, no image on both sides."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from filters import contract
from pipelines import split
from tests.support.clean_shards import record, write_shards


def side_rows(output: str, side: str) -> list[dict]:
    rows = []
    for path in contract.list_shards(os.path.join(output, side)):
        rows += contract.read_shard(path, contract.CLEAN_SCHEMA).to_pylist()
    return rows


@pytest.fixture
def clean_dir(tmp_path):
    # 300 distinct images, and every 10th image also appears under a second URL (another caption)
    records = [record(i, f"image-{i}".encode()) for i in range(300)]
    records += [dict(record(1000 + i, f"image-{i}".encode()), caption="同一张图片") for i in range(0, 300, 10)]
    directory = str(tmp_path / "clean")
    write_shards(directory, records, per_shard=70)
    return directory, records


def test_no_image_on_both_sides_and_nothing_lost(clean_dir, tmp_path):
    directory, records = clean_dir
    manifest = split.split_shards(directory, str(tmp_path / "out"), split.SplitConfig(test_share=0.2),
                                  log=lambda _: None)
    train, test = side_rows(str(tmp_path / "out"), "train"), side_rows(str(tmp_path / "out"), "test")
    assert {r["sha256"] for r in train}.isdisjoint({r["sha256"] for r in test})
    assert sorted(r["key"] for r in train + test) == sorted(r["key"] for r in records)
    assert manifest["pairs"] == {"train": len(train), "test": len(test)}
    assert 0 < len(test) < len(train)
    on_disk = json.loads((tmp_path / "out" / "split.json").read_text(encoding="utf-8"))
    assert on_disk["pairs"] == manifest["pairs"]


def test_side_depends_only_on_the_image_and_seed():
    sha = hashlib.sha256(b"x").hexdigest()
    config = split.SplitConfig(test_share=0.5, seed=3)
    assert split.is_test(sha, config) == split.is_test(sha, config)
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    first = [split.is_test(h, split.SplitConfig(test_share=0.1, seed=0)) for h in hashes]
    second = [split.is_test(h, split.SplitConfig(test_share=0.1, seed=1)) for h in hashes]
    assert 0.08 < sum(first) / len(hashes) < 0.12  # the share is honoured
    assert first != second  # another seed is another split


def test_rerun_skips_done_shards_and_refuses_other_settings(clean_dir, tmp_path):
    directory, _ = clean_dir
    out = str(tmp_path / "out")
    lines: list[str] = []
    split.split_shards(directory, out, split.SplitConfig(test_share=0.2), log=lines.append)
    assert sum("(" in line for line in lines) == len(contract.list_shards(directory))
    lines.clear()
    again = split.split_shards(directory, out, split.SplitConfig(test_share=0.2), log=lines.append)
    assert not any("(" in line for line in lines)  # nothing split twice
    assert again["pairs"]["train"] == len(side_rows(out, "train"))
    with pytest.raises(ValueError, match="test_share=0.2"):
        split.split_shards(directory, out, split.SplitConfig(test_share=0.3), log=lines.append)


def test_a_killed_run_resumes_from_the_saved_manifest(clean_dir, tmp_path, monkeypatch):
    directory, records = clean_dir
    out = str(tmp_path / "out")
    real, calls = split.split_shard, []

    def dies_on_the_fourth(path, output, config):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt  # killed while splitting the fourth shard
        return real(path, output, config)

    monkeypatch.setattr(split, "split_shard", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        split.split_shards(directory, out, split.SplitConfig(test_share=0.2), log=lambda _: None, save_every=2)
    monkeypatch.setattr(split, "split_shard", real)
    lines: list[str] = []
    manifest = split.split_shards(directory, out, split.SplitConfig(test_share=0.2), log=lines.append, save_every=2)
    shards = contract.list_shards(directory)
    assert sum("(" in line for line in lines) == len(shards) - 2  # the two saved shards are not split again
    train, test = side_rows(out, "train"), side_rows(out, "test")
    assert sorted(r["key"] for r in train + test) == sorted(r["key"] for r in records)  # none lost, none twice
    assert manifest["pairs"] == {"train": len(train), "test": len(test)} and len(manifest["shards"]) == len(shards)


def test_row_without_sha256_is_a_clear_error_and_leaves_no_shard(tmp_path):
    directory = str(tmp_path / "clean")
    write_shards(directory, [record(0, b"a"), dict(record(1, b"b"), sha256=None)], per_shard=10)
    out = tmp_path / "out"
    with pytest.raises(contract.ShardSchemaError, match="without a sha256"):
        split.split_shards(directory, str(out), log=lambda _: None)
    assert not list((out / "train").iterdir()) and not list((out / "test").iterdir())  # no half shard


def test_cli_errors_and_help(tmp_path, capsys):
    assert split.main(["--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert split.main(["--input", str(tmp_path / "empty"), "--output", str(tmp_path / "o")]) == 2
    assert "no clean shards" in capsys.readouterr().err
    assert split.main(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--test-share", "1.5"]) == 2
    assert "test_share" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        split.main(["--help"])
    assert exit_info.value.code == 0
    assert "sha256" in capsys.readouterr().out
