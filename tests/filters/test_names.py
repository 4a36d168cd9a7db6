"""Person-name masking: the contract, and precision/recall on our own caption set."""

import collections
import dataclasses

import pytest

from benchmarks import name_masking as name_set
from filters.contract import NAME_MASK
from filters.names import PersonNameMasker, mask_person_names

CAPTIONS = name_set.load()


def test_caption_set_is_large_varied_and_half_names():
    assert len(CAPTIONS) >= 150
    domains = collections.Counter(c.domain for c in CAPTIONS)
    assert {"news", "celebrity", "sport", "product", "scenery", "decor", "food", "animal"} <= set(domains)
    with_names = sum(bool(c.spans) for c in CAPTIONS)
    assert 0.35 <= with_names / len(CAPTIONS) <= 0.65
    heldout = [c for c in CAPTIONS if c.split == "heldout"]
    assert len(heldout) >= 50 and sum(bool(c.spans) for c in heldout) >= 20


def test_caption_set_holds_the_hard_cases():
    """Names jieba's dictionary lacks, and non-names that jieba tags nr."""
    import jieba
    import jieba.posseg

    jieba.initialize()
    unknown_names = [c.text[a:b] for c in CAPTIONS for a, b in c.spans if c.text[a:b] not in jieba.dt.FREQ]
    assert len(unknown_names) >= 15
    nr_not_names = 0
    for caption in CAPTIONS:
        inside = {i for a, b in caption.spans for i in range(a, b)}
        offset = 0
        for pair in jieba.posseg.cut(caption.text):
            if pair.flag == "nr" and not set(range(offset, offset + len(pair.word))) & inside:
                nr_not_names += 1
            offset += len(pair.word)
    assert nr_not_names >= 20


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_precision_and_recall_span_by_span(split):
    part = [c for c in CAPTIONS if c.split == split]
    score = name_set.score(part, PersonNameMasker().find)
    assert score.precision >= 0.90, score
    assert score.recall >= 0.90, score


FRESH = name_set.load(name_set.FRESH)


def test_fresh_set_holds_only_names_the_gazetteer_lacks():
    from filters.wordlists import packaged_word_list as _packaged_entries

    assert len(FRESH) >= 120
    known = set(_packaged_entries("person_names.txt"))
    names = [c.text[a:b] for c in FRESH for a, b in c.spans]
    assert names and not set(names) & known
    assert 0.35 <= sum(bool(c.spans) for c in FRESH) / len(FRESH) <= 0.65
    assert [c.split for c in FRESH] == ["heldout" if i % 5 in (1, 3) else "dev" for i in range(len(FRESH))]


# Measured floors, a little under the numbers reached (docs/benchmarks.md, "Person-name masking"):
# the fresh held-out split is scored only, and its precision is below 0.90 -- brands and fictional
# characters that look like ordinary names are what the pattern still gets wrong without a list
# entry.
@pytest.mark.parametrize("split, min_precision, min_recall", [
    ("dev", 0.90, 0.97),      # reached 1.000 / 1.000
    ("heldout", 0.80, 0.88),  # reached 0.833 / 0.909
])
def test_fresh_set_precision_and_recall(split, min_precision, min_recall):
    part = [c for c in FRESH if c.split == split]
    score = name_set.score(part, PersonNameMasker().find)
    assert score.precision >= min_precision, score
    assert score.recall >= min_recall, score


@pytest.mark.parametrize("split, min_precision, min_recall", [
    ("dev", 0.97, 0.72),      # reached 1.000 / 0.746
    ("heldout", 0.93, 0.75),  # reached 0.962 / 0.781
])
def test_original_set_without_the_gazetteer(split, min_precision, min_recall):
    part = [c for c in CAPTIONS if c.split == split]
    score = name_set.score(part, PersonNameMasker(known_names=[]).find)
    assert score.precision >= min_precision, score
    assert score.recall >= min_recall, score


@pytest.mark.parametrize("text, expected", [
    ("记者李晓峰在灾区现场报道", "记者<人名>在灾区现场报道"),
    ("王菲和那英同台演出", "<人名>和<人名>同台演出"),
    ("泰勒·斯威夫特巡回演唱会", "<人名>巡回演唱会"),
    ("欧阳子涵展示的一个红色方块", "<人名>展示的一个红色方块"),
    ("李宁运动鞋男款", "李宁运动鞋男款"),        # a brand, not a person
    ("孙悟空大闹天宫", "孙悟空大闹天宫"),          # a fictional character
    ("明星同款墨镜", "明星同款墨镜"),              # jieba tags 明星 nr
    ("金色阳光下的汉白玉栏杆", "金色阳光下的汉白玉栏杆"),
    ("", ""),
    ("no chinese here", "no chinese here"),
    ("奶奶包饺子", "奶奶包饺子"),                  # a kinship word is no title before a name
    ("刘芳家的小狗", "<人名>家的小狗"),            # 家 is the family's home, not a given name
    ("周家庄的麦田", "周家庄的麦田"),              # a village named after a family
    ("张秀英奶奶在包粽子", "<人名>奶奶在包粽子"),
])
def test_mask_person_names(text, expected):
    assert mask_person_names(text) == expected


def test_mask_is_idempotent_and_masks_every_name():
    text = "宋晓楠与韩冬梅的婚礼现场"
    once = mask_person_names(text)
    assert once == f"{NAME_MASK}与{NAME_MASK}的婚礼现场"
    assert mask_person_names(once) == once


def test_custom_lists_replace_the_packaged_ones():
    masker = PersonNameMasker(known_names=["阿凡提"], non_names=["王老师傅"])
    assert masker.mask("阿凡提的故事") == f"{NAME_MASK}的故事"
    assert masker.mask("王老师傅修车") == "王老师傅修车"


# --------------------------------------------------------------------------------------------
# Minority names, dotted transliterations, titles in 《》 (the blind set's dev findings)
# --------------------------------------------------------------------------------------------


def test_minority_names_are_runs_of_name_syllables():
    from filters.names import default_masker

    find = default_masker().find
    for caption, name in (("选手扎西顿珠夺得冠军", "扎西顿珠"), ("阿依古丽机场街拍", "阿依古丽"),
                          ("巴特尔演唱会现场", "巴特尔"), ("主播次仁卓玛直播截图", "次仁卓玛")):
        assert [caption[a:b] for a, b in find(caption)] == [name], caption
    for caption in ("乌兰察布 草原 风光", "格桑花 盛开", "扎西德勒 藏族 祝福"):
        assert find(caption) == [], caption


def test_a_dotted_transliteration_wins_over_a_short_list_entry():
    from filters.names import default_masker

    find = default_masker().find
    for caption, name in (("科比·布莱恩特壁纸", "科比·布莱恩特"), ("列夫·托尔斯泰画像", "列夫·托尔斯泰"),
                          ("买买提·艾力当选代表", "买买提·艾力")):
        assert [caption[a:b] for a, b in find(caption)] == [name], caption


def test_titles_in_book_brackets_are_never_masked():
    from filters.names import mask_person_names

    assert mask_person_names("《杜拉拉升职记》手游 角色立绘") == "《杜拉拉升职记》手游 角色立绘"
    assert mask_person_names("《孔乙己》读后感") == "《孔乙己》读后感"


def test_blind_set_split_is_the_fixed_rule_and_large_enough():
    from benchmarks.name_masking import load_blind

    captions = load_blind()
    assert len(captions) >= 1000
    assert [c.split for c in captions[:5]] == ["dev", "heldout", "dev", "heldout", "dev"]


def test_natural_set_is_hand_written_split_every_other_line_and_half_names():
    captions = name_set.load_natural()
    assert len(captions) >= 800
    assert [c.split for c in captions[:4]] == ["dev", "heldout", "dev", "heldout"]
    assert len({c.text for c in captions}) == len(captions)
    with_names = sum(bool(c.spans) for c in captions)
    assert 0.45 <= with_names / len(captions) <= 0.65
    kinds = {c.domain.split("/")[1] for c in captions}
    for kind in ("ordinary", "famous", "historic", "transliterated", "minority", "nonperson:place",
                 "nonperson:brand", "nonperson:dish", "nonperson:fictional", "nonperson:idiom"):
        assert kind in kinds
    # Hong Kong and Taiwan captions in their own script
    from filters.text import to_simplified

    assert sum(to_simplified(c.text) != c.text for c in captions) >= 40


def test_unseen_set_is_hand_written_split_every_other_line_and_new():
    captions = name_set.load_unseen()
    assert len(captions) == 798
    assert [c.split for c in captions[:4]] == ["dev", "heldout", "dev", "heldout"]
    texts = {c.text for c in captions}
    assert len(texts) == len(captions)
    others = [name_set.load(name_set.DATA), FRESH, name_set.load_blind(), name_set.load_natural()]
    assert not texts & {c.text for other in others for c in other}
    groups = {c.domain.split("/")[1].split("+")[0] for c in captions}
    assert {"ordinary", "famous", "historic", "transliterated", "minority", "nonperson:brand"} <= groups
    assert all(bool(c.spans) != c.domain.split("/")[1].startswith("nonperson") for c in captions)


def test_traditional_script_is_masked_like_simplified_and_keeps_its_script():
    assert mask_person_names("記者張有才在現場採訪") == f"記者{NAME_MASK}在現場採訪"
    assert mask_person_names("周杰倫演唱會 門票") == f"{NAME_MASK}演唱會 門票"
    assert mask_person_names("記者張有才在現場採訪").replace(NAME_MASK, "") == "記者在現場採訪"


def test_a_name_inside_a_place_name_is_part_of_the_place():
    masker = PersonNameMasker(non_names=[])
    assert masker.find("鲁迅故居 参观") == []
    assert masker.find("黄兴路步行街 夜景") == []
    assert masker.find("莱昂纳多·迪卡普里奥故居") == []  # nor the list name inside the dotted one
    assert masker.find("记者王建华路过公园") == [(2, 5)]  # 路 starts 路过: no place's name
    assert masker.find("鲁迅在北京") == [(0, 2)]


@pytest.mark.parametrize("kwargs, message", [
    ({"common_word_freq": -1}, "counts must be >= 0"),
    ({"given_char_min_count": -1, "given_char_common_count": 0}, "counts must be >= 0"),
    ({"given_char_min_count": 5, "given_char_common_count": 4},
     "given_char_common_count must be >= given_char_min_count"),
    ({"decision": "tagger"}, "decision must be one of model, rules"),
    ({"model_threshold": 0.0}, "model_threshold must be between 0 and 1"),
    ({"model_threshold": 1.0}, "model_threshold must be between 0 and 1"),
])
def test_config_refuses_negative_counts_and_crossed_bounds(kwargs, message):
    from filters.names import NameMaskerConfig

    with pytest.raises(ValueError, match=f"^{message}$"):
        NameMaskerConfig(**kwargs)


def test_the_model_decides_on_pattern_candidates_and_the_lists_still_hold():
    from filters.name_model import NameModel
    from filters.names import NameMaskerConfig

    caption = "记者李晓峰和王菲在灾区"  # 李晓峰 from the pattern, 王菲 from the gazetteer
    never = PersonNameMasker(model=NameModel({"BIAS": -30.0}))
    always = PersonNameMasker(model=NameModel({"BIAS": 30.0}))
    rules = PersonNameMasker(NameMaskerConfig(decision="rules"))
    assert rules.model is None and PersonNameMasker().model is NameModel.packaged()
    assert [caption[a:b] for a, b in never.find(caption)] == ["王菲"]
    assert [caption[a:b] for a, b in rules.find(caption)] == ["李晓峰", "王菲"]
    assert [caption[a:b] for a, b in PersonNameMasker().find(caption)] == ["李晓峰", "王菲"]
    # every candidate passes: the most probable first, then the longest, so 李晓峰 over 李晓
    assert [caption[a:b] for a, b in always.find(caption)][:2] == ["李晓峰", "王菲"]
    # the threshold is the model's: a model that says 0.6 keeps at 0.5, drops at 0.7
    sixty = NameModel({"BIAS": 0.405465})
    assert PersonNameMasker(NameMaskerConfig(model_threshold=0.5), known_names=[], model=sixty).find("记者李晓峰")
    assert not PersonNameMasker(NameMaskerConfig(model_threshold=0.7), known_names=[], model=sixty).find("记者李晓峰")


def test_training_examples_are_the_candidates_find_decides_on_with_their_labels():
    masker = PersonNameMasker(known_names=[], non_names=[])
    examples = masker.training_examples("记者李晓峰在灾区", [(2, 5)])
    labelled = {next(f for f in features if f.startswith("SPAN=")): label for features, label in examples}
    assert labelled["SPAN=李晓峰"] == 1 and labelled["SPAN=李晓"] == 0
    assert sum(label for _, label in examples) == 1
    first = next(features for features, label in examples if label)
    assert {"BIAS", "E=title_before", "L2=记者", "R1=在", "GN=晓峰"} <= set(first)
    # traditional script is folded first, as in find
    assert masker.training_examples("記者李曉峰在災區", [(2, 5)])[0][0] == examples[0][0]


def test_config_accepts_zero_counts_and_equal_bounds():
    from filters.names import NameMaskerConfig

    config = NameMaskerConfig(common_word_freq=0, given_char_min_count=0, given_char_common_count=0)
    assert config.common_word_freq == 0
    assert NameMaskerConfig(given_char_min_count=7, given_char_common_count=7).given_char_common_count == 7


# --------------------------------------------------------------------------------------------
# The measured quality, exactly: the numbers the documentation reports
# --------------------------------------------------------------------------------------------

# (names found with exact spans, spans found, names in the set) per set, split and masker (the
# default, which decides with the learned model; without the gazetteer; with the rule decision), as
# reported in docs/benchmarks.md (Person-name masking) and docs/data-quality.md (Person names).
# The floors above let the masker drift a little; these do not, so that a change of the masker
# that moves any decision on the labelled sets is seen, checked and written into the docs.
MEASURED = {
    ("original", "dev", "gazetteer"): (66, 66, 66),
    ("original", "heldout", "gazetteer"): (32, 32, 32),
    ("original", "dev", "no gazetteer"): (63, 63, 66),
    ("original", "heldout", "no gazetteer"): (29, 29, 32),
    ("fresh", "dev", "gazetteer"): (45, 45, 45),
    ("fresh", "heldout", "gazetteer"): (20, 24, 22),
    ("fresh", "dev", "no gazetteer"): (45, 45, 45),
    ("fresh", "heldout", "no gazetteer"): (21, 24, 22),
    ("blind", "dev", "gazetteer"): (473, 474, 473),
    ("blind", "heldout", "gazetteer"): (295, 297, 295),
    ("blind", "dev", "rules"): (469, 471, 473),
    ("blind", "heldout", "rules"): (292, 296, 295),
    ("natural", "dev", "gazetteer"): (247, 250, 259),
    ("natural", "heldout", "gazetteer"): (228, 243, 253),
    ("natural", "dev", "rules"): (237, 242, 259),
    ("natural", "heldout", "rules"): (214, 234, 253),
    ("unseen", "dev", "gazetteer"): (223, 249, 245),
    ("unseen", "heldout", "gazetteer"): (245, 258, 263),
    ("unseen", "dev", "rules"): (210, 243, 245),
    ("unseen", "heldout", "rules"): (226, 249, 263),
}


def test_the_measured_quality_is_the_documented_one():
    from filters.names import NameMaskerConfig

    sets = {"original": CAPTIONS, "fresh": FRESH, "blind": name_set.load_blind(), "natural": name_set.load_natural(),
            "unseen": name_set.load_unseen()}
    finders = {"gazetteer": PersonNameMasker().find, "no gazetteer": PersonNameMasker(known_names=[]).find,
               "rules": PersonNameMasker(NameMaskerConfig(decision="rules")).find}
    measured = {}
    for (set_name, split, lists) in MEASURED:
        score = name_set.score([c for c in sets[set_name] if c.split == split], finders[lists])
        measured[(set_name, split, lists)] = (score.true_positives, score.predicted, score.gold)
    assert measured == MEASURED


def test_name_ratios_compare_a_characters_share_in_names_with_its_share_in_the_dictionary():
    """log P(char | inside a name) from jieba's `nr` emission table (the better of middle and last
    position) minus log P(char) from the dictionary's counts, with one added to each count."""
    import math

    from jieba.posseg.prob_emit import P as emit

    from filters.names import MIN_EMISSION_LOG, _name_ratios

    middle, last = emit[("M", "nr")], emit[("E", "nr")]

    def in_name(char):
        return max(middle.get(char, -50.0), last.get(char, -50.0))

    ratios = _name_ratios({"婷婷": 3, "血": 4, "涛": 3})  # character counts 婷 6, 血 4, 涛 3: 13 in all
    assert ratios["婷"] == pytest.approx(in_name("婷") - math.log(7 / 13))
    assert ratios["涛"] == pytest.approx(in_name("涛") - math.log(4 / 13))
    assert ratios["轩"] == pytest.approx(in_name("轩") - math.log(1 / 13))  # not in the dictionary
    only_middle = next(c for c in sorted(middle) if c not in last and middle[c] >= MIN_EMISSION_LOG)
    only_last = next(c for c in sorted(last) if c not in middle and last[c] >= MIN_EMISSION_LOG)
    assert ratios[only_middle] == pytest.approx(middle[only_middle] - math.log(1 / 13))
    assert ratios[only_last] == pytest.approx(last[only_last] - math.log(1 / 13))
    # Characters the tagger saw only once or twice give no evidence either way; 饺 it never saw.
    trusted = {c for c in set(middle) | set(last) if in_name(c) >= MIN_EMISSION_LOG}
    assert set(ratios) == trusted and len(trusted) < len(set(middle) | set(last))
    assert "饺" not in ratios
    # An empty dictionary: every character is as likely as any other outside names.
    assert _name_ratios({})["婷"] == pytest.approx(in_name("婷"))


# --------------------------------------------------------------------------------------------
# The layers one by one
# --------------------------------------------------------------------------------------------


def test_spans_overlapping_a_range_are_found_however_far_back_they_start():
    from filters.names import _Spans

    spans = _Spans([(5, 9), (0, 2), (10, 11)])
    assert list(spans.overlapping(6, 7)) == [(5, 9)]        # inside a long span that starts earlier
    assert list(spans.overlapping(2, 5)) == []              # touching is not overlapping
    assert list(spans.overlapping(1, 6)) == [(0, 2), (5, 9)]
    assert list(spans.overlapping(8, 11)) == [(5, 9), (10, 11)]
    assert list(_Spans([]).overlapping(0, 5)) == []


def test_dotted_names_need_transliteration_characters_on_both_sides_and_chains_join():
    from filters.names import default_masker

    dotted = default_masker()._dotted_names
    assert dotted("莱昂纳多·迪卡普里奥主演") == [(0, 10)]
    assert dotted("莱昂纳多·迪卡普里奥·某某") == [(0, 10)]  # 某 is no transliteration character
    assert dotted("阿·丽 和 安·娜") == [(0, 3), (6, 9)]
    assert dotted("阿·") == [] and dotted("·丽") == [] and dotted("没有圆点") == []
    assert dotted("让-保罗•萨特") == [(2, 7)]  # another dot character; `-` is neither a dot nor a transliteration


def test_a_dotted_name_starts_on_a_token_and_stops_at_a_title_before_it_and_a_cue_after_it():
    from filters.names import TRANSLITERATION_CHARS, default_masker

    dotted = default_masker()._dotted_names
    # every character of 嘉宾, 特儿 and 博士 may spell a name too: the words around the run decide
    assert set("嘉宾特儿博士门") <= TRANSLITERATION_CHARS
    assert dotted("嘉宾安娜·卡列尼娜") == [(2, 9)]               # the title 嘉宾 ends before 安娜
    assert dotted("模特儿安娜·卡列尼娜") == [(3, 10)]            # 特儿 is no token's start
    assert dotted("安娜·卡列尼娜博士") == [(0, 7)]               # the cue 博士 follows
    assert dotted("罗伯特·卡佩罗门将") == [(0, 7)]
    assert dotted("买买提·艾力当选代表") == [(0, 6)]
    assert dotted("莱昂纳多·迪卡普里奥生日快乐") == [(0, 10)]
    assert dotted("歌手莎拉·布莱曼演唱") == [(2, 8)]


def test_minority_syllables_make_a_name_as_a_run_or_as_one_long_syllable():
    from filters.names import default_masker

    minority = default_masker()._minority_names
    assert minority("扎西顿珠和阿依古丽") == [(0, 4), (5, 9)]
    assert minority("巴特尔") == [(0, 3)]
    assert minority("乌兰") == [] and minority("格桑花开") == []


def test_the_tokens_passed_in_are_used_only_when_they_spell_the_caption():
    from filters.names import default_masker

    masker = default_masker()
    text = "记者李晓峰在灾区现场报道"
    good = ["记者", "李晓峰", "在", "灾区", "现场", "报道"]
    assert masker.find(text, tokens=good) == masker.find(text) == [(2, 5)]
    assert masker.find(text, tokens=["记者", "李晓峰"]) == [(2, 5)]  # not the caption: segmented again
    assert masker.mask(text, tokens=good) == "记者<人名>在灾区现场报道"


def test_mask_keeps_the_text_around_each_name():
    assert mask_person_names("王菲") == NAME_MASK
    assert mask_person_names("他说王菲很好") == f"他说{NAME_MASK}很好"
    assert mask_person_names("记者李晓峰、王菲和那英") == f"记者{NAME_MASK}、{NAME_MASK}和{NAME_MASK}"


def test_empty_lists_and_a_custom_surname_list():
    masker = PersonNameMasker(known_names=[], non_names=[])
    assert masker.mask("记者李晓峰在现场") == f"记者{NAME_MASK}在现场"
    only_ouyang = PersonNameMasker(surnames=["欧阳"], known_names=[])
    assert only_ouyang.find("记者欧阳晓东和李晓峰") == [(2, 6)]  # 李 is no surname of this list


def test_a_chain_of_dotted_parts_is_one_name():
    from filters.names import PersonNameMasker

    dotted = PersonNameMasker()._dotted_names
    assert dotted("莱昂纳多·迪·卡普里奥") == [(0, 11)]
    assert dotted("阿·尔·法和伊·万") == [(0, 5), (6, 9)]


@pytest.mark.parametrize("caption, name", [("记者王芳", "王芳"), ("合影的是记者王芳", "王芳"), ("主持人张三", "张三")])
def test_a_name_that_ends_the_caption_is_found_by_the_pattern(caption, name):
    masker = PersonNameMasker(known_names=[])
    assert [caption[a:b] for a, b in masker.find(caption)] == [name]


# --------------------------------------------------------------------------------------------
# Session 3: function characters in given names, list names as prefixes, person-only cues
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("caption, name", [
    ("记者张有才在现场采访", "张有才"),
    ("班主任刘可欣带学生春游", "刘可欣"),
    ("村支书李和平查看麦田", "李和平"),
    ("外卖员赵中华冒雨送餐", "赵中华"),
    ("护士宋晓月照顾病人", "宋晓月"),
    ("网格员俞可上门登记", "俞可"),
    ("收费员黄金花坚守岗位", "黄金花"),  # a role word ending in 员 is a title
])
def test_a_function_character_that_opens_given_names_is_no_veto(caption, name):
    """And a one-character given name of such a character after a title (网格员俞可)."""
    start = caption.index(name)
    assert PersonNameMasker(known_names=[]).find(caption) == [(start, start + len(name))]


@pytest.mark.parametrize("caption, found", [
    ("李明和王芳在公园合影", ["李明", "王芳"]),  # 和 is a conjunction here, not 李明和
    ("有可能下雨", []),
    ("和平鸽图片", []),
])
def test_function_characters_still_count_against_a_name(caption, found):
    assert [caption[a:b] for a, b in PersonNameMasker(known_names=[]).find(caption)] == found


def test_a_stronger_longer_pattern_name_wins_over_a_list_name_it_starts_with():
    masker = PersonNameMasker(known_names=["蔡明"], non_names=[])
    assert masker.find("蔡明辉：坚持就是胜利") == [(0, 3)]
    assert masker.find("蔡明演小品") == [(0, 2)]  # 蔡明演 crosses a token: the list name stands
    assert masker.find("小品演员蔡明") == [(4, 6)]
    # or where the segmenter reads the longer name as one token: 中山大学|学生|孙文轩|获奖
    sun = PersonNameMasker(known_names=["孙文"], non_names=[])
    assert sun.find("中山大学学生孙文轩获奖") == [(6, 9)]
    assert sun.find("孙文画像") == [(0, 2)]


def test_person_only_cues_carry_a_name_that_ordinary_cues_do_not():
    from filters.names import NameMaskerConfig

    masker = PersonNameMasker(NameMaskerConfig(decision="rules"), known_names=[], non_names=[])
    assert masker.find("丁宇航代言 新款手机") == [(0, 3)]
    assert masker.find("徐春花同款连衣裙") == [(0, 3)]
    assert masker.config.person_cue_after > 0
    weaker = PersonNameMasker(dataclasses.replace(masker.config, person_cue_after=0.0), known_names=[], non_names=[])
    assert weaker.find("丁宇航代言 新款手机") == []
    learned = PersonNameMasker(known_names=[], non_names=[])  # the model reads the same evidence
    assert learned.find("丁宇航代言 新款手机") == [(0, 3)] and learned.find("徐春花同款连衣裙") == [(0, 3)]


@pytest.mark.parametrize("caption", [
    "家常西施舌做法", "说曹操曹操就到表情包", "皮卡丘手办", "成都武侯祠门票", "毛遂自荐的故事",
])
def test_packaged_non_person_list_covers_dishes_idioms_characters_and_places(caption):
    assert mask_person_names(caption) == caption
