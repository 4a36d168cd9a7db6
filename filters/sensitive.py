"""Rule 5: sensitive words, matched with one Aho-Corasick automaton (pyahocorasick), so the cost
of a caption does not grow with the size of the lists.

Spam in image-search titles hides its words, so matching runs on a folded form of the caption
(`normalise_for_matching`): NFKC, case-folded, traditional script mapped to simplified (OpenCC
t2s), and spaces, separators and filler symbols between Han characters removed, so 色 情, 色*情
and 色情 in traditional script all read 色情. The stored caption keeps its script and spacing.

Five lists, all plain text files in filters/data/ (one entry per line, `#` starts a comment):
- words: a hit drops the caption;
- allow: innocent phrases that contain a word (暖色情调 holds 色情, 杀人鲸 holds 杀人); a hit inside
  an allowed phrase found in the same caption does not count;
- variants: pinyin, initials, homophones and words spam borrows (se情, bjl, 溜冰, 上门服务); a hit
  counts only when a spam cue stands elsewhere in the caption;
- cues: contact details, 加微信/V, 上门, prices (digit runs and prices are recognised by pattern too);
- contexts: education, warning and news words (禁毒, 危害, 宣传, 反诈); a caption with one of
  these and no spam cue is not dropped for its words, so 禁毒宣传 posters stay.
Users replace or extend the words and the allow-list; the other three ship as defaults.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import ahocorasick

from filters.text import to_simplified
from filters.wordlists import packaged_word_list, read_word_list

DEFAULT_WORDS = "sensitive_words.txt"
DEFAULT_ALLOW = "sensitive_allow.txt"
DEFAULT_VARIANTS = "sensitive_variants.txt"
DEFAULT_CUES = "sensitive_cues.txt"
DEFAULT_CONTEXTS = "sensitive_contexts.txt"

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Spaces, punctuation and symbols between two Han characters (色 情, 色*情), and runs of symbols
# (no spaces) between any two letters or digits (a*v, k_粉).
_BETWEEN_HAN = re.compile(rf"(?<=[{_HAN}])[\s\W_]+(?=[{_HAN}])")
_SYMBOLS_IN_WORD = re.compile(r"(?<=[^\W_])(?:[^\w\s]|_)+(?=[^\W_])")
# Cues recognised by pattern: a phone or QQ number, a price, v/V followed by a handle.
_CUE_PATTERN = re.compile(r"\d{6,}|[￥¥$]\s*\d|\d+\s*(?:元|块|rmb)|(?<![a-z])v\s*[:：]|\bv信")

_WORD, _ALLOW, _VARIANT, _CUE, _CONTEXT = range(5)


def normalise_for_matching(text: str) -> str:
    """The folded form the lists are matched on: NFKC, case-folded, simplified script, and the
    separators between Han characters removed. Applied to the entries as well as the captions."""
    folded = to_simplified(unicodedata.normalize("NFKC", text).casefold())
    return _SYMBOLS_IN_WORD.sub("", _BETWEEN_HAN.sub("", folded)).strip()


class SensitiveWordMatcher:
    """Find listed words in a caption, ignoring hits inside allowed phrases.

        matcher = SensitiveWordMatcher.default()
        matcher.find("出售冰毒")      -> ["冰毒"]   (or whichever listed entries occur)
        matcher.find("暖色情调的客厅") -> []
        matcher.find("禁毒宣传海报")   -> []        (an education context without a spam cue)

    `variants`, `cues` and `contexts` default to the packaged lists when None; pass () to turn a
    mechanism off.
    """

    def __init__(self, words: Iterable[str], allow: Iterable[str] = (), *,
                 variants: Iterable[str] | None = None, cues: Iterable[str] | None = None,
                 contexts: Iterable[str] | None = None):
        for value in (words, allow, variants, cues, contexts):
            if isinstance(value, str):
                raise TypeError("word lists are iterables of strings, not one string")
        # Matching is on the folded form; find() answers with each entry as it was given.
        self._original: dict[str, str] = {}
        for word in words:
            folded = normalise_for_matching(word)
            if folded:
                self._original.setdefault(folded, word.strip())
        if not self._original:
            raise ValueError("SensitiveWordMatcher needs at least one word")
        self.words = sorted(self._original.values())
        self.allow = _folded_set(allow)
        self.variants = _folded_set(packaged_word_list(DEFAULT_VARIANTS) if variants is None else variants)
        self.cues = _folded_set(packaged_word_list(DEFAULT_CUES) if cues is None else cues)
        self.contexts = _folded_set(packaged_word_list(DEFAULT_CONTEXTS) if contexts is None else contexts)
        for variant in self.variants:
            self._original.setdefault(variant, variant)
        self._automaton = ahocorasick.Automaton()
        # One entry per string: a listed word wins over the same string in any other list.
        kinds: dict[str, int] = {}
        for kind, entries in ((_CONTEXT, self.contexts), (_CUE, self.cues), (_ALLOW, self.allow),
                              (_VARIANT, self.variants), (_WORD, [w for w in self._original if w not in self.variants])):
            for entry in entries:
                kinds[entry] = kind
        for entry, kind in kinds.items():
            self._automaton.add_word(entry, (kind, entry))
        self._automaton.make_automaton()

    @classmethod
    def default(cls) -> "SensitiveWordMatcher":
        """The project's curated lists (filters/data/sensitive_*.txt)."""
        return cls(packaged_word_list(DEFAULT_WORDS), packaged_word_list(DEFAULT_ALLOW))

    @classmethod
    def from_files(cls, words: Iterable[str] = (), allow: Iterable[str] = (), *,
                   extra_words: Iterable[str] = (), extra_allow: Iterable[str] = ()) -> "SensitiveWordMatcher":
        """Lists from files: `words`/`allow` replace the defaults when given, `extra_*` extend
        whichever list is in use."""
        words, allow = list(words), list(allow)
        word_list = [w for p in words for w in read_word_list(p)] if words else packaged_word_list(DEFAULT_WORDS)
        allow_list = [a for p in allow for a in read_word_list(p)] if allow else packaged_word_list(DEFAULT_ALLOW)
        word_list += [w for p in extra_words for w in read_word_list(p)]
        allow_list += [a for p in extra_allow for a in read_word_list(p)]
        return cls(word_list, allow_list)

    def find(self, text: str) -> list[str]:
        """The listed words (and variants next to a spam cue) found in `text` outside allowed
        phrases, each once, in order of first appearance; [] when the caption is clean or is an
        education or news context without a spam cue."""
        if not text:
            return []
        folded = normalise_for_matching(text)
        words: list[tuple[int, int, str]] = []
        variants: list[tuple[int, int, str]] = []
        allowed: list[tuple[int, int]] = []
        cues: list[tuple[int, int]] = [m.span() for m in _CUE_PATTERN.finditer(folded)]
        context = False
        for end, (kind, entry) in self._automaton.iter(folded):
            span = (end - len(entry) + 1, end + 1)
            if kind == _WORD:
                words.append((*span, entry))
            elif kind == _VARIANT:
                variants.append((*span, entry))
            elif kind == _ALLOW:
                allowed.append(span)
            elif kind == _CUE:
                cues.append(span)
            else:
                context = True
        if not words and not variants:
            return []
        if context and not cues:
            return []

        def counts(start: int, end: int) -> bool:
            return not any(a <= start and end <= b for a, b in allowed)

        hits = [(s, e, w) for s, e, w in words if counts(s, e)]
        hits += [(s, e, v) for s, e, v in variants
                 if counts(s, e) and any(ce <= s or cs >= e for cs, ce in cues)]
        found: list[str] = []
        for _, _, folded_entry in sorted(hits):
            word = self._original[folded_entry]
            if word not in found:
                found.append(word)
        return found


def _folded_set(entries: Iterable[str]) -> list[str]:
    return sorted({normalise_for_matching(e) for e in entries} - {""})
