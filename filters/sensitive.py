"""Rule 5: sensitive words, matched with one Aho-Corasick automaton (pyahocorasick), so the cost
of a caption does not grow with the size of the list.

The list has an allow-list of innocent phrases that contain a listed string (暖色情调 holds 色情,
杀人鲸 holds 杀人, 蛋黄片 holds 黄片): a hit that lies inside an allowed phrase found in the same
caption does not count. Both lists are plain text files, one entry per line, `#` starts a comment;
the defaults ship in filters/data/ and users can replace or extend them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import ahocorasick

from filters.wordlists import packaged_word_list, read_word_list

DEFAULT_WORDS = "sensitive_words.txt"
DEFAULT_ALLOW = "sensitive_allow.txt"


def normalise_for_matching(text: str) -> str:
    """NFKC and case-folded, so full-width and upper-case variants match the same entry.

    Both steps keep the length of Chinese text; for the rare character whose folding changes the
    length, positions are only used to compare hits with allowed phrases in the same string.
    """
    return unicodedata.normalize("NFKC", text).casefold()


class SensitiveWordMatcher:
    """Find listed words in a caption, ignoring hits inside allowed phrases.

        matcher = SensitiveWordMatcher.default()
        matcher.find("出售冰毒")      -> ["冰毒"]   (or whichever listed entries occur)
        matcher.find("暖色情调的客厅") -> []
    """

    def __init__(self, words: Iterable[str], allow: Iterable[str] = ()):
        if isinstance(words, str) or isinstance(allow, str):
            raise TypeError("words and allow are iterables of strings, not one string")
        # Matching is on the folded form; find() answers with each entry as it was given.
        self._original: dict[str, str] = {}
        for word in words:
            folded = normalise_for_matching(word).strip()
            if folded:
                self._original.setdefault(folded, word.strip())
        self.words = sorted(self._original.values())
        self.allow = sorted({normalise_for_matching(a).strip() for a in allow} - {""})
        if not self.words:
            raise ValueError("SensitiveWordMatcher needs at least one word")
        self._automaton = ahocorasick.Automaton()
        for folded in self._original:
            self._automaton.add_word(folded, (False, folded))
        for phrase in self.allow:
            # A phrase that is itself a listed word stays listed: the word list wins.
            if phrase not in self._original:
                self._automaton.add_word(phrase, (True, phrase))
        self._automaton.make_automaton()

    @classmethod
    def default(cls) -> "SensitiveWordMatcher":
        """The project's curated lists (filters/data/sensitive_words.txt, sensitive_allow.txt)."""
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
        """The listed words found in `text` outside allowed phrases, each once, in order of
        first appearance. An empty list means the caption is clean."""
        if not text:
            return []
        hits: list[tuple[int, int, str]] = []
        allowed: list[tuple[int, int]] = []
        for end, (is_allowed, entry) in self._automaton.iter(normalise_for_matching(text)):
            start = end - len(entry) + 1
            (allowed.append((start, end)) if is_allowed else hits.append((start, end, entry)))
        found: list[str] = []
        for start, end, folded in hits:
            word = self._original[folded]
            if word in found:
                continue
            if any(a_start <= start and end <= a_end for a_start, a_end in allowed):
                continue
            found.append(word)
        return found
