"""The locked-tower feature cache (`python -m training.cache_features`): what it stores, and
training from it."""

import contextlib
import io
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from tests.support.damage import corrupt_page, write_with_bad_text
from tests.support.training import write_clean_shards
from training.model import LiTConfig, LiTModel, build_image_tower
from training.train import main as train_main
from training.trainer import feature_cache
from training.transforms import image_transform

TOWER = ["--image-tower", "resnet18", "--no-pretrained", "--image-size", "64", "--seed", "0"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, clean_dir):
    out = str(tmp_path_factory.mktemp("cache"))
    assert feature_cache.main(["--data", clean_dir, "--output", out, *TOWER, "--token-pool", "4",
                                "--views", "0", "--precision", "fp32", "--batch-size", "32"]) == 0
    return out


@pytest.mark.e2e
def test_the_cache_holds_the_towers_outputs_for_every_pair(cache_dir, clean_pairs):
    meta = json.load(open(os.path.join(cache_dir, "cache.json")))
    assert meta["rows"] == len(clean_pairs) and meta["width"] == 512 and meta["tokens"] == 4
    rows = pq.read_table(os.path.join(cache_dir, "part-00000.parquet")).to_pylist()
    torch.manual_seed(0)
    model = LiTModel(LiTConfig.tiny()).eval()
    transform = image_transform(model.image_tower, training=False, image_size=64)
    by_key = {r["key"]: r for r in clean_pairs}
    for row in rows[:3]:
        pixels = transform(Image.open(io.BytesIO(by_key[row["key"]]["image"])).convert("RGB")).unsqueeze(0)
        pooled, tokens = model.image_tower_outputs(pixels)
        cached = np.frombuffer(row["pooled"], dtype=np.float16).reshape(1, 512)
        assert np.allclose(cached, pooled.numpy(), rtol=1e-2, atol=1e-2)
        cached_tokens = np.frombuffer(row["tokens"], dtype=np.float16).reshape(1, 4, 512)
        assert np.allclose(cached_tokens, tokens.numpy(), rtol=1e-2, atol=1e-2)
        assert row["caption"] == by_key[row["key"]]["caption"]


@pytest.mark.e2e
@pytest.mark.parametrize("similarity", ["global", "token_wise"])
def test_training_from_the_cache(cache_dir, tmp_path, similarity):
    out = tmp_path / similarity
    code = train_main(["--cache", cache_dir, "--output", str(out), "--tiny", "--similarity", similarity,
                       "--image-token-pool", "4", "--steps", "3", "--global-batch", "8", "--warmup-steps", "1",
                       "--workers", "0", "--save-every", "100"])
    assert code == 0 and os.path.isfile(out / "checkpoints" / "step-00000003.pt")


@pytest.mark.e2e
def test_a_cache_of_another_tower_is_refused(cache_dir, tmp_path, capsys):
    code = train_main(["--cache", cache_dir, "--output", str(tmp_path / "o"), "--tiny", "--seed", "1",
                       "--steps", "2", "--global-batch", "8", "--warmup-steps", "1", "--workers", "0"])
    assert code == 2 and "tower_fingerprint" in capsys.readouterr().err


@pytest.mark.e2e
def test_augmented_views_are_stored_and_picked(tmp_path, clean_dir):
    out = str(tmp_path / "views")
    assert feature_cache.main(["--data", clean_dir, "--output", out, *TOWER, "--views", "3",
                                "--precision", "fp32"]) == 0
    row = pq.read_table(os.path.join(out, "part-00000.parquet")).to_pylist()[0]
    views = np.frombuffer(row["pooled"], dtype=np.float16).reshape(3, 512)
    assert not np.allclose(views[0], views[1])  # different augmentations
    assert row["tokens"] is None
    decoder = feature_cache.CacheDecoder(json.load(open(os.path.join(out, "cache.json"))), with_tokens=False)
    picked = {int(np.argmin([np.abs(v - decoder(row, seed)["pooled"].numpy()).sum() for v in views]))
              for seed in range(20)}
    assert picked == {0, 1, 2}


@pytest.mark.e2e
def test_an_empty_directory_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert feature_cache.main(["--data", str(tmp_path / "empty"), "--output", str(tmp_path / "o"), *TOWER]) == 2
    assert "no shards" in capsys.readouterr().err


def test_corrupt_images_are_skipped_and_counted(tmp_path, clean_pairs):
    records = [dict(r) for r in clean_pairs[:6]]
    records[1]["image"] = records[1]["image"][: len(records[1]["image"]) // 3]  # truncated
    records[4]["image"] = b"not an image"
    source, = write_clean_shards(str(tmp_path / "clean"), records, rows_per_shard=6, row_group_size=6)
    torch.manual_seed(0)
    tower = build_image_tower(LiTConfig.tiny())
    transform = image_transform(tower, training=False, image_size=64)
    target = str(tmp_path / "cache" / "part-00000.parquet")
    written, skipped = feature_cache.cache_shard(tower, [transform], source, target, 0, 4, torch.device("cpu"), 0,
                                                 contextlib.nullcontext)
    assert (written, skipped) == (4, 2)
    keys = [r["key"] for r in pq.read_table(target).to_pylist()]
    assert keys == [r["key"] for i, r in enumerate(records) if i not in (1, 4)]


def test_a_corrupt_row_group_and_captions_that_are_not_utf8_are_skipped_counted_and_named(tmp_path, clean_pairs,
                                                                                       capsys):
    records = clean_pairs[:12]
    corrupt, = write_clean_shards(str(tmp_path / "a"), records, rows_per_shard=12, row_group_size=4)
    corrupt_page(corrupt, 1)
    bad_text = str(tmp_path / "b" / "part-00000.parquet")
    os.makedirs(os.path.dirname(bad_text))
    write_with_bad_text(bad_text, records, {2: b"\xff\xfe", 9: b"\xed\xa0\x80"}, row_group_size=6)
    torch.manual_seed(0)
    tower = build_image_tower(LiTConfig.tiny())
    transform = image_transform(tower, training=False, image_size=64)
    for source, lost in ((corrupt, {4, 5, 6, 7}), (bad_text, {2, 9})):
        target = str(tmp_path / "cache" / f"{len(lost)}.parquet")
        written, skipped = feature_cache.cache_shard(tower, [transform], source, target, 0, 4, torch.device("cpu"),
                                                     0, contextlib.nullcontext)
        assert (written, skipped) == (12 - len(lost), len(lost))
        keys = [r["key"] for r in pq.read_table(target).to_pylist()]
        assert keys == [r["key"] for i, r in enumerate(records) if i not in lost]
    err = capsys.readouterr().err
    assert f"{corrupt}: row group 1 is corrupt" in err
    assert f"{bad_text}: row group 0: 1 row(s) hold text that is not valid UTF-8 (column 'caption')" in err
    assert f"{bad_text}: row group 1: 1 row(s)" in err
