"""The Chinese prompt templates and ImageNet class names, read as data from cn-clip."""

from __future__ import annotations

import pytest

from training.evaluation.datasets.galleries import EvalDataError
from training.evaluation.prompts import (
    PromptSet,
    chinese_templates,
    default_prompt_set,
    imagenet_classnames_zh,
    read_classnames,
    read_templates,
    repeated_classnames,
    write_classnames,
)


def test_templates_and_classnames_are_cn_clip_data():
    from cn_clip.eval import imagenet_zeroshot_templates as reference

    templates = chinese_templates()
    assert len(templates) == 80 and len(imagenet_classnames_zh()) == 1000
    # Parsed, not imported, yet identical to calling cn-clip's lambdas.
    for template, function in zip(templates, reference.openai_imagenet_template):
        assert template.format("金鱼") == function("金鱼")
    assert list(imagenet_classnames_zh()) == reference.imagenet_classnames
    assert imagenet_classnames_zh()[:2] == ("丁鲷", "金鱼")
    assert default_prompt_set().prompts_for("猫")[0] == "猫的照片。"
    assert "cn-clip" in default_prompt_set().source


def test_classname_file_round_trip_and_repeats(tmp_path):
    path = str(tmp_path / "names.txt")
    write_classnames(path, imagenet_classnames_zh())
    names = read_classnames(path)
    assert names == list(imagenet_classnames_zh())
    assert repeated_classnames(names) == ["太阳镜"]  # ImageNet's sunglass / sunglasses
    (tmp_path / "blank.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no names"):
        read_classnames(str(tmp_path / "blank.txt"))


def test_prompt_set_rejects_templates_without_one_slot():
    with pytest.raises(ValueError, match="exactly one"):
        PromptSet(templates=("没有位置",), classnames=(), source="test")


def test_template_file_needs_one_slot_per_line(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("{}的照片。\n\n一张{}的图。\n", encoding="utf-8")
    assert read_templates(str(good)) == ["{}的照片。", "一张{}的图。"]
    bad = tmp_path / "bad.txt"
    bad.write_text("{}的照片。\n没有位置\n", encoding="utf-8")
    with pytest.raises(ValueError, match="exactly one"):
        read_templates(str(bad))


@pytest.mark.parametrize("read", [read_classnames, read_templates])
@pytest.mark.parametrize("encoding", ["gbk", "big5", "utf-16"])
def test_a_file_that_is_not_utf8_is_an_error_naming_the_file_and_line(tmp_path, read, encoding):
    path = tmp_path / "names.txt"
    path.write_bytes("{}的照片\n".encode("utf-8") + "一張{}的圖\n".encode(encoding))
    with pytest.raises(EvalDataError, match=rf"^{path}: not UTF-8 text \(line 2, "):
        read(str(path))
