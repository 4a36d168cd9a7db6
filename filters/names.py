"""Rule 4: replace each person's name in a caption with `<人名>`.

jieba's `nr` tag is not good enough on image captions: about half of what it tags `nr` is not a
name (明星, 阳光, 宫殿, 汉白玉, 卡其色, brands), and it misses names it has never seen. This
masker is its own algorithm, in four layers:

1. **Lists.** A gazetteer of well-known persons (names the pattern cannot find: transliterations,
   stage names, famous two-character names) and a list of name-like strings that are not persons
   (brands named after people, fictional characters, dishes, places, colour and scenery words).
   A non-person entry always wins.
2. **Transliterated names** joined by a middle dot (泰勒·斯威夫特): runs of transliteration
   characters (filters/data/transliteration_chars.txt) on both sides of `·`, from a token boundary
   to a title before or a cue after; they win over a shorter list entry inside them (科比 in
   科比·布莱恩特). **Minority names**: runs of Tibetan, Uyghur, Kazakh, Mongolian, Yi and Hui
   given-name elements (filters/data/minority_syllables.txt: 扎西 + 顿珠, 阿依 + 古丽, 巴特尔).
   Nothing inside a title in 《》 is a person (《杜拉拉升职记》).
3. **The surname pattern.** Every surname (compound first) followed by one or two given-name
   characters is a candidate, unless a given character is a function word (的, 在) or the
   "given name" is a form of address (王女士, 李总). Each candidate's evidence is weighed into a
   rule score. The evidence: a title before it (记者, 教练, 博主) or a cue
   (我叫, 和), a cue after it (院士, 主演, 在, 和), whether it lines up with the segmenter's token
   boundaries, whether it or its first two characters are a common word of jieba's dictionary
   (明星, 海洋, 金鱼缸), whether it ends in a head noun of things (桂花糕, 兰亭序), how often
   its characters occur in the given names of jieba's dictionary, how much likelier each is inside
   a name than in ordinary words (jieba's HMM `nr` emission table against the dictionary's
   character counts: 涛, 婷, 轩 for; 血, 饺 against), and, in a shop listing (礼盒, 旗舰店), whether
   anything cues it as a person at all (brands named like people: 吴裕泰, 谭木匠).
4. **The decision.** By default a learned model (filters/name_model.py, the packaged table trained
   by `python -m benchmarks.train_name_model` on labelled captions) reads the evidence and the
   rule score together with the characters of the candidate and around it, the segmenter's
   boundaries, jieba's dictionary and the overlapping candidates and list names, and keeps a
   candidate at a probability of at least `model_threshold`. `NameMaskerConfig(decision="rules")`
   keeps the rule decision instead: the score against `threshold`.

The precision and recall on the labelled caption sets are in docs/data-quality.md (Person names)
and docs/benchmarks.md (Person-name masking).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence

import ahocorasick
import rjieba

from filters.contract.vocabulary import NAME_MASK
from filters.name_model import NameModel
from filters.text import HAN_RE, to_simplified
from filters.wordlists import packaged_word_list

# Titles and roles that are followed by a name: 记者李晓峰, 教练何建平, 美食博主王刚.
TITLES_BEFORE = (
    "记者", "市长", "县长", "省长", "区长", "镇长", "村长", "书记", "支书", "主任", "局长", "部长", "发言人",
    "演员", "歌手", "导演", "主持人", "主播", "模特", "艺人", "偶像", "明星", "影星", "歌星", "球星", "巨星",
    "教练", "运动员", "选手", "名将", "冠军", "球员", "队员", "队长", "车手", "棋手", "拳王",
    "摄影师", "设计师", "建筑师", "工程师", "厨师", "主厨", "博主", "网红", "达人", "作者", "作家", "诗人",
    "画家", "书法家", "艺术家", "音乐家", "钢琴家", "歌唱家", "舞蹈家", "科学家", "专家", "学者", "院士",
    "教授", "老师", "校长", "医生", "护士", "饲养员", "兽医", "律师", "法官", "警官", "民警", "董事长",
    "总经理", "总裁", "创始人", "老板", "店主", "村民", "市民", "同学", "新郎", "新娘", "嘉宾", "志愿者",
    "代表", "委员", "班主任", "辅导员", "骑手", "快递员", "工人", "交警", "门将", "前锋", "后卫", "主帅",
    "裁判", "队医", "医师", "园长", "船长", "农民",
    # Trades, services and offices of news photos about ordinary people: 导游王芳, 保洁员刘桂兰.
    "导游", "司机", "保安", "保洁员", "保洁", "环卫工", "清洁工", "服务员", "售货员", "收银员", "营业员",
    "店长", "店员", "导购", "经理", "厂长", "主管", "会计", "技术员", "研究员", "讲师", "编辑", "主编",
    "编剧", "制片人", "通讯员", "评论员", "解说员", "乘务员", "空姐", "机长", "列车长", "辅警", "特警",
    "刑警", "警察", "消防员", "战士", "士兵", "军人", "老兵", "烈士", "劳模", "网友", "居民", "学生",
    "考生", "校友", "老乡", "渔民", "牧民", "大厨", "理发师", "化妆师", "咖啡师", "营养师", "程序员",
    "家长", "宝妈", "护工", "月嫂", "保姆", "护林员", "邮递员", "外卖员", "小哥", "护士长", "药师",
    "中医", "牙医", "法医", "检察官", "主席", "总统", "总理", "首相", "大使", "董事", "股东", "合伙人",
    "传承人", "匠人", "手艺人", "木匠", "绣娘", "茶农", "果农", "菜农", "养殖户", "种植户", "摊主",
    "房东", "业主", "门卫", "网格员", "站长", "所长", "处长", "科长", "组长", "班长", "团长", "连长",
    "司令", "将军", "词人", "作曲家", "演奏家", "指挥家", "舞者", "鼓手", "吉他手", "影后", "影帝",
    "天后", "歌后", "球王", "棋王", "小将", "老将", "主力", "中锋", "边锋", "主攻", "副攻", "领队",
    "搭档", "练习生", "成员", "负责人", "发起人", "总监", "行长", "社长", "会长", "理事长", "秘书长",
    "馆长", "台长", "外送员", "女孩", "男孩", "姑娘", "女子", "男子", "管家", "女士", "少年", "少女",
)
# Last characters of role words (收费员, 调解员, 药剂师, 理疗师): one before a name is a title.
ROLE_ENDINGS = frozenset("员师")
# Words that often follow a name.
CUES_AFTER = (
    "院士", "教授", "先生", "女士", "老师", "同学", "医生", "博士", "夫妇", "一家",
    "主演", "主持", "出席", "亮相", "现身", "代言", "执导", "导演", "演唱", "扮演", "饰演", "亲手",
    "拍摄", "设计", "推荐", "接受", "获得", "夺冠", "夺得", "同台", "合影", "生前", "捧起", "扣篮",
    "扣球", "指导", "带领", "发布", "演讲", "致辞", "雕像", "签名", "写真", "剧照", "街拍",
    "造型", "婚礼", "毕业", "退役", "打破", "分享", "教你", "为", "摄", "在", "和", "与", "、", "跟",
    "及", "的", "说", "是", "笔下", "作品", "推荐的", "作词", "作曲", "主唱", "献唱",
    "同款", "获评", "荣获", "当选", "入选", "捐", "家", "一行", "自制", "手绘", "讲述", "回忆", "身穿",
    # kinship words and 老人 follow a name (张秀英奶奶) but are no title before one (奶奶包饺子)
    "小朋友", "小伙", "大爷", "阿姨", "奶奶", "爷爷", "老人",
    # image-search titles of a person's pictures: 王芳壁纸, 张伟表情包, 郎朗画像
    "壁纸", "表情包", "画像", "演唱会", "机场", "生日", "签售", "直播", "新书", "最新", "：", ":",
) + TITLES_BEFORE  # a title also follows a name: 张建国市长, 陈薇院士
# Cues that only a person takes (a brand or a place has no 写真, 代言 nothing, has no 同款):
# they count `person_cue_after` on top of `cue_after`.
PERSON_CUES_AFTER = ("代言", "同款", "写真", "街拍", "签名", "签售", "演唱会", "生日", "夫妇", "生前")
assert set(PERSON_CUES_AFTER) <= set(CUES_AFTER)
# Heads of place names built on a person's name (鲁迅故居, 中山公园, 黄兴路, 左权县), and of dishes
# and firms: the name is part of the thing's name, which the convention leaves unmasked. A
# head counts when it ends a token, so 张三路过 and 王芳市场 keep their names.
PLACE_HEADS = (
    "故居", "旧居", "纪念馆", "纪念堂", "纪念碑", "陵园", "草堂", "公园", "广场", "大道", "大街", "路", "街",
    "中学", "小学", "大学", "学院", "幼儿园", "医院", "图书馆", "体育馆", "博物馆", "大桥", "楼", "祠",
    "墓", "陵", "庙", "县", "市", "镇",
    # and of dishes and firms named after one (张飞扣肉, 王致和腐乳, 陈李济药厂)
    "扣肉", "牛肉", "豆腐", "烤鱼", "米线", "面馆", "饭店", "酒家", "酒楼", "餐厅", "火锅", "小吃", "集团",
    "公司", "药业", "药厂", "食品", "腐乳",
)
_PLACE_HEAD_SET = frozenset(PLACE_HEADS)
_PLACE_HEAD_LENGTHS = sorted({len(head) for head in PLACE_HEADS})
# Words right before a name that are not titles: 我叫张三, 李雷和韩梅梅.
CUES_BEFORE = ("叫", "名叫", "名为", "和", "与", "、", "跟", "同", "及", "对话", "专访", "采访", "致敬", "纪念")
_CUES_BEFORE_SET = frozenset(CUES_BEFORE)
assert max(map(len, CUES_BEFORE)) <= 2  # _evidence looks back two characters at most
# Words of shop listings. In such a caption a person is named with a cue (董明珠代言, 李佳琦推荐,
# 某某同款); a name-like word with none is far more often a brand (吴裕泰, 王守义, 谭木匠).
COMMERCE_WORDS = (
    "礼盒", "旗舰店", "专卖", "正品", "包邮", "官方", "套装", "家用", "批发", "新款", "罐装", "袋装",
    "盒装", "瓶装", "特产", "老字号", "原装", "促销", "男款", "女款", "加厚", "包装", "商标", "品牌",
)
# Forms of address that follow a surname without being a given name: 王女士, 张先生, 李总, 老王家.
ADDRESS_WORDS = frozenset((
    "女士", "先生", "小姐", "老师", "师傅", "阿姨", "大爷", "大妈", "大姐", "大哥", "同学", "医生", "教授",
    "老板", "总裁", "经理", "主任", "书记", "院长", "校长", "局长", "部长", "市长", "县长", "村长", "队长",
    "总", "哥", "姐", "叔", "姨", "伯", "婶", "嫂", "妈", "爸", "爷", "奶", "氏", "家", "某", "董", "工",
))
# Head nouns that end things named like people (桂花糕, 胡桃木, 金毛犬, 兰亭序): a candidate ending
# in one is less likely a name.
THING_SUFFIXES = set(
    "糕饼面粉汤粥饭肉鸭鸡虾蟹鱼酱糖果瓜菜豆茶酒丸膏药木梨桃杏花草树叶竹犬猫狗鸟马牛羊猪兔"
    "记序传集录书报帖图画谱经剑刀枪鞋帽衣裙包机车灯椅桌床柜门窗锅碗杯瓶盘宫殿园馆屋堂亭阁寺塔"
    "楼桥山湖江河溪岩矿铁钢银铜纸布绒汁虫诗词曲洞窟岛湾港渡庙祠城"
)
# Characters that almost never sit inside a given name: particles, prepositions, measure words,
# directions and very common verbs. A candidate holding one is rejected.
NON_NAME_CHARS = set(
    "的了在和与是为有也都就被把给上下中里外前后时年月日个们这那着过及或等将从向对由到说看拍画"
    "做吃骑去来用买卖送让请叫要会能可以很太最更又还再不没无非其此该每各某哪谁什么怎啥吗呢吧啊呀"
    "图片照款色型式风装件套只条双块份次号层楼室厅房店馆院场区路街村市省县镇乡度季期节网"
    "摄供"  # photo credits: 洪文摄, 宁月供图
)
# Characters of NON_NAME_CHARS that open many given names too (张有才, 刘可欣, 王月华, 李和平,
# 赵中华, 王来福, 李向东, 刘双喜, 吴风华, 张以琛, 陈能胜, 王太平, 李季兰). As the first character
# of a two-character given name they cost `function_char` instead of rejecting the candidate, so
# a title or a cue can still carry the name; 月 may also end one (李晓月, 张明月).
NAME_OPENING_FUNCTION_CHARS = frozenset("有可月和中来向双风以能太季")
NAME_ENDING_FUNCTION_CHARS = frozenset("月")
# Transliteration characters, for names written with a middle dot (泰勒·斯威夫特): the characters of
# filters/data/transliteration_chars.txt.
TRANSLITERATION_CHARS = frozenset("".join(packaged_word_list("transliteration_chars.txt")))
# Elements of Tibetan, Uyghur, Kazakh, Mongolian, Yi and Hui given names written in Han characters
# (filters/data/minority_syllables.txt). A run of two or more (阿依 + 古丽, 扎西 + 顿珠), or one of
# three characters or more (巴特尔, 其其格), is a name; one two-character element alone is not
# (乌兰 starts 乌兰察布, 格桑 格桑花).
MINORITY_SYLLABLES = tuple(packaged_word_list("minority_syllables.txt"))
# Entries of jieba's emission table below this log probability are too rare to trust (娟 -13.6).
MIN_EMISSION_LOG = -12.5
# Characters that end places and homesteads named after a family (周家庄, 马家窑, 王家坝) and
# never end a given name; 家 itself ends a "given name" only in 刘芳家的: the family's home.
NOT_LAST_IN_GIVEN = set("家庄村屯寨坝窑堡")
NAME_DOTS = "·•‧・"
# One-character verbs and particles that jieba's HMM tends to glue onto an unknown name
# (司马砚秋画, 王一博骑): a candidate ending right before one of them, at the end of that token,
# counts as ending on a token boundary.
GLUE_AFTER = set("画拍摄骑吃唱跳写说做送穿戴看和与的在是为家获带陪教给帮来去向用把被将对到从正也都又还再已曾接领捧夺拿收访望谈讲演")
_BOOK_TITLE = re.compile(r"《[^《》]*》")
PUNCTUATION = set("，。！？、；：,.!?;:（）()【】[]《》<>「」『』\"'“”‘’ -—~…/|")


@functools.lru_cache(maxsize=8192)
def _nameable(char: str) -> bool:
    """Can `char` be part of a given name: a Han character that is not a function character."""
    return char not in NON_NAME_CHARS and HAN_RE.match(char) is not None


def _soft_function_char(given: str, position: int) -> bool:
    """A function character that may still stand at this place of a two-character given name."""
    if len(given) != 2:
        return False
    allowed = NAME_OPENING_FUNCTION_CHARS if position == 0 else NAME_ENDING_FUNCTION_CHARS
    return given[position] in allowed and _nameable(given[1 - position])


@dataclasses.dataclass(frozen=True)
class NameMaskerConfig:
    """Weights of the surname-pattern evidence and the acceptance threshold.

    The defaults were tuned on the development splits of tests/filters/data/name_captions.tsv
    and name_captions_fresh.tsv only; the held-out splits are scored, never tuned on.
    """

    threshold: float = 2.0
    title_before: float = 3.0
    cue_after: float = 1.0
    person_cue_after: float = 1.0
    cue_before: float = 1.0
    caption_edge: float = 0.5
    token_aligned: float = 1.0
    token_crossed: float = -2.0
    whole_token: float = 0.5
    two_char_given: float = 0.5
    one_char_given: float = -1.0
    common_word: float = -3.0
    common_given: float = -1.5
    common_prefix: float = -2.0
    thing_suffix: float = -2.0
    common_word_freq: int = 150
    common_name_freq: int = 1000
    compound_surname: float = 0.5
    given_split: float = -1.0
    given_char_common: float = 0.3
    given_char_rare: float = -0.7
    given_char_min_count: int = 3
    given_char_common_count: int = 30
    function_char: float = -1.0  # a given name holding one of NAME_*_FUNCTION_CHARS (张有才)
    commerce_uncued: float = -2.0  # no title or cue, in a caption with a shop-listing word
    # Name likelihood of a given-name character: log P(char | inside a name) from jieba's HMM
    # tagger (its `nr` emission table) minus log P(char) in jieba's dictionary.
    given_char_likely: float = 0.4
    given_char_unlikely: float = -1.0
    name_ratio_high: float = 2.5
    name_ratio_low: float = 0.0
    name_ratio_given_word: float = 1.0
    # Who decides on a surname-pattern candidate: "model", the learned decision of
    # filters/name_model.py over the candidate's features (the evidence above among them), kept at a
    # probability of at least `model_threshold`; or "rules", the weights above against `threshold`.
    decision: str = "model"
    model_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.common_word_freq < 0 or self.given_char_min_count < 0:
            raise ValueError("counts must be >= 0")
        if self.given_char_common_count < self.given_char_min_count:
            raise ValueError("given_char_common_count must be >= given_char_min_count")
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        if not 0.0 < self.model_threshold < 1.0:
            raise ValueError("model_threshold must be between 0 and 1")


DECISIONS = ("model", "rules")
# A surname-pattern candidate: its rule score, span, surname length and the evidence behind the score.
_Candidate = tuple[float, int, int, int, list[str]]


def _bucket(value: float, low: int, high: int) -> int:
    return max(low, min(high, math.floor(value)))


@dataclasses.dataclass(frozen=True)
class _Lexicon:
    """What the masker knows about words: jieba's dictionary frequencies and tags, and how often
    each character occurs in a given name of the dictionary's `nr` entries."""

    freq: dict[str, int]
    tag: dict[str, str]
    given_chars: dict[str, int]
    name_ratio: dict[str, float]


@functools.lru_cache(maxsize=1)
def _jieba_lexicon(surnames: frozenset[str]) -> _Lexicon:
    import jieba  # only for the path of its dictionary file; we never run jieba itself

    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    freq: dict[str, int] = {}
    tag: dict[str, str] = {}
    given: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) < 3:
                continue
            word, count, pos = parts[0], int(parts[1]), parts[2]
            freq[word] = count
            tag[word] = pos
            if pos == "nr" and len(word) == 3 and word[0] in surnames:
                for char in word[1:]:
                    given[char] = given.get(char, 0) + 1
    return _Lexicon(freq, tag, given, _name_ratios(freq))


def _name_ratios(freq: dict[str, int]) -> dict[str, float]:
    """For each character that jieba's HMM tagger has seen inside a person's name: how much more
    likely it is there than in ordinary words, as log P(char | name, not first) - log P(char),
    with P(char | name) from the tagger's `nr` emission table (trained on a tagged corpus, so it
    knows far more given names than the dictionary) and P(char) from the dictionary's counts."""
    from jieba.posseg.prob_emit import P as emit  # a data table; we never run the tagger

    char_count: dict[str, int] = {}
    for word, count in freq.items():
        for char in word:
            char_count[char] = char_count.get(char, 0) + count
    total = sum(char_count.values()) or 1
    middle, last = emit.get(("M", "nr"), {}), emit.get(("E", "nr"), {})
    ratios = {}
    for char in set(middle) | set(last):
        log_in_name = max(middle.get(char, -50.0), last.get(char, -50.0))
        if log_in_name < MIN_EMISSION_LOG:
            continue  # seen once or twice in the tagger's corpus: no evidence either way
        ratios[char] = log_in_name - math.log((char_count.get(char, 0) + 1) / total)
    return ratios


class _Spans:
    """(start, end) spans sorted by start, with the spans overlapping a range found by bisection:
    the non-person entries of a long caption are many, the ones near a candidate few."""

    def __init__(self, spans: list[tuple[int, int]]):
        self.spans = sorted(spans)
        self.starts = [start for start, _ in self.spans]
        self.longest = max((end - start for start, end in self.spans), default=0)

    def overlapping(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        first = bisect.bisect_right(self.starts, start - self.longest)
        for b_start, b_end in self.spans[first:bisect.bisect_left(self.starts, end)]:
            if b_end > start:
                yield b_start, b_end


class PersonNameMasker:
    """Find person names in a caption and replace them with `<人名>`.

        masker = PersonNameMasker()
        masker.mask("记者李晓峰在灾区现场报道")  -> "记者<人名>在灾区现场报道"
        masker.find("王菲和那英同台演出")          -> [(0, 2), (3, 5)]
    """

    def __init__(self, config: NameMaskerConfig = NameMaskerConfig(),
                 known_names: Iterable[str] | None = None, non_names: Iterable[str] | None = None,
                 surnames: Iterable[str] | None = None, model: NameModel | None = None):
        self.config = config
        # The learned decision (config.decision == "model"): `model`, else the packaged one.
        self.model = None if config.decision == "rules" else (model if model is not None else NameModel.packaged())
        surname_list = list(surnames) if surnames is not None else packaged_word_list("surnames.txt")
        self.compound_surnames = frozenset(s for s in surname_list if len(s) == 2)
        self.single_surnames = frozenset(s for s in surname_list if len(s) == 1)
        known = list(known_names) if known_names is not None else packaged_word_list("person_names.txt")
        blocked = list(non_names) if non_names is not None else packaged_word_list("non_person_names.txt")
        self._lists = ahocorasick.Automaton()
        for name in known:
            self._lists.add_word(name, (True, name))
        for entry in blocked:  # a non-person entry replaces a person entry of the same text
            self._lists.add_word(entry, (False, entry))
        if len(self._lists):
            self._lists.make_automaton()
        self._lexicon = _jieba_lexicon(self.single_surnames | self.compound_surnames)
        self._titles = set(TITLES_BEFORE)
        self._cues = set(CUES_AFTER)
        self._max_title = max(map(len, self._titles))
        self._max_cue = max(map(len, self._cues))
        self._commerce = re.compile("|".join(COMMERCE_WORDS))
        self._syllables = ahocorasick.Automaton()
        for syllable in MINORITY_SYLLABLES:
            self._syllables.add_word(syllable, len(syllable))
        self._syllables.make_automaton()

    # ---------------------------------------------------------------------------------------
    # Public API
    # ---------------------------------------------------------------------------------------

    def find(self, text: str, tokens: Sequence[str] | None = None) -> list[tuple[int, int]]:
        """Sorted, non-overlapping (start, end) character spans of the person names in `text`.

        `tokens` may pass jieba's tokens of `text` when the caller has them already (the text
        chain segments each caption once); without them the masker segments with rjieba.
        """
        if not text or not HAN_RE.search(text):
            return []
        text, known, blocked, boundaries, others = self._read(text, tokens)
        # One flag per character taken: checking a span costs its length, not the number of
        # spans taken so far (a caption of repeated names must stay linear).
        occupied = bytearray(len(text))
        taken: list[tuple[int, int]] = []

        def take(start: int, end: int) -> None:
            if not any(occupied[start:end]):
                occupied[start:end] = b"\x01" * (end - start)
                taken.append((start, end))

        passing = sorted(self._passing(text, boundaries, blocked, others + known),
                         key=lambda c: (-c[0], -(c[2] - c[1]), c[1]))
        known = self._extend_known(text, known, {(start, end) for _, start, end in passing}, boundaries)
        listed = [s for s in others + known if not self._is_blocked(*s, blocked)]
        # A name that heads a place's name (宋佳琪故居) is part of it: nor is a shorter name inside.
        for start, end in listed + [(start, end) for _, start, end in passing]:
            if self._names_a_place(text, end, boundaries):
                occupied[start:end] = b"\x01" * (end - start)
        # A dotted transliteration (科比·布莱恩特) wins over a short list entry inside it (科比).
        for start, end in listed:
            take(start, end)
        for _, start, end in passing:
            take(start, end)
        return sorted(taken)

    def mask(self, text: str, tokens: Sequence[str] | None = None) -> str:
        """`text` with every person name replaced by `<人名>` (`tokens` as for `find`)."""
        spans = self.find(text, tokens)
        if not spans:
            return text
        pieces, last = [], 0
        for start, end in spans:
            pieces += [text[last:start], NAME_MASK]
            last = end
        pieces.append(text[last:])
        return "".join(pieces)

    # ---------------------------------------------------------------------------------------
    # Layers
    # ---------------------------------------------------------------------------------------

    def _list_matches(self, text: str) -> tuple[list[tuple[int, int]], "_Spans"]:
        known, blocked = [], []
        if not len(self._lists):
            return known, _Spans(blocked)
        for end, (is_person, entry) in self._lists.iter(text):
            span = (end - len(entry) + 1, end + 1)
            (known if is_person else blocked).append(span)
        # Longest known names first, so 泰勒·斯威夫特 wins over 泰勒.
        known.sort(key=lambda s: (-(s[1] - s[0]), s[0]))
        return known, _Spans(blocked)

    def _extend_known(self, text: str, known: list[tuple[int, int]], passing: set[tuple[int, int]],
                      boundaries: set[int]) -> list[tuple[int, int]]:
        """A two-character list name (蔡明) that a surname pattern one character longer (蔡明辉)
        passes the threshold on (`passing`: the spans that do) is that longer name: the list name
        is its prefix, not the person. The longer name must end where strong context follows
        (蔡明辉：) or be one token of the segmenter's (学生|孙文轩|获奖, but 蔡明|演|小品)."""
        if not known or not passing:
            return known
        extended = []
        for start, end in known:
            longer = end - start == 2 and (start, end + 1) in passing
            # Not over a character that follows names (杜甫带领: 带 is glued to 领, not to 杜甫).
            if longer and text[end] not in GLUE_AFTER and (
                    end + 1 == len(text) or text[end + 1] in PUNCTUATION or self._cue_after(text, end + 1)
                    or (start in boundaries and end + 1 in boundaries and end not in boundaries)):
                end += 1
            extended.append((start, end))
        return extended

    @staticmethod
    def _names_a_place(text: str, end: int, boundaries: set[int]) -> bool:
        """Does a place head (PLACE_HEADS) follow the name and end a token: 孙中山故居, 黄兴路?"""
        for length in _PLACE_HEAD_LENGTHS:
            stop = end + length
            if text[end:stop] in _PLACE_HEAD_SET and (stop in boundaries or stop == len(text)):
                return True
        return False

    @staticmethod
    def _is_blocked(start: int, end: int, blocked: "_Spans") -> bool:
        """A candidate is blocked when a non-person entry covers it or sticks out of it (张家界
        blocks 张家); an entry wholly inside a longer candidate (王国 in 王国华) does not."""
        for b_start, b_end in blocked.overlapping(start, end):
            if not (start <= b_start and b_end <= end and (b_end - b_start) < (end - start)):
                return True
        return False

    @staticmethod
    def _book_titles(text: str) -> list[tuple[int, int]]:
        """Titles in 《》 (works, not persons: 《杜拉拉升职记》, 《李白》 the song) block every name."""
        return [m.span() for m in _BOOK_TITLE.finditer(text)] if "《" in text else []

    def _minority_names(self, text: str) -> list[tuple[int, int]]:
        """Runs of adjacent minority-name syllables (see MINORITY_SYLLABLES), longest match first."""
        spans = sorted(((end - length + 1, end + 1) for end, length in self._syllables.iter(text)),
                       key=lambda s: (s[0], -s[1]))
        runs: list[tuple[int, int, int]] = []  # start, end, syllables
        for start, end in spans:
            if runs and start == runs[-1][1]:
                runs[-1] = (runs[-1][0], end, runs[-1][2] + 1)
            elif runs and start < runs[-1][1]:
                continue  # overlaps the run: a shorter reading of the same characters
            else:
                runs.append((start, end, 1))
        return [(s, e) for s, e, _ in runs if e - s >= 3]

    def _dotted_names(self, text: str, boundaries: set[int] | None = None) -> list[tuple[int, int]]:
        """Runs of transliteration characters on both sides of a middle dot (泰勒·斯威夫特).

        A run starts on a token boundary, and stops where a title ends before it or a cue starts
        after it on a token boundary (嘉宾|安娜·卡列尼娜, 买买提·艾力|当选): the run's characters
        are common enough to spell those words too. Without `boundaries` the text is segmented here."""
        if not any(dot in text for dot in NAME_DOTS):
            return []
        if boundaries is None:
            boundaries = self._token_boundaries(text, None)
        spans = []
        for i, char in enumerate(text):
            if char not in NAME_DOTS:
                continue
            start = i
            while start > 0 and text[start - 1] in TRANSLITERATION_CHARS:
                start -= 1
            end = i + 1
            while end < len(text) and text[end] in TRANSLITERATION_CHARS:
                end += 1
            # The run starts on a token boundary (模特儿|安娜·卡列尼娜), after any title in it.
            start = next((p for p in range(start, i) if p in boundaries), start)
            start = next((p for p in range(i - 1, start, -1)
                          if p in boundaries and self._title_before(text, p)), start)
            end = next((q for q in range(i + 2, end) if q in boundaries and self._cue_after(text, q)), end)
            if i - start >= 1 and end - i - 1 >= 1:
                spans.append((start, end))
        # Join chains such as 莱昂纳多·迪卡普里奥 written with two dots.
        merged: list[tuple[int, int]] = []
        for span in spans:
            if merged and span[0] <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], span[1]))
            else:
                merged.append(span)
        return merged

    @staticmethod
    def _token_boundaries(text: str, tokens: Sequence[str] | None) -> set[int]:
        if tokens is None or sum(map(len, tokens)) != len(text):
            tokens = rjieba.cut(text, True)
        boundaries, offset = {0}, 0
        for token in tokens:
            offset += len(token)
            boundaries.add(offset)
        return boundaries

    def _passing(self, text: str, boundaries: set[int], blocked: "_Spans",
                 listed: list[tuple[int, int]]) -> list[tuple[float, int, int]]:
        """The surname-pattern candidates that the decision keeps, as (priority, start, end): the
        rule score against `threshold`, or the model's probability against `model_threshold`."""
        candidates = self._pattern_candidates(text, boundaries, blocked)
        if self.model is None:
            return [(c[0], c[1], c[2]) for c in candidates if c[0] >= self.config.threshold]
        passing = []
        probability, threshold = self.model.probability, self.config.model_threshold
        for candidate, features in self._candidate_features(text, candidates, boundaries, listed):
            p = probability(features)
            if p >= threshold:
                passing.append((p, candidate[1], candidate[2]))
        return passing

    def training_examples(self, text: str, spans: Iterable[tuple[int, int]]) -> list[tuple[list[str], int]]:
        """The model's examples in a labelled caption: each surname-pattern candidate's features,
        with 1 when it is one of the name `spans` and 0 when not. The candidates and features are
        the ones `find` decides on."""
        text, known, blocked, boundaries, others = self._read(text, None)
        gold = set(spans)
        candidates = self._pattern_candidates(text, boundaries, blocked)
        return [(features, int((candidate[1], candidate[2]) in gold))
                for candidate, features in self._candidate_features(text, candidates, boundaries, others + known)]

    def _read(self, text: str, tokens: Sequence[str] | None) -> tuple[
            str, list[tuple[int, int]], "_Spans", set[int], list[tuple[int, int]]]:
        """What every decision starts from: the simplified text (the lists and the lexicon are
        simplified; spans carry over), the gazetteer's names, the blocked spans (non-person
        entries and titles in 《》), the token boundaries, and the dotted and minority names."""
        simple = to_simplified(text)
        if simple != text:
            text, tokens = simple, None
        known, blocked = self._list_matches(text)
        titles = self._book_titles(text)
        if titles:
            blocked = _Spans(blocked.spans + titles)
        boundaries = self._token_boundaries(text, tokens)
        others = self._dotted_names(text, boundaries) + self._minority_names(text)
        return text, known, blocked, boundaries, others

    def _candidate_features(self, text: str, candidates: list[_Candidate], boundaries: set[int],
                            listed: list[tuple[int, int]]) -> Iterator[tuple[_Candidate, list[str]]]:
        """Each candidate with its features for the model: the rule evidence and score, the
        surname and given characters (with their name likelihood and dictionary counts), two
        characters on each side, token boundaries, jieba's tag and count of the span and of the
        given name, and how it fares against overlapping candidates and list names."""
        cfg, lex = self.config, self._lexicon
        by_start: dict[int, list[_Candidate]] = {}
        for candidate in candidates:
            by_start.setdefault(candidate[1], []).append(candidate)
        listed_spans = _Spans(listed)
        commerce = self._commerce.search(text) is not None
        n = len(text)
        for candidate in candidates:
            score, start, end, s_len, evidence = candidate
            span, given = text[start:end], text[start + s_len:end]
            left1 = text[start - 1] if start else "^"
            left2 = text[max(0, start - 2):start] if start >= 2 else "^" + text[:start]
            right1 = text[end] if end < n else "$"
            right2 = text[end:end + 2] if end + 2 <= n else text[end:] + "$"
            features = ["BIAS", f"SC={_bucket(score, -6, 9)}", f"PASS={int(score >= cfg.threshold)}",
                        f"SLGL={s_len}{len(given)}", f"L1={left1}", f"L2={left2}", f"R1={right1}",
                        f"R2={right2}", f"L1R1={left1}{right1}", f"SB={int(start in boundaries)}",
                        f"EB={int(end in boundaries)}", f"SUR={span[:s_len]}", f"GN={given}", f"SPAN={span}",
                        f"GT={lex.tag.get(given)}", f"GF={_bucket(math.log1p(lex.freq.get(given, 0)), 0, 12)}",
                        f"ST={lex.tag.get(span)}", f"SF={_bucket(math.log1p(lex.freq.get(span, 0)), 0, 12)}"]
            features += ["E=" + name for name in evidence]
            if left1 == "^" or left1 in PUNCTUATION:
                features.append("LEDGE")
            if right1 == "$" or right1 in PUNCTUATION:
                features.append("REDGE")
            if start in boundaries and end in boundaries:
                features.append(f"ONE={int(self._is_one_token(start, end, boundaries))}")
            for k, char in enumerate(given):
                ratio = lex.name_ratio.get(char)
                features += [f"G{k}={char}", f"G={char}",
                             f"NR{k}={'x' if ratio is None else _bucket(ratio, -3, 6)}",
                             f"GC{k}={_bucket(math.log1p(lex.given_chars.get(char, 0)), 0, 6)}"]
            if commerce:
                features.append("COMMERCE")
            if self._names_a_place(text, end, boundaries):
                features.append("PLACE")
            rivals = [other[0] for first in range(max(0, start - 3), end) for other in by_start.get(first, ())
                      if other[2] > start and (other[1], other[2]) != (start, end)]
            if rivals:
                features.append(f"OV={_bucket(score - max(rivals), -4, 4)}")
            if next(listed_spans.overlapping(start, end), None) is not None:
                features.append("OVLIST")
            yield candidate, features

    def _pattern_candidates(self, text: str, boundaries: set[int], blocked: "_Spans") -> list[_Candidate]:
        candidates: list[_Candidate] = []
        commerce = self._commerce.search(text) is not None  # once per caption, not per candidate
        n = len(text)
        single, compound = self.single_surnames, self.compound_surnames
        for i, char in enumerate(text):
            surnames = []
            if text[i:i + 2] in compound:
                surnames.append(2)
            if char in single:
                surnames.append(1)
            for s_len in surnames:
                for g_len in (2, 1):
                    end = i + s_len + g_len
                    if end > n:
                        continue
                    given = text[i + s_len:end]
                    if not self._may_be_given_name(given, text, i) or self._is_blocked(i, end, blocked):
                        continue
                    evidence = self._evidence(text, i, end, s_len, boundaries, commerce)
                    candidates.append((self._weigh(evidence), i, end, s_len, evidence))
        return candidates

    def _may_be_given_name(self, given: str, text: str, start: int) -> bool:
        """Can `given` follow the surname at `start`: no form of address (王女士), no place ending
        (周家庄), and no function character, except one that opens given names (张有才, 李晓月) or,
        after a title, is a one-character given name (网格员俞可)."""
        if given in ADDRESS_WORDS or given[-1] in NOT_LAST_IN_GIVEN:
            return False
        if all(_nameable(c) or _soft_function_char(given, k) for k, c in enumerate(given)):
            return True
        return len(given) == 1 and given in NAME_OPENING_FUNCTION_CHARS and self._title_before(text, start)

    def _weigh(self, evidence: list[str]) -> float:
        """A candidate's rule score: the config's weight of each piece of evidence, summed."""
        cfg = self.config
        return sum(getattr(cfg, name) for name in evidence)

    def _evidence(self, text: str, start: int, end: int, s_len: int, boundaries: set[int],
                  commerce: bool) -> list[str]:
        """The evidence for and against a surname-pattern candidate, as the names of the config's
        weights (one name per piece of evidence, repeated when it counts twice)."""
        cfg, lex = self.config, self._lexicon
        span, given = text[start:end], text[start + s_len:end]
        found: list[str] = []
        title_before = self._title_before(text, start)
        if title_before:
            found.append("title_before")
        cue_after = self._cue_after(text, end)
        if cue_after:
            found.append("cue_after")
            if any(text.startswith(cue, end) for cue in PERSON_CUES_AFTER):
                found.append("person_cue_after")
        elif not title_before and commerce:
            found.append("commerce_uncued")
        if not title_before and (text[start - 1:start] in _CUES_BEFORE_SET
                                 or text[max(0, start - 2):start] in _CUES_BEFORE_SET):
            found.append("cue_before")
        if start == 0 or text[start - 1] in PUNCTUATION:
            found.append("caption_edge")
        if end == len(text) or text[end] in PUNCTUATION:
            found.append("caption_edge")
        # Token boundaries: a title glued to the surname (博主林) is a known segmenter habit.
        start_ok = start in boundaries or title_before
        end_ok = end in boundaries or (end < len(text) and text[end] in GLUE_AFTER and end + 1 in boundaries)
        if start_ok and end_ok:
            found.append("token_aligned")
        if not end_ok:
            found.append("token_crossed")
        if not start_ok:
            found.append("token_crossed")
        if start_ok and end_ok and self._is_one_token(start, end, boundaries):
            found.append("whole_token")
        found.append("two_char_given" if len(given) == 2 else "one_char_given")
        given_start = start + s_len
        if (len(given) == 2 and given_start + 1 in boundaries and given_start not in boundaries
                and end not in boundaries):
            found.append("given_split")  # 司马光/砸: a name token and the next word's first character
        if s_len == 2:
            if start + 1 in boundaries and start + 2 not in boundaries:
                found.append("token_crossed")  # 上/官网: the segmenter did not read a surname
            else:
                found.append("compound_surname")  # 诸葛亮, 欧阳修: rare outside names
        if self._is_common_word(span):
            found.append("common_word")
        elif len(given) == 2 and self._is_common_word(given) and not self._name_like_word(given):
            found.append("common_given")  # 海洋, 建国: common words, and common given names too
        if len(given) == 2 and not title_before and self._is_common_word(span[:-1]):
            found.append("common_prefix")  # 金鱼缸, 高铁站, 余额宝: a common word plus one character
        if given[0] == span[s_len - 1]:
            found.append("common_prefix")  # 包包, 毛毛: a doubled surname character is a word
        if any(char in NON_NAME_CHARS for char in given):
            found.append("function_char")
        if given[-1] in THING_SUFFIXES and not title_before:
            found.append("thing_suffix")
        for char in given:
            count = lex.given_chars.get(char, 0)
            if count >= cfg.given_char_common_count:
                found.append("given_char_common")
            elif count < cfg.given_char_min_count:
                found.append("given_char_rare")
            ratio = lex.name_ratio.get(char)
            if ratio is not None:
                if ratio >= cfg.name_ratio_high:
                    found.append("given_char_likely")
                elif ratio < cfg.name_ratio_low and count < cfg.given_char_common_count:
                    found.append("given_char_unlikely")
        return found

    def _name_like_word(self, given: str) -> bool:
        """A dictionary word made of name characters (建华, 永福, 红梅): common words, but common
        given names too, unlike 海洋 or 逍遥."""
        ratios = self._lexicon.name_ratio
        return all(ratios.get(c, -50.0) >= self.config.name_ratio_given_word for c in given)

    @staticmethod
    def _is_one_token(start: int, end: int, boundaries: set[int]) -> bool:
        return not any(b in boundaries for b in range(start + 1, end))

    def _is_common_word(self, word: str) -> bool:
        """A frequent dictionary word: any tag but a person's, or an `nr` entry so frequent that it
        is a common word jieba mis-tags (明星, 阳光, 宫殿)."""
        count = self._lexicon.freq.get(word, 0)
        if count == 0:
            return False
        if self._lexicon.tag.get(word) != "nr":
            # Any other tag: a three-character entry at all (金鱼缸, 任务栏), a shorter one when
            # it is not rare.
            return len(word) >= 3 or count >= self.config.common_word_freq // 3
        # Famous three-character names are frequent `nr` entries too (刘亦菲 256): only very
        # frequent ones (紫禁城, 汉白玉) are words.
        return count >= (self.config.common_word_freq if len(word) < 3 else self.config.common_name_freq)

    def _title_before(self, text: str, start: int) -> bool:
        for length in range(1, min(self._max_title, start) + 1):
            if text[start - length:start] in self._titles:
                return True
        # Any role word of two or more characters that ends in 员 or 师 (收费员, 调解员, 药剂师).
        return start >= 2 and text[start - 1] in ROLE_ENDINGS and HAN_RE.match(text[start - 2]) is not None

    def _cue_after(self, text: str, end: int) -> bool:
        for length in range(1, self._max_cue + 1):
            if end + length <= len(text) and text[end:end + length] in self._cues:
                return True
        return False


@functools.lru_cache(maxsize=1)
def default_masker() -> PersonNameMasker:
    """The masker with the packaged lists and the default config, built once per process."""
    return PersonNameMasker()


def mask_person_names(text: str) -> str:
    """`text` with each person's name replaced by `<人名>` (the default masker)."""
    return default_masker().mask(text)
