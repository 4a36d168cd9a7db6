"""Sensitive words: the contract, recall per category, false positives on tricky captions."""

import importlib.resources

import pytest

from filters.sensitive import SensitiveWordMatcher
from filters.wordlists import parse_word_list

# Captions that must be hit: each category of the default list, in ordinary sentences.
HITS = {
    "pornography": ["免费色情视频在线看", "同城约炮交友", "裸聊视频加微信", "成人电影下载", "招嫖小卡片"],
    "gambling": ["网络赌博平台注册送彩金", "百家乐技巧", "六合彩开奖结果", "澳门赌场线上开户", "时时彩计划"],
    "drugs": ["出售冰毒", "海洛因包装袋", "大麻种子出售", "摇头丸批发", "K粉价格"],
    "weapons": ["枪支弹药出售", "仿真枪网购", "自制炸弹教程", "雷管炸药", "管制刀具军刺"],
    "fraud": ["代开发票联系我", "办假证刻章", "信用卡套现秒到", "网络诈骗团伙", "裸贷借款"],
    "violence": ["街头砍人视频", "血腥碎尸现场", "恐怖袭击画面", "买凶杀人", "虐杀小猫视频"],
}
# Innocent captions that contain a listed string or sit close to one.
INNOCENT = [
    "暖色情调的客厅装修", "特色情侣装", "蓝色情人节海报", "金色情缘婚纱摄影", "景色情景交融",
    "凉拌蛋黄片", "姜黄片泡水", "中药大黄片", "大麻花天津特产", "遇到大麻烦了", "大麻袋装土豆",
    "电钻手枪钻", "玩具手枪儿童", "自行车打气枪", "杀人鲸表演", "血腥玛丽鸡尾酒", "鸦片战争博物馆",
    "现代考古发现", "年代考证", "狼人杀游戏", "杀人游戏卡牌", "赌气不说话", "博物馆彩陶", "炸酱面",
    "冰糖雪梨", "毒蘑菇科普", "刀削面", "雷阵雨天气", "射箭比赛", "枪乌贼料理", "麻辣香锅",
]


@pytest.mark.parametrize("category", sorted(HITS))
def test_recall_per_category(category):
    matcher = SensitiveWordMatcher.default()
    missed = [c for c in HITS[category] if not matcher.find(c)]
    assert not missed


def test_no_false_positives_on_tricky_innocent_captions():
    matcher = SensitiveWordMatcher.default()
    hits = {c: matcher.find(c) for c in INNOCENT}
    assert {c: h for c, h in hits.items() if h} == {}


def test_find_returns_each_word_once_in_order():
    matcher = SensitiveWordMatcher(["赌博", "冰毒"])
    assert matcher.find("冰毒和赌博，还有冰毒") == ["冰毒", "赌博"]
    assert matcher.find("一只猫") == []
    assert matcher.find("") == []


def test_allow_list_only_covers_hits_inside_the_allowed_phrase():
    matcher = SensitiveWordMatcher(["色情"], allow=["暖色情调"])
    assert matcher.find("暖色情调") == []
    assert matcher.find("暖色情调，色情网站") == ["色情"]


def test_matching_folds_width_and_case_and_answers_with_the_entry_as_given():
    matcher = SensitiveWordMatcher(["porn", "冰毒", "XXX视频"])
    assert matcher.find("PORN 视频") == ["porn"]
    assert matcher.find("ｐｏｒｎ") == ["porn"]
    assert matcher.find("免费xxx视频") == ["XXX视频"]


def test_a_single_string_is_not_a_word_list():
    with pytest.raises(TypeError):
        SensitiveWordMatcher("赌博")


def test_a_listed_word_in_the_allow_list_stays_listed():
    assert SensitiveWordMatcher(["赌博"], allow=["赌博"]).find("赌博") == ["赌博"]


def test_empty_word_list_is_an_error():
    with pytest.raises(ValueError):
        SensitiveWordMatcher([])


def test_lists_from_files_replace_or_extend(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# mine\n榴莲\n\n", encoding="utf-8")
    allow = tmp_path / "allow.txt"
    allow.write_text("榴莲酥\n", encoding="utf-8")
    replaced = SensitiveWordMatcher.from_files([str(words)], [str(allow)])
    assert replaced.find("榴莲") == ["榴莲"] and replaced.find("榴莲酥") == [] and replaced.find("冰毒") == []
    extended = SensitiveWordMatcher.from_files(extra_words=[str(words)])
    assert extended.find("榴莲") == ["榴莲"] and extended.find("冰毒") == ["冰毒"]


def test_default_lists_ship_with_the_package():
    data = importlib.resources.files("filters").joinpath("data")
    for name in ("sensitive_words.txt", "sensitive_allow.txt", "surnames.txt", "person_names.txt",
                 "non_person_names.txt", "minority_syllables.txt", "transliteration_chars.txt"):
        assert parse_word_list(data.joinpath(name).read_text(encoding="utf-8").splitlines())


def test_setup_cfg_installs_the_data_files():
    import configparser
    import pathlib

    config = configparser.ConfigParser()
    config.read(pathlib.Path(__file__).resolve().parents[2] / "setup.cfg")
    shipped = config["options.package_data"]["filters"]
    assert "data/*.txt" in shipped and "data/*.tsv" in shipped  # the word lists, the name model


# --------------------------------------------------------------------------------------------
# Hidden spellings, cues and contexts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("caption", [
    "色 情 视 频 在线看", "色*情*视频", "色-情 网站", "色·情", "網絡賭博 平台", "出售 冰毒 貨到付款",
    "K_粉 价格", "a*v*女*优 写真", "ｘｘｘ视频",
])
def test_spaced_symbol_separated_and_traditional_spellings_are_found(caption):
    assert SensitiveWordMatcher.default().find(caption)


def test_the_folded_form_is_simplified_without_separators_between_han():
    from filters.sensitive import normalise_for_matching

    assert normalise_for_matching("賭 博*平臺") == "赌博平台"
    assert normalise_for_matching("Nike 跑步鞋 size 42") == "nike 跑步鞋 size 42"  # spaces next to Latin stay


def test_variants_count_only_next_to_a_spam_cue():
    matcher = SensitiveWordMatcher.default()
    assert matcher.find("se情 视频 加微信 abc123") == ["se情"]
    assert matcher.find("bjl 技巧 QQ 12345678")
    assert matcher.find("溜冰 冰壶 价格 300元")
    assert matcher.find("溜冰 场 儿童") == [] and matcher.find("冰壶 比赛 冬奥会") == []
    assert matcher.find("上门服务 空调维修") == []  # 上门 is a cue, but not for the variant it is part of


def test_education_and_news_contexts_excuse_words_only_without_a_cue():
    matcher = SensitiveWordMatcher.default()
    for caption in ("禁毒 宣传 海报", "毒品的危害 手抄报", "警方 破获 特大 贩毒案", "反诈 宣传 网络赌博"):
        assert matcher.find(caption) == [], caption
    assert matcher.find("禁毒 宣传 冰毒 出售 加微信")  # a cue voids the excuse


def test_the_lists_can_switch_the_new_mechanisms_off():
    matcher = SensitiveWordMatcher(["冰毒"], variants=(), cues=(), contexts=())
    assert matcher.find("禁毒 宣传 冰毒") == ["冰毒"]
    assert matcher.find("bing毒 加微信") == []


def test_benchmark_set_meets_the_targets_on_both_splits():
    from benchmarks import sensitive_words as bench

    matcher = SensitiveWordMatcher.default()
    scores = bench.score(bench.load(), lambda text: bool(matcher.find(text)))
    for split in ("dev", "heldout"):
        total = scores[(split, "all")]
        assert total.drops >= 100 and total.keeps >= 100
        assert total.recall >= 0.90, (split, total)
        assert total.false_drop_rate <= 0.05, (split, total)


def test_the_evaluation_split_is_the_fixed_rule():
    from benchmarks import sensitive_words as bench

    rows = bench.load()
    assert sum(r.drop for r in rows) >= 300 and sum(not r.drop for r in rows) >= 300
    assert [r.split for r in rows[:5]] == ["dev", "heldout", "dev", "heldout", "dev"]


def test_a_word_list_that_is_not_utf8_names_the_file_and_line():
    from filters.wordlists import WordListError, decode_word_list

    with pytest.raises(WordListError, match=r"words\.txt: not UTF-8 text \(line 2"):
        decode_word_list("赌博\n".encode() + b"\xff\xfe\n", "words.txt")


def test_extra_files_extend_the_default_allow_list_and_the_default_stays(tmp_path):
    extra = tmp_path / "allow.txt"
    extra.write_text("冰毒猫\n", encoding="utf-8")
    assert SensitiveWordMatcher.default().find("一只冰毒猫") == ["冰毒"]
    matcher = SensitiveWordMatcher.from_files(extra_allow=[str(extra)])
    assert matcher.find("一只冰毒猫") == []                   # the user's phrase
    assert matcher.find("暖色情调的客厅") == []               # the packaged allow-list still applies
    assert matcher.find("冰毒麻将馆") == ["冰毒"]
    assert SensitiveWordMatcher.from_files().find("暖色情调的客厅") == []


def test_a_variant_counts_next_to_a_cue_unless_an_allowed_phrase_holds_it():
    # Lists of our own, in none of the packaged ones: only these can give the answers below.
    matcher = SensitiveWordMatcher(["赌博"], allow=["榴莲酥"], variants=["榴莲"], cues=["莲子"], contexts=[])
    assert matcher.find("榴莲 莲子") == ["榴莲"]
    assert matcher.find("莲子榴莲") == ["榴莲"]          # a cue right before the variant
    assert matcher.find("榴莲酥 莲子") == []             # inside an allowed phrase
    assert matcher.find("榴莲") == []                    # no cue
    assert matcher.find("榴莲子") == []                  # a cue sharing a character is not elsewhere


def test_entries_that_fold_to_nothing_are_dropped():
    assert SensitiveWordMatcher(["赌博"], allow=["  ", "赌博机", "\u3000"]).allow == ["赌博机"]


def test_misuse_is_refused_with_a_clear_message():
    with pytest.raises(TypeError, match="^word lists are iterables of strings, not one string$"):
        SensitiveWordMatcher("赌博")
    with pytest.raises(ValueError, match="^SensitiveWordMatcher needs at least one word$"):
        SensitiveWordMatcher(["  "])
