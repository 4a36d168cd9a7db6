"""The paper's rules as one table: (stage, drop reason, predicate), in the order they run.

    download -> url_dedup -> image_size -> image_decode -> text_length -> meaningless -> frequency
    -> [names masked] -> sensitive -> (image_dedup, optional)

The table is the one place that says which rule drops a pair for which reason. The filter job
derives its stages, counters and funnel from it, and a pair's drop reason is the first rule that
fails (docs/design.md: "Which reason a drop gets"). Person-name masking changes a caption and never drops
it, so it is a step between two groups of rules rather than a row.

The facts that need the whole corpus (is this the first pair with its URL? how often does its
caption occur? is it the first kept pair with these image bytes?) are computed by the job and
handed in on the `Pair`; every predicate here is a pure function of one pair.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable

from filters.contract.images import image_decodes
from filters.contract.vocabulary import STAGES, DownloadStatus, DropReason, stage_of
from filters.image import ImageConfig, has_bad_aspect_ratio, is_too_small
from filters.names import PersonNameMasker, default_masker
from filters.sensitive import SensitiveWordMatcher
from filters.text import (
    TextConfig,
    count_han_tokens,
    has_chinese_word_count,
    is_frequent,
    is_meaningless_caption,
    is_too_long,
    normalise_caption,
    segment,
)

Segmenter = Callable[[str], Iterable[str]]


@dataclasses.dataclass
class Caption:
    """A caption normalised once and segmented at most once, shared by every rule that reads it."""

    text: str  # the normalised caption (NFKC, whitespace collapsed, stripped)
    cut: Segmenter = dataclasses.field(default=segment, repr=False, compare=False)

    @classmethod
    def from_found(cls, found: str | None, cut: Segmenter = segment) -> "Caption":
        return cls(normalise_caption(found), cut)

    @functools.cached_property
    def tokens(self) -> list[str]:
        return list(self.cut(self.text)) if self.text else []

    @functools.cached_property
    def chinese_words(self) -> int:
        return count_han_tokens(self.tokens)


@dataclasses.dataclass
class Pair:
    """What the rules look at for one image-caption pair."""

    caption: Caption
    status: str = DownloadStatus.SUCCESS
    image: bytes | None = None
    width: int | None = None
    height: int | None = None
    url_first: bool = True  # no earlier pair of the corpus has the same (normalised) URL
    caption_occurrences: int = 1  # the corpus count of the normalised caption
    image_first: bool = True  # no earlier kept pair has the same image bytes


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome for one pair: `reason` is None when the pair is kept."""

    reason: DropReason | None
    caption: str  # normalised; masked when the pair got as far as the name rule
    names_masked: bool = False


# --------------------------------------------------------------------------------------------
# Predicates: each is True when the pair fails the rule
# --------------------------------------------------------------------------------------------


def download_failed(pair: Pair, rules: "RuleSet") -> bool:
    return pair.status != DownloadStatus.SUCCESS or not pair.image


def duplicate_url(pair: Pair, rules: "RuleSet") -> bool:
    return not pair.url_first


def image_too_small(pair: Pair, rules: "RuleSet") -> bool:
    return is_too_small(pair.width, pair.height, rules.image)


def bad_aspect_ratio(pair: Pair, rules: "RuleSet") -> bool:
    return has_bad_aspect_ratio(pair.width, pair.height, rules.image)


def image_corrupt(pair: Pair, rules: "RuleSet") -> bool:
    return not image_decodes(pair.image)


def wrong_length(pair: Pair, rules: "RuleSet") -> bool:
    # The character bound first: an over-long caption is never segmented.
    return is_too_long(pair.caption.text, rules.text) or not has_chinese_word_count(pair.caption.chinese_words,
                                                                                     rules.text)


def meaningless(pair: Pair, rules: "RuleSet") -> bool:
    return is_meaningless_caption(pair.caption.text)


def frequent(pair: Pair, rules: "RuleSet") -> bool:
    return is_frequent(pair.caption_occurrences, rules.text)


def sensitive(pair: Pair, rules: "RuleSet") -> bool:
    # Looked for in the unmasked caption: a mask must not hide a word that straddles a name.
    return bool(rules.matcher.find(pair.caption.text))


def duplicate_image(pair: Pair, rules: "RuleSet") -> bool:
    return not pair.image_first


@dataclasses.dataclass(frozen=True)
class Rule:
    reason: DropReason
    fails: Callable[[Pair, "RuleSet"], bool]
    on_text: bool = False  # reads only the caption (and its corpus count)

    @property
    def stage(self) -> str:
        """The funnel stage of the contract that gives this reason."""
        return stage_of(self.reason).name


#: The rules in the order they run. Names are masked just before the sensitive-word rule.
RULES: tuple[Rule, ...] = (
    Rule(DropReason.DOWNLOAD_FAILED, download_failed),
    Rule(DropReason.DUPLICATE_URL, duplicate_url),
    Rule(DropReason.IMAGE_TOO_SMALL, image_too_small),
    Rule(DropReason.ASPECT_RATIO, bad_aspect_ratio),
    Rule(DropReason.IMAGE_CORRUPT, image_corrupt),
    Rule(DropReason.TEXT_LENGTH, wrong_length, on_text=True),
    Rule(DropReason.MEANINGLESS_CAPTION, meaningless, on_text=True),
    Rule(DropReason.FREQUENT_CAPTION, frequent, on_text=True),
    Rule(DropReason.SENSITIVE_WORD, sensitive, on_text=True),
    Rule(DropReason.DUPLICATE_IMAGE, duplicate_image),
)
MASK_BEFORE = DropReason.SENSITIVE_WORD

if [(r.stage, r.reason) for r in RULES] != [(s.name, r) for s in STAGES for r in s.reasons]:
    raise AssertionError("filters.rules.RULES is out of step with the contract's STAGES")


class RuleSet:
    """The rules with the resources their predicates share (segmenter, name masker, sensitive-word
    automaton) and their thresholds. Build once per worker, apply to many pairs.

    `mask` replaces the name masker (a function of the normalised caption), and `cut` the
    segmenter: the benchmark runs the same rules on plain jieba that way.
    """

    def __init__(self, image: ImageConfig = ImageConfig(), text: TextConfig = TextConfig(), *,
                 matcher: SensitiveWordMatcher | None = None, masker: PersonNameMasker | None = None,
                 mask: Callable[[str], str] | None = None, cut: Segmenter = segment,
                 dedup_images: bool = False):
        self.image = image
        self.text = text
        self.matcher = matcher if matcher is not None else SensitiveWordMatcher.default()
        self.cut = cut
        self._custom_mask = mask
        self._masker = None if mask is not None else (masker or default_masker())
        self.rules = tuple(r for r in RULES if dedup_images or r.reason != DropReason.DUPLICATE_IMAGE)

    def caption(self, found: str | None) -> Caption:
        """A caption as found, normalised, ready for the rules."""
        return Caption.from_found(found, self.cut)

    def mask(self, caption: Caption) -> str:
        """Rule 4: the caption with each person's name replaced by the mask."""
        if self._custom_mask is not None:
            return self._custom_mask(caption.text)
        return self._masker.mask(caption.text, caption.tokens)

    def judge(self, pair: Pair, text_only: bool = False) -> Verdict:
        """The first rule the pair fails (None: kept), and the caption to store. With
        `text_only`, only the rules that read the caption run."""
        stored = pair.caption.text
        masked = False
        for rule in self.rules:
            if text_only and not rule.on_text:
                continue
            if rule.reason == MASK_BEFORE and not masked:
                stored, masked = self.mask(pair.caption), True
            if rule.fails(pair, self):
                return Verdict(rule.reason, stored, stored != pair.caption.text)
        return Verdict(None, stored, stored != pair.caption.text)

    def judge_caption(self, found: str | None, occurrences: int = 1) -> Verdict:
        """The text rules alone on a caption as found, counted `occurrences` times in the corpus."""
        return self.judge(Pair(self.caption(found), caption_occurrences=occurrences), text_only=True)
