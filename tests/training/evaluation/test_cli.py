"""`python -m training.evaluate` end to end on tiny trained checkpoints, one generated data set per
layout; every number is checked against a direct computation through `training.api`."""

from __future__ import annotations

import json
import os

import pytest
import torch
from PIL import Image

from tests.support import evaluation_sets as layouts
from tests.support.damage import damage_file
from tests.support.images import hostile_images
from training.evaluate import main, retrieval_metrics
from training.evaluation.cli import default_output
from training.evaluation.datasets import load_retrieval_set
from training.loss import token_wise_similarity


def reference_metrics(loaded_model, dataset, directions) -> dict:
    """All pairs at once through the public API, no batching, caching or blocks."""
    images = [dataset.gallery.load(i) for i in range(len(dataset.gallery))]
    model = loaded_model.model
    with torch.no_grad():
        pixels = torch.stack([loaded_model.transform(im) for im in images])
        ids, mask = loaded_model.tokenizer(dataset.texts)
        if model.similarity == "global":
            return retrieval_metrics(loaded_model.encode_image(images) @ loaded_model.encode_text(dataset.texts).T,
                                     dataset.image_of_text, directions)
        # The evaluation caches token features in float16; round the same way.
        image_tokens = model.encode_image_tokens(pixels).half().float()
        text_tokens, text_mask = model.encode_text_tokens(ids, mask)
        i2t, t2i = token_wise_similarity(image_tokens, text_tokens.half().float(), text_mask)
    return retrieval_metrics(i2t, dataset.image_of_text, directions, similarity_t2i=t2i)


def make_layout(layout: str, root: str, clean_dir: str) -> list[str]:
    """Write a tiny set in `layout` under `root`; return its command-line arguments."""
    if layout == "tsv":
        layouts.write_tsv_jsonl(root, n_images=6, captions_per_image=3)
        return ["--data", root]
    if layout == "muge":
        layouts.write_muge(root)
        return ["--data", root]
    if layout == "flickr8k":
        data = layouts.write_flickr8k_cn(root)
        return ["--layout", "flickr", "--data", data["captions"], "--images", data["images"],
                "--split-file", data["split_file"]]
    if layout == "flickr30k":
        data = layouts.write_flickr30k_cn(root)
        return ["--layout", "flickr", "--data", data["folder"], "--images", data["images"]]
    if layout == "coco-cn":
        data = layouts.write_coco_cn(root)
        return ["--data", data["root"], "--images", data["images"]]
    if layout == "aic-icc":
        data = layouts.write_aic_icc(root)
        return ["--data", data["annotations"], "--images", data["images"], "--max-images", "3"]
    return ["--data", clean_dir, "--max-images", "24"]


def _layout_flag(layout: str, args: list[str]) -> list[str]:
    return args if "--layout" in args else ["--layout", layout, *args]


CASES = [("tsv", "global"), ("muge", "global"), ("flickr8k", "global"), ("flickr30k", "global"),
         ("coco-cn", "global"), ("aic-icc", "global"), ("shards", "global"),
         ("tsv", "token_wise"), ("muge", "token_wise")]


@pytest.mark.e2e
@pytest.mark.parametrize("layout, similarity", CASES)
def test_retrieval_end_to_end_per_layout(tmp_path, runs, checkpoints, loaded, clean_dir, capsys, layout, similarity):
    args = _layout_flag(layout, make_layout(layout, str(tmp_path / "data"), clean_dir))
    workers = "1" if layout == "tsv" else "0"  # once through a worker process: galleries must pickle
    rc = main(["retrieval", "--checkpoint", runs[similarity],
               *args, "--device", "cpu", "--workers", workers, "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    out = capsys.readouterr().out
    path = out.strip().splitlines()[-1].removeprefix("results: ")
    assert os.path.dirname(path) == os.path.dirname(checkpoints[similarity])  # beside the checkpoint
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    os.remove(path)
    option = dict(zip(args[::2], args[1::2]))
    dataset = load_retrieval_set(option["--layout"], option["--data"], option.get("--images"), None,
                                 option.get("--split-file"), int(option["--max-images"]) if "--max-images" in option else None)
    directions = ("t2i",) if layout == "muge" else ("i2t", "t2i")
    assert result["directions"] == list(directions)
    assert result["similarity"] == similarity and result["step"] == loaded[similarity].config["step"]
    assert result["checkpoint"] == os.path.abspath(checkpoints[similarity])
    assert result["n_images"] == len(dataset.gallery) and result["n_texts"] == len(dataset.texts)
    expected = reference_metrics(loaded[similarity], dataset, directions)
    assert result["metrics"] == pytest.approx(expected)
    assert set(result["chance"]) == set(expected)
    assert "MR" in out and "chance" in out  # the console table


# --------------------------------------------------------------------------------------------
# Zero-shot, alignment and prompts commands
# --------------------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("similarity, ensemble", [("global", None), ("token_wise", "mean_probability")])
def test_zeroshot_command(tmp_path, checkpoints, capsys, similarity, ensemble):
    names = layouts.write_image_folder(str(tmp_path), ["红色", "蓝色", "绿色"], per_class=2)
    templates = tmp_path / "templates.txt"
    templates.write_text("{}的照片。\n一张{}的图。\n", encoding="utf-8")
    output = tmp_path / "zs.json"
    args = ["zeroshot", "--checkpoint", checkpoints[similarity], "--image-dir", str(tmp_path / "val"),
            "--classnames", names, "--templates", str(templates), "--output", str(output), "--workers", "0",
            "--device", "cpu"]
    assert main(args + (["--ensemble", ensemble] if ensemble else [])) == 0
    result = json.loads(output.read_text(encoding="utf-8"))
    assert result["ensemble"] == (ensemble or "mean_embedding")
    assert result["n_images"] == 6 and result["n_classes"] == 3 and result["n_templates"] == 2
    assert result["chance"] == {"top1": pytest.approx(100 / 3), "top5": 100.0}
    assert set(result["metrics"]) == {"top1", "top5"} and len(result["per_class_top1"]) == 3
    assert f"ensemble {result['ensemble']}" in capsys.readouterr().out


@pytest.mark.e2e
def test_zeroshot_command_reports_bad_input(tmp_path, checkpoints, capsys):
    layouts.write_image_folder(str(tmp_path), ["红色", "蓝色", "绿色"], per_class=1)
    short = tmp_path / "two.txt"
    short.write_text("红色\n蓝色\n", encoding="utf-8")
    rc = main(["zeroshot", "--checkpoint", checkpoints["global"], "--image-dir", str(tmp_path / "val"),
               "--classnames", str(short), "--workers", "0"])
    assert rc == 2
    assert "2 class names for 3 class folders" in capsys.readouterr().err


@pytest.mark.e2e
def test_zeroshot_command_skips_and_counts_images_that_do_not_decode_and_names_a_bad_classname_file(
        tmp_path, checkpoints, capsys):
    names = layouts.write_image_folder(str(tmp_path), ["红色", "蓝色"], per_class=3)
    hostile = list(hostile_images().values())
    broken = sorted((tmp_path / "val").rglob("*.JPEG"))[1:4]
    for path, data in zip(broken, hostile):
        path.write_bytes(data)
    (tmp_path / "templates.txt").write_text("{}的照片。\n", encoding="utf-8")
    output = tmp_path / "zs.json"
    args = ["zeroshot", "--checkpoint", checkpoints["global"], "--image-dir", str(tmp_path / "val"),
            "--templates", str(tmp_path / "templates.txt"), "--workers", "0", "--device", "cpu",
            "--output", str(output)]
    assert main([*args, "--classnames", names]) == 0
    result = json.loads(output.read_text(encoding="utf-8"))
    assert (result["n_images"], result["skipped"]) == (3, 3)
    captured = capsys.readouterr()
    assert all(f"image {path} does not decode" in captured.err for path in broken)
    assert "3 skipped: they do not decode" in captured.out
    with open(names, "ab") as f:
        f.write("綠色\n".encode("big5"))
    assert main([*args, "--classnames", names]) == 2
    assert f"{names}: not UTF-8 text (line 3" in capsys.readouterr().err


@pytest.mark.e2e
def test_a_damaged_checkpoint_is_an_error_naming_it(tmp_path, checkpoints, capsys):
    names = layouts.write_image_folder(str(tmp_path), ["红色", "蓝色"], per_class=1)
    damaged = tmp_path / "best.pt"
    damaged.write_bytes(open(checkpoints["global"], "rb").read())
    damage_file(str(damaged), "flipped")
    assert main(["zeroshot", "--checkpoint", str(damaged), "--image-dir", str(tmp_path / "val"),
                 "--classnames", names, "--workers", "0", "--device", "cpu"]) == 2
    assert f"{damaged}: corrupt, its contents do not match the digest" in capsys.readouterr().err


@pytest.mark.e2e
def test_retrieval_command_reports_missing_images_and_empty_galleries(tmp_path, checkpoints, capsys):
    data = layouts.write_flickr8k_cn(str(tmp_path))
    os.remove(os.path.join(data["images"], data["test_images"][0]))
    rc = main(["retrieval", "--checkpoint", checkpoints["global"], "--layout", "flickr", "--data", data["captions"],
               "--images", data["images"], "--split-file", data["split_file"]])
    assert rc == 2 and data["test_images"][0] in capsys.readouterr().err
    os.makedirs(tmp_path / "empty")
    (tmp_path / "empty" / "test_imgs.tsv").write_text("")
    (tmp_path / "empty" / "test_texts.jsonl").write_text("")
    assert main(["retrieval", "--checkpoint", checkpoints["global"], "--layout", "tsv", "--data", str(tmp_path / "empty")]) == 2
    assert "gallery is empty" in capsys.readouterr().err
    assert main(["retrieval", "--checkpoint", checkpoints["global"], "--layout", "coco-cn", "--data", str(tmp_path)]) == 2
    assert "needs --images" in capsys.readouterr().err
    assert main(["retrieval", "--checkpoint", checkpoints["global"], "--layout", "tsv", "--data", str(tmp_path / "empty"),
                 "--max-images", "5"]) == 2
    assert "evaluated whole" in capsys.readouterr().err


@pytest.mark.e2e
def test_alignment_command_writes_png_and_json(tmp_path, checkpoints, capsys):
    image = tmp_path / "cat.png"
    Image.new("RGB", (90, 70), (200, 30, 30)).save(image)
    assert main(["alignment", "--checkpoint", checkpoints["token_wise"], "--image", str(image),
                 "--text", "一只红色的猫", "--classname", "汽车", "--device", "cpu"]) == 0
    first = default_output(checkpoints["token_wise"], "alignment", "cat-0", ".png")
    second = default_output(checkpoints["token_wise"], "alignment", "cat-1", ".png")
    for png in (first, second):
        with Image.open(png) as drawn:
            assert drawn.format == "PNG" and drawn.width >= 2 * 56
    sidecar = json.loads(open(os.path.splitext(second)[0] + ".json", encoding="utf-8").read())
    assert sidecar["text"] == "汽车的照片。"
    assert sidecar["grid"] == [2, 2]  # resnet18 at 64 px: a 2 x 2 feature map
    assert set(sidecar["tokens"].values()) == {"汽", "车", "的", "照", "片", "。", "[SEP]"}
    assert "patches per token" in capsys.readouterr().out


@pytest.mark.e2e
def test_prompts_command_and_help(tmp_path, capsys):
    assert main(["prompts", "--classnames", str(tmp_path / "in.txt"), "--templates", str(tmp_path / "t.txt")]) == 0
    assert len((tmp_path / "in.txt").read_text(encoding="utf-8").splitlines()) == 1000
    assert (tmp_path / "t.txt").read_text(encoding="utf-8").splitlines()[0] == "{}的照片。"
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for command in ("zeroshot", "retrieval", "alignment", "prompts"):
        assert command in help_text


@pytest.mark.e2e
def test_retrieval_rerank_reports_both_metrics_and_the_cost(tmp_path, clean_dir, checkpoints, capsys):
    """--rerank-top-k with a ranking-head checkpoint (an untrained head: this checks the plumbing;
    tests/training/evaluation/test_rerank.py checks the re-ranking itself)."""
    from tests.support.training import tiny_model
    from training.trainer import checkpoint as ckpt

    model = tiny_model(ranking_layers=1)
    path = ckpt.save({"model": model.state_dict(), "model_config": model.config.to_dict(), "step": 0},
                     str(tmp_path / "head.pt"))
    out = tmp_path / "reranked.json"
    rc = main(["retrieval", "--checkpoint", path, "--layout", "shards", "--data", clean_dir, "--max-images", "12",
               "--rerank-top-k", "3", "--workers", "0", "--no-cache", "--device", "cpu", "--output", str(out)])
    assert rc == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    reranked = result["reranked"]
    assert reranked["top_k"] == 3 and reranked["pairs_scored"] == 2 * 3 * result["n_images"]
    assert reranked["metrics"].keys() == result["metrics"].keys() and reranked["seconds"] > 0
    assert "re-ranked the top 3" in capsys.readouterr().out
    # a checkpoint without a head: a clear error
    assert main(["retrieval", "--checkpoint", checkpoints["global"], "--layout", "shards", "--data", clean_dir,
                 "--max-images", "12", "--rerank-top-k", "3", "--workers", "0", "--no-cache"]) == 2
    assert "--ranking-head" in capsys.readouterr().err
