"""Reading annotation files: word-segmented captions joined back."""

from __future__ import annotations

import pytest

from training.evaluation.datasets.annotations import join_segmented, read_lines, require_file
from training.evaluation.datasets.galleries import EvalDataError


def test_join_segmented():
    assert join_segmented("一个 男人 在 跑步") == "一个男人在跑步"
    assert join_segmented("男人:n 跑步:v") == "男人跑步"
    assert join_segmented("iPhone 6 手机 壳") == "iPhone 6手机壳"
    assert join_segmented("比例 3:2 的 图") == "比例3:2的图"  # a colon that is not a tag stays


def test_lines_lose_the_byte_order_mark_and_line_ends(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeff第一\r\n第二\n".encode("utf-8"))
    assert read_lines(str(path)) == ["第一", "第二"]
    with pytest.raises(EvalDataError, match="caption file not found"):
        require_file(str(tmp_path / "none.txt"), "caption file")


def test_a_line_that_is_not_utf8_is_an_error_naming_the_file_and_line(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_bytes("第一行\r\n第二行\n".encode() + "第三行\n".encode("gbk"))
    with pytest.raises(EvalDataError, match=rf"^{path}: not UTF-8 text \(line 3, byte 21"):
        read_lines(str(path))
