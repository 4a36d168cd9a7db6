"""The text rules chained in the paper's order, on one caption.

    length (1..31 Chinese words) -> meaningless -> frequency -> person names (masked) -> sensitive

The chain takes the caption as found, normalises it, and returns the first failing rule's drop
reason (or None) and the caption to store (normalised and masked). The frequency rule needs the
corpus count, which the caller computes (globally, in the pipeline) and passes as a lookup.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Container, Iterable

from filters.names import PersonNameMasker, default_masker
from filters.sensitive import SensitiveWordMatcher
from filters.text import (TextConfig, check_word_count, count_han_tokens, is_meaningless_caption,
                          normalise_caption, segment)

_NOTHING_HOT: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class TextVerdict:
    """The outcome of the text rules: `reason` is None when the caption is kept."""

    reason: str | None
    caption: str  # normalised; masked when the caption got as far as the name rule
    names_masked: bool = False


class TextFilterChain:
    """The paper's text rules in order. Build once (the masker and the automaton are heavy),
    apply to many captions."""

    def __init__(self, config: TextConfig = TextConfig(), *,
                 matcher: SensitiveWordMatcher | None = None,
                 masker: PersonNameMasker | None = None,
                 cut: Callable[[str], Iterable[str]] = segment,
                 mask: Callable[[str], str] | None = None):
        self.config = config
        self.matcher = matcher if matcher is not None else SensitiveWordMatcher.default()
        self.cut = cut
        self._custom_mask = mask
        self._masker = None if mask is not None else (masker or default_masker())

    def apply(self, caption_as_found: str | None, hot_captions: Container[str] = _NOTHING_HOT) -> TextVerdict:
        """Run the rules on one caption. `hot_captions` holds the normalised captions seen more
        than `config.max_occurrences` times in the corpus."""
        caption = normalise_caption(caption_as_found)
        # Segment once: the word count and the name masker share the tokens.
        tokens = list(self.cut(caption)) if caption else []
        reason = check_word_count(count_han_tokens(tokens), self.config)
        if reason is None and is_meaningless_caption(caption):
            reason = "meaningless_caption"
        if reason is None and caption in hot_captions:
            reason = "frequent_caption"
        if reason is not None:
            return TextVerdict(reason, caption)
        masked = (self._masker.mask(caption, tokens) if self._masker is not None
                  else self._custom_mask(caption))
        # Sensitive words are looked for in the unmasked caption: a mask must not hide a word
        # that straddles a name.
        if self.matcher.find(caption):
            return TextVerdict("sensitive_word", masked, masked != caption)
        return TextVerdict(None, masked, masked != caption)
