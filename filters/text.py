"""Text rules of the paper (3.2): caption normalisation, the Chinese word count, meaningless
captions and the frequency threshold.

"Chinese words" are the tokens of `jieba.cut` (precise mode, HMM on) that hold at least one Han
character. We segment with rjieba (the jieba-rs binding): its `cut` gives jieba's tokens
(benchmarks/text_filters.py measures the agreement) at about 16x the speed.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Iterable

import opencc
import rjieba

from filters.contract.flags import flag
from filters.contract.vocabulary import DropReason

# Han ideographs: the unified block, extensions A..H and the compatibility blocks, plus 〇.
_HAN = (
    "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\U00020000-\U0002a6df\U0002a700-\U0002ebef\U0002f800-\U0002fa1f\U00030000-\U000323af"
)
HAN_RE = re.compile(f"[{_HAN}]")
_WHITESPACE_RE = re.compile(r"\s+")
_T2S = opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """`text` in simplified script (OpenCC t2s), character for character, so that a span found in
    the result is the same span of `text` (a Hong Kong or Taiwan caption keeps its own script;
    only what is found in it comes from the simplified form). Where a phrase conversion would
    change the length, each character is converted alone."""
    simple = _T2S.convert(text)
    if len(simple) == len(text):
        return simple
    chars = [_T2S.convert(char) for char in text]
    return "".join(c if len(c) == 1 else o for c, o in zip(chars, text))


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """The paper's text thresholds: keep 1..31 Chinese words; drop a caption seen more than 10
    times in the corpus. Ours: drop a caption of more than 512 characters (after normalisation)
    as `text_length` before it is segmented; see `check_length`."""

    min_chinese_words: int = 1
    max_chinese_words: int = dataclasses.field(default=31, metadata=flag(
        "keep captions with at most this many Chinese words"))
    max_occurrences: int = dataclasses.field(default=10, metadata=flag(
        "drop captions seen more often than this in the corpus"))
    max_caption_chars: int = dataclasses.field(default=512, metadata=flag(
        "drop captions longer than this many characters (normalised) as text_length"))

    def __post_init__(self) -> None:
        if self.min_chinese_words < 0:
            raise ValueError(f"min_chinese_words must be >= 0, got {self.min_chinese_words}")
        if self.max_chinese_words < self.min_chinese_words:
            raise ValueError(f"max_chinese_words ({self.max_chinese_words}) is below "
                             f"min_chinese_words ({self.min_chinese_words})")
        if self.max_caption_chars < 1:
            raise ValueError(f"max_caption_chars must be >= 1, got {self.max_caption_chars}")
        if self.max_occurrences < 1:
            raise ValueError(f"max_occurrences must be >= 1, got {self.max_occurrences}")


def normalise_caption(text: str | None) -> str:
    """docs/design.md's normalised caption: Unicode NFKC, whitespace runs collapsed to one space,
    stripped. None becomes ""."""
    if not text:
        return ""
    return _WHITESPACE_RE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def has_han(text: str) -> bool:
    return HAN_RE.search(text) is not None


# Han characters outside jieba's own Han class (U+4E00..U+9FD5): extension A and B+, compatibility
# ideographs, the last unified ones. jieba emits each of them as a token of its own, while rjieba
# treats them as Han and may join them to their neighbours; we split them off as jieba does.
_HAN_OUTSIDE_JIEBA = re.compile(
    "[\u3007\u3400-\u4dbf\u9fd6-\u9fff\uf900-\ufaff"
    "\U00020000-\U0002a6df\U0002a700-\U0002ebef\U0002f800-\U0002fa1f\U00030000-\U000323af]")


def segment(text: str) -> list[str]:
    """jieba's precise-mode tokens (HMM on), computed by rjieba."""
    if _HAN_OUTSIDE_JIEBA.search(text) is None:
        return rjieba.cut(text, True)
    tokens: list[str] = []
    last = 0
    for match in _HAN_OUTSIDE_JIEBA.finditer(text):
        if match.start() > last:
            tokens += rjieba.cut(text[last:match.start()], True)
        tokens.append(match.group())
        last = match.end()
    if last < len(text):
        tokens += rjieba.cut(text[last:], True)
    return tokens


def count_chinese_words(text: str, cut: Callable[[str], Iterable[str]] = segment) -> int:
    """The number of tokens of `text` that contain at least one Han character.

    `cut` is the segmenter (rjieba's `cut` by default; pass `jieba.cut` for the reference).
    """
    if not text:
        return 0
    return count_han_tokens(cut(text))


def count_han_tokens(tokens: Iterable[str]) -> int:
    """How many of `tokens` contain at least one Han character."""
    return sum(1 for token in tokens if HAN_RE.search(token))


def has_chinese_word_count(n: int, config: TextConfig = TextConfig()) -> bool:
    """Rule 1 on a word count already made: min..max Chinese words (1..31) are kept."""
    return config.min_chinese_words <= n <= config.max_chinese_words


def is_too_long(text: str, config: TextConfig = TextConfig()) -> bool:
    """More characters than `max_caption_chars` (512). A page title is rarely over 100
    characters and 31 Chinese words are rarely over 150, so a longer "caption" is a page's body,
    a keyword list or an attack; it is dropped, not cut (a cut caption would be a caption nobody
    wrote), and before segmentation, so that no later rule ever sees an unbounded text."""
    return len(text) > config.max_caption_chars


def check_length(text: str, config: TextConfig = TextConfig(),
                 cut: Callable[[str], Iterable[str]] = segment) -> str | None:
    """Rule 1: DropReason.TEXT_LENGTH when the (normalised) caption is longer than
    `max_caption_chars` characters, or has not min..max Chinese words."""
    if is_too_long(text, config) or not has_chinese_word_count(count_chinese_words(text, cut), config):
        return DropReason.TEXT_LENGTH
    return None


# --------------------------------------------------------------------------------------------
# Rule 2: meaningless captions
# --------------------------------------------------------------------------------------------

_IMAGE_EXTENSIONS = r"(?:jpe?g|png|gif|webp|bmp|tiff?|heic|heif|svg|ico|jfif|avif|raw)"
# The whole caption is one file name: no spaces, ends in an image extension.
_FILE_NAME_RE = re.compile(rf"^[^\s/\\]{{1,200}}\.{_IMAGE_EXTENSIONS}$", re.IGNORECASE)
# URLs, domain names and file names are matched on ASCII characters only: Chinese titles have no
# spaces, so a class like [^\s] or \w would swallow the description around them
# (汽车之家autohome.com.cn宝马X5图片 must keep 汽车之家 and 宝马X5图片).
_URL_RE = re.compile(r"(?:https?://|ftp://|www\.)[!-~]*|"
                     r"(?<![A-Za-z0-9.-])[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|cn|net|org|html?|php|aspx?)"
                     r"(?![A-Za-z0-9])(?:[/?#:][!-~]*)?",
                     re.IGNORECASE)
_FILE_TOKEN_RE = re.compile(rf"[!-~]*\.{_IMAGE_EXTENSIONS}(?![A-Za-z0-9])", re.IGNORECASE)
_HASH_RE = re.compile(r"\b[0-9a-f]{16,}\b|\b[0-9A-F]{16,}\b|\b[A-Za-z0-9+/_-]{24,}={0,2}(?![\w])")
_CAMERA_RE = re.compile(r"\b(?:IMG|DSC[NF]?|DCIM|PIC|PXL|MVIMG|VID|Screenshot|SAM|P)[_-]?\d[\d_-]*\b",
                        re.IGNORECASE)
_NUMBER_RE = re.compile(r"\d+")
# The URL, file and hash patterns start a match at every character of a run of printable ASCII
# and may scan to the run's end, so their cost grows with the square of the longest run (a Han
# character and then `a.` 50,000 times took minutes). No person writes a word of more than
# _LONGEST_ASCII_WORD characters without a space; such a run is removed first, like a URL, and
# every run the patterns then see is short, which keeps the rule linear in the caption's length.
_LONGEST_ASCII_WORD = 200
_LONG_ASCII_RUN_RE = re.compile(f"[!-~]{{{_LONGEST_ASCII_WORD + 1},}}")
_ASCII_ALNUM_RE = re.compile(r"[A-Za-z0-9]")
# Phrases that describe nothing: page furniture and the words of default file names. A caption
# made only of these (plus numbers, punctuation, URLs, file names and hashes) was not written by
# a person as a description.
BOILERPLATE = (
    "查看源网页", "展开全文", "点击查看大图", "点击查看原图", "点击查看", "点击放大", "点击图片查看",
    "查看大图", "查看原图", "查看图片", "图片来源网络", "图片来自网络", "图片来源", "来源网络", "网络图片",
    "暂无图片", "图片加载中", "加载中", "默认图片", "缩略图", "微信图片", "屏幕截图", "手机截图", "截图",
    "未命名", "未标题", "无标题", "新建", "副本", "拷贝", "图片", "照片", "图像", "配图", "插图", "原图",
    "大图", "高清", "下载", "上传", "封面", "附件", "相册",
    "image", "images", "img", "photo", "photos", "pic", "pics", "picture", "untitled", "screenshot",
    "copy", "thumb", "thumbnail", "default", "download", "upload", "file", "jpg", "jpeg", "png", "gif",
)
_BOILERPLATE_RE = re.compile(
    "|".join(re.escape(p) for p in sorted(BOILERPLATE, key=len, reverse=True)), re.IGNORECASE)
_CONTENT_RE = re.compile(f"[{_HAN}]|[^\\W\\d_]{{2,}}")


def is_meaningless_caption(text: str) -> bool:
    """Rule 2: True for captions that no person wrote as a description: a file name
    (`000.jpg`, `IMG_2033.JPG`, `微信图片_2019….jpg`), a URL, a hash, or boilerplate such as
    `查看源网页` or `未命名-1` with nothing else.

    The test: strip URLs, file names, hashes, camera names, numbers and boilerplate phrases;
    the caption is meaningless when no Han character or word of letters is left. A run of more
    than 200 printable ASCII characters without a space counts as such debris too (it keeps the
    test linear in the caption's length; see _LONG_ASCII_RUN_RE).
    """
    text = text.strip()
    if not text:
        return True
    if _FILE_NAME_RE.match(text):
        return True
    rest = text
    if _ASCII_ALNUM_RE.search(text):  # URLs, file names, hashes and camera names need ASCII
        rest = _LONG_ASCII_RUN_RE.sub(" ", rest)
        rest = _URL_RE.sub(" ", rest)
        rest = _FILE_TOKEN_RE.sub(" ", rest)
        rest = _HASH_RE.sub(" ", rest)
        rest = _CAMERA_RE.sub(" ", rest)
    rest = _BOILERPLATE_RE.sub(" ", rest)
    rest = _NUMBER_RE.sub(" ", rest)
    return _CONTENT_RE.search(rest) is None


# --------------------------------------------------------------------------------------------
# Rule 3: frequency
# --------------------------------------------------------------------------------------------


def is_frequent(occurrences: int, config: TextConfig = TextConfig()) -> bool:
    """Rule 3: a caption seen more than `max_occurrences` times in the corpus is dropped
    (10 kept, 11 dropped)."""
    return occurrences > config.max_occurrences
