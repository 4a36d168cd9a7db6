"""Table 2 statistics and the word cloud's font handling."""

import json
import statistics

import pytest

from filters.contract import NAME_MASK
from pipelines import filter as filter_job
from pipelines import stats as stats_module
from pipelines.stats import CaptionStats, caption_tokens


def test_caption_tokens_skip_punctuation_and_keep_the_mask_whole():
    assert caption_tokens(f"{NAME_MASK}展示的三个红色圆形，白色背景！") == [NAME_MASK, "展示", "的", "三个", "红色", "圆形", "白色", "背景"]
    assert caption_tokens("") == []


def test_table_matches_a_direct_computation():
    captions = ["一只猫", "两只可爱的小狗在草地上", f"{NAME_MASK}的演唱会", "红色 红色 红色 红色"]
    lengths = [len(caption_tokens(c)) for c in captions]
    halves = CaptionStats.of(captions[:2]).merge(CaptionStats.of(captions[2:]))
    table = halves.table()
    assert table["pairs"] == 4
    assert table["tokens_per_caption"]["mean"] == pytest.approx(statistics.mean(lengths), abs=1e-4)
    assert table["tokens_per_caption"]["std"] == pytest.approx(statistics.pstdev(lengths), abs=1e-4)
    assert table["tokens_per_caption"]["median"] == statistics.median(lengths)
    assert table["unique_tokens"] == len({t for c in captions for t in caption_tokens(c)})
    assert table["captions_with_masked_names"] == 1
    assert dict(table["top_words"])["红色"] == 4
    assert NAME_MASK not in dict(table["top_words"])


def test_empty_corpus_has_zero_statistics():
    table = CaptionStats().table()
    assert table["pairs"] == 0 and table["tokens_per_caption"] == {"mean": 0.0, "std": 0.0, "median": 0.0}


def _stats_dir(tmp_path, words):
    (tmp_path / "stats.json").write_text(json.dumps({"top_words": words}), encoding="utf-8")
    return str(tmp_path)


def test_no_font_is_a_clear_message_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setattr(stats_module, "find_cjk_font", lambda: None)
    messages = []
    assert filter_job.render_word_cloud(_stats_dir(tmp_path, [["猫咪", 3]]), None, messages.append) is None
    assert "--font" in messages[0] and "fonts-wqy-microhei" in messages[0]
    assert not (tmp_path / "wordcloud.png").exists()


def test_word_cloud_is_drawn_with_a_system_font(tmp_path):
    font = stats_module.find_cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (CI installs fonts-wqy-microhei)")
    path = filter_job.render_word_cloud(_stats_dir(tmp_path, [["猫咪", 3], ["背景", 5]]), font, lambda m: None)
    assert path and (tmp_path / "wordcloud.png").stat().st_size > 1000


def test_a_missing_font_file_fails_before_the_job(tmp_path, capsys):
    code = filter_job.main(["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--font", "/no/such.ttf"])
    assert code == 2 and "/no/such.ttf" in capsys.readouterr().err
