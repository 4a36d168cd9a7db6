"""`python -m training.train` refuses bad input with a clear message and exit status 2, before
any training step (`training.trainer.main.prepare` checks every input first)."""

import os

import pyarrow.parquet as pq
import pytest
import torch

from filters import contract
from tests.support.damage import damage_file
from tests.support.images import jpeg
from training.train import main
from training.trainer import checkpoint as ckpt

TINY = ["--tiny", "--global-batch", "16", "--warmup-steps", "2", "--seed", "0"]


def _bad(capsys, clean_dir, out, *extra):
    code = main(["--data", clean_dir, "--output", str(out), *TINY, "--steps", "2", "--workers", "0", *extra])
    assert code == 2
    assert not os.path.exists(ckpt.step_path(str(out), 2))  # nothing trained
    return capsys.readouterr().err


@pytest.mark.e2e
def test_an_empty_shard_directory_fails_before_training(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "no shards" in _bad(capsys, str(tmp_path / "empty"), tmp_path / "out")


@pytest.mark.e2e
def test_a_shard_missing_a_column_fails_before_training(tmp_path, capsys, clean_pairs):
    (tmp_path / "bad").mkdir()
    table = contract.records_to_table(clean_pairs[:4], contract.CLEAN_SCHEMA).drop_columns(["image"])
    pq.write_table(table, str(tmp_path / "bad" / "part-00000.parquet"))
    assert "missing column 'image'" in _bad(capsys, str(tmp_path / "bad"), tmp_path / "out")


@pytest.mark.e2e
def test_a_vocabulary_of_the_wrong_size_fails_before_training(tmp_path, capsys, clean_dir):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", encoding="utf-8")
    assert "5 entries, expected 21128" in _bad(capsys, clean_dir, tmp_path / "out", "--tokenizer", str(vocab))


@pytest.mark.e2e
def test_an_unknown_timm_name_fails_before_training(tmp_path, capsys, clean_dir):
    err = _bad(capsys, clean_dir, tmp_path / "out", "--image-tower", "vit_nonexistent_patch99")
    assert "no model named 'vit_nonexistent_patch99'" in err


@pytest.mark.e2e
def test_fp16_without_a_gpu_fails_before_training(tmp_path, capsys, clean_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: fp16 is allowed")
    assert "fp16 needs a GPU" in _bad(capsys, clean_dir, tmp_path / "out", "--precision", "fp16")


@pytest.mark.e2e
def test_a_global_batch_that_does_not_split_is_refused(tmp_path, capsys, clean_dir):
    assert "does not split" in _bad(capsys, clean_dir, tmp_path / "out", "--accum-freq", "3")


@pytest.mark.e2e
def test_a_class_name_file_that_is_not_utf8_fails_at_start_naming_the_file_and_line(tmp_path, capsys, clean_dir):
    for folder in ("n01", "n02"):
        (tmp_path / "val" / folder).mkdir(parents=True)
        (tmp_path / "val" / folder / "a.jpg").write_bytes(jpeg(64, 64))
    names = tmp_path / "names.txt"
    names.write_bytes("红色\n".encode() + "藍色\n".encode("big5"))
    err = _bad(capsys, clean_dir, tmp_path / "out", "--val-every", "1", "--val-dir", str(tmp_path / "val"),
               "--val-classnames", str(names))
    assert f"{names}: not UTF-8 text (line 2" in err


@pytest.mark.e2e
def test_a_class_name_file_that_does_not_match_the_folders_fails_at_start(tmp_path, capsys, clean_dir):
    (tmp_path / "val" / "n01").mkdir(parents=True)
    (tmp_path / "val" / "n01" / "a.jpg").write_bytes(jpeg(64, 64))
    (tmp_path / "names.txt").write_text("红色\n蓝色\n", encoding="utf-8")
    err = _bad(capsys, clean_dir, tmp_path / "out", "--val-every", "1", "--val-dir", str(tmp_path / "val"),
               "--val-classnames", str(tmp_path / "names.txt"))
    assert "2 class names for 1 class folders" in err


@pytest.mark.e2e
def test_resuming_from_a_damaged_checkpoint_file_names_it(tmp_path, capsys, clean_dir):
    path = ckpt.step_path(str(tmp_path / "out"), 1)
    ckpt.save({"step": 1}, path)
    damage_file(path, "truncated")
    assert f"{path}: not a readable checkpoint" in _bad(capsys, clean_dir, tmp_path / "out", "--resume", path)
