"""Text rules: normalisation, the Chinese word count at 31/32, meaningless captions, frequency."""

import random

import jieba
import pytest

from filters.text import (
    TextConfig,
    check_length,
    count_chinese_words,
    has_han,
    is_frequent,
    is_meaningless_caption,
    normalise_caption,
)


def words(n):
    """A caption of exactly n Chinese words (each 红色 is one jieba token; spaces separate)."""
    return " ".join(["红色"] * n)


@pytest.mark.parametrize("text, expected", [
    ("  一只 \t\n 猫  ", "一只 猫"),
    ("ＡＢＣ１２３，猫", "ABC123,猫"),   # NFKC folds full-width forms
    ("猫\u3000狗", "猫 狗"),             # ideographic space is whitespace
    (None, ""),
    ("", ""),
])
def test_normalise_caption(text, expected):
    assert normalise_caption(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("", 0),
    ("000.jpg", 0),
    ("IMG_2033.JPG", 0),
    ("hello world 123", 0),
    ("一只猫", 2),                  # 一只 / 猫
    ("iPhone手机壳", 2),                # iPhone / 手机 / 壳,
    ("我爱北京天安门", 4),           # 我 / 爱 / 北京 / 天安门
    ("😀😀 可爱的猫咪 🐱", 3),
    ("繁體中文的標題", 4),
    (words(31), 31),
    (words(32), 32),
])
def test_count_chinese_words(text, expected):
    assert count_chinese_words(text) == expected


def test_count_agrees_with_jieba_on_examples():
    for text in ["一张白色背景的图片，画着三个红色圆形", "刘德华演唱会现场照片", "繁體中文的標題 mixed English 文字",
                 "𠮷𠮷野家的牛丼", "〇〇七电影㐀海报"]:  # characters outside jieba's Han class
        assert count_chinese_words(text) == count_chinese_words(text, cut=jieba.cut), text


def test_count_agrees_with_jieba_on_random_mixed_text():
    rng = random.Random(0)
    alphabet = list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说"
                    "产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制")
    alphabet += list("abcXYZ019 .-_#@%&+，。！？、《》😀🐱\u3000\n·繁體標題貓𠀀𠮷〇㐀")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 50))) for _ in range(800)]
    agree = sum(count_chinese_words(t) == count_chinese_words(t, cut=jieba.cut) for t in texts)
    assert agree / len(texts) >= 0.995


@pytest.mark.parametrize("n, expected", [(0, "text_length"), (1, None), (31, None), (32, "text_length")])
def test_length_rule_boundaries(n, expected):
    assert check_length(words(n)) == expected


def test_length_rule_on_a_100_kb_caption():
    assert check_length("猫" * 100_000) == "text_length"


@pytest.mark.parametrize("caption", [
    "000.jpg", "IMG_2033.JPG", "微信图片_20190101123456.jpg", "截图_20200202.png", "未命名图片-3.jpeg",
    "https://example.com/图片/1.jpg", "http://www.baidu.com", "www.example.cn/a/b.html",
    "d41d8cd98f00b204e9800998ecf8427e", "查看源网页", "展开全文", "图片", "高清图片", "未命名-1",
    "点击查看大图 IMG_1234", "DSC0001", "Screenshot_20210101-120000", "微信图片 1.jpg",
])
def test_meaningless_captions(caption):
    assert is_meaningless_caption(caption)


@pytest.mark.parametrize("caption", [
    "一只猫", "高清壁纸图片大全", "照片墙装饰", "北京天安门广场夜景", "iPhone 13 手机壳",
    "2022年北京冬奥会开幕式", "风景图片", "我家的猫 微信图片_1.jpg", "Nike 运动鞋 男款",
    # a domain or URL inside a title without spaces must not swallow the description around it
    "汽车之家autohome.com.cn宝马X5图片", "【hao123.com】上海外滩夜景", "来自sina.com.cn的新闻图片北京暴雨",
    "xihu.cn/杭州西湖美景", "https://t.cn/abc今日头条新闻", "www.jd.com购买正品手机壳",
])
def test_described_captions_are_not_meaningless(caption):
    assert not is_meaningless_caption(caption)


@pytest.mark.parametrize("count, expected", [(1, False), (10, False), (11, True), (1000, True)])
def test_frequency_threshold(count, expected):
    assert is_frequent(count) is expected


@pytest.mark.parametrize("kwargs", [
    {"min_chinese_words": -1}, {"max_chinese_words": 0, "min_chinese_words": 1}, {"max_occurrences": 0}])
def test_text_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        TextConfig(**kwargs)


@pytest.mark.parametrize("text, expected", [
    ("猫", True), ("iPhone 手机壳", True), ("〇", True), ("\U00020000", True),  # extension B
    ("abc 123", False), ("😀！？", False), ("", False), ("ｱｲｳ", False),
])
def test_has_han(text, expected):
    assert has_han(text) is expected


@pytest.mark.parametrize("kwargs, message", [
    ({"min_chinese_words": -1}, "min_chinese_words must be >= 0, got -1"),
    ({"max_chinese_words": 2, "min_chinese_words": 3}, r"max_chinese_words \(2\) is below min_chinese_words \(3\)"),
    ({"max_caption_chars": 0}, "max_caption_chars must be >= 1, got 0"),
    ({"max_occurrences": 0}, "max_occurrences must be >= 1, got 0"),
])
def test_text_config_errors_name_the_field_and_value(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        TextConfig(**kwargs)


def test_text_config_accepts_its_boundaries():
    config = TextConfig(min_chinese_words=0, max_chinese_words=0, max_caption_chars=1, max_occurrences=1)
    assert (config.min_chinese_words, config.max_caption_chars, config.max_occurrences) == (0, 1, 1)


def test_the_character_bound_is_inclusive():
    from filters.text import is_too_long

    assert not is_too_long("猫" * 512) and is_too_long("猫" * 513)
    assert check_length("猫" * 513) == "text_length"


def test_check_length_uses_the_config_and_the_segmenter_given():
    config = TextConfig(max_chinese_words=2)
    assert check_length("红色 红色", config) is None
    assert check_length("红色 红色 红色", config) == "text_length"
    # a segmenter that cuts every character: four Chinese words
    assert check_length("红色红色", config, cut=list) == "text_length"
    assert check_length("红色红色", config) is None


@pytest.mark.parametrize("caption", ["", "   ", "a" * 300, "https://" + "a" * 300, "x" * 201 + " 123"])
def test_blank_captions_and_long_ascii_runs_are_meaningless(caption):
    assert is_meaningless_caption(caption)


def test_to_simplified_maps_character_for_character_so_spans_carry_over():
    from filters.text import to_simplified

    assert to_simplified("記者張有才在現場採訪") == "记者张有才在现场采访"
    assert to_simplified("周杰倫演唱會 門票 2024") == "周杰伦演唱会 门票 2024"
    for text in ("記者張有才", "简体不变", "mixed 記 text", ""):
        assert len(to_simplified(text)) == len(text)
