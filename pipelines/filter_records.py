"""Record-level rules of the filter stage: one raw record in, a drop reason (or None) and the
record to write out. No Beam here: the Beam job (pipelines/filter.py) wraps these in one generic
DoFn, and tests call them directly.

A record is a dict of RAW_SCHEMA columns plus its position in the input, `_shard` and `_row`,
which decide "the first" occurrence of a duplicate and keep outputs in input order. What only the
whole corpus knows about a row (a repeated URL, its caption's count, repeated image bytes) comes
in as `RowFacts`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from filters import contract
from filters.contract.flags import flag
from filters.image import ImageConfig
from filters.rules import Pair, RuleSet
from filters.sensitive import SensitiveWordMatcher
from filters.text import TextConfig

Position = tuple[int, int]  # (shard index, row index): the order of the raw corpus


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """The filter stage's settings; the defaults are the paper's rules."""

    image: ImageConfig = ImageConfig()
    text: TextConfig = TextConfig()
    dedup_images: bool = dataclasses.field(default=False, metadata=flag(
        "also drop later pairs with identical image bytes (duplicate_image; the paper does not)"))
    sensitive_words: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(
        "word list replacing the default one", metavar="FILE"))
    sensitive_allow: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(
        "allow-list replacing the default one", metavar="FILE"))
    extra_sensitive_words: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(
        "word list added to the one in use", metavar="FILE"))
    extra_sensitive_allow: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(
        "allow-list added to the one in use", metavar="FILE"))

    def __post_init__(self) -> None:
        if not isinstance(self.image, ImageConfig) or not isinstance(self.text, TextConfig):
            raise TypeError("image and text must be ImageConfig and TextConfig")
        for field in ("sensitive_words", "sensitive_allow", "extra_sensitive_words", "extra_sensitive_allow"):
            if isinstance(getattr(self, field), str):
                raise TypeError(f"{field} must be a tuple of paths, not a string")

    def matcher(self) -> SensitiveWordMatcher:
        return SensitiveWordMatcher.from_files(
            self.sensitive_words, self.sensitive_allow,
            extra_words=self.extra_sensitive_words, extra_allow=self.extra_sensitive_allow)

    def stages(self) -> tuple[contract.Stage, ...]:
        """The funnel's stages this configuration runs."""
        return contract.stages(with_optional=self.dedup_images)

    def rules(self) -> RuleSet:
        return RuleSet(self.image, self.text, matcher=self.matcher(), dedup_images=self.dedup_images)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def position(record: Mapping[str, Any]) -> Position:
    return (record["_shard"], record["_row"])


def caption_as_found(record: Mapping[str, Any]) -> str | None:
    """The caption as found: `caption_raw`, or `caption` for raw shards that hold only that."""
    raw = record.get("caption_raw")
    return raw if raw is not None else record.get("caption")


def url_identity(record: Mapping[str, Any]) -> str:
    """What the duplicate-URL rule compares: the contract's key of the URL."""
    return contract.url_key(record["url"])


# The facts about one row that only the whole corpus knows, as the Beam job delivers them to the
# worker of the row's shard: (row, fact, value) triples, only for rows that have one.
URL_NOT_FIRST = "url_not_first"  # an earlier successful download has the same URL key
CAPTION_COUNT = "caption_count"  # value: the corpus count of the row's caption, when over the threshold
IMAGE_NOT_FIRST = "image_not_first"  # an earlier kept pair has the same image bytes (--dedup-images)
Fact = tuple[int, str, int]


@dataclasses.dataclass(frozen=True)
class RowFacts:
    """What the corpus says about one row; the defaults are those of a row no other row affects."""

    url_first: bool = True
    caption_occurrences: int = 1
    image_first: bool = True


class ShardFacts:
    """The corpus facts of one shard's rows, from its (row, fact, value) triples: the only corpus
    state a shard's worker holds, so it grows with the shard, never with the corpus."""

    def __init__(self, facts: Iterable[Fact] = ()):
        self.url_not_first: set[int] = set()
        self.image_not_first: set[int] = set()
        self.caption_counts: dict[int, int] = {}
        for row, fact, value in facts:
            if fact == URL_NOT_FIRST:
                self.url_not_first.add(row)
            elif fact == IMAGE_NOT_FIRST:
                self.image_not_first.add(row)
            elif fact == CAPTION_COUNT:
                self.caption_counts[row] = value
            else:
                raise ValueError(f"unknown corpus fact {fact!r} for row {row}")

    def of(self, row: int) -> RowFacts:
        return RowFacts(url_first=row not in self.url_not_first,
                        caption_occurrences=self.caption_counts.get(row, 1),
                        image_first=row not in self.image_not_first)


class RecordRules:
    """The paper's rules on raw records, built once per worker.

    `check(record, facts)` returns (reason, record_out): the clean record (CLEAN_SCHEMA columns)
    when reason is None, else the reject record (REJECT_SCHEMA columns, no image bytes).
    Positions `_shard`/`_row` ride along on both. `facts` is what the corpus says about the
    record's row (RowFacts); the reason is still the first rule of filters.rules.RULES that fails,
    so a URL duplicate with a frequent caption is `duplicate_url`, as the table orders them.
    """

    def __init__(self, config: FilterConfig = FilterConfig()):
        self.config = config
        self.rules = config.rules()

    def check(self, record: Mapping[str, Any], facts: RowFacts = RowFacts()) -> tuple[str | None, dict]:
        verdict = self.rules.judge(self.pair(record, facts))
        if verdict.reason is None:
            return None, clean_record(record, verdict.caption, self.masked_query(record.get("query")))
        return verdict.reason, reject_record(record, verdict.reason, verdict.caption)

    def masked_query(self, query: str | None) -> str | None:
        """The query with rule 4 applied, for clean shards: a search query can be a person's name.
        A query without a name is stored exactly as found."""
        if not query:
            return query
        caption = self.rules.caption(query)
        masked = self.rules.mask(caption)
        return query if masked == caption.text else masked

    def pair(self, record: Mapping[str, Any], facts: RowFacts = RowFacts()) -> Pair:
        return Pair(self.rules.caption(caption_as_found(record)), status=record.get("status"),
                    image=record.get("image"), width=record.get("width"), height=record.get("height"),
                    url_first=facts.url_first, caption_occurrences=facts.caption_occurrences,
                    image_first=facts.image_first)


def clean_record(record: Mapping[str, Any], caption: str, query: str | None = None) -> dict:
    """The record a clean shard holds: CLEAN_COLUMNS only (no caption as found), with the masked
    caption and, when given, the masked query."""
    out = {name: record.get(name) for name in contract.CLEAN_COLUMNS}
    out["caption"] = caption
    if query is not None:
        out["query"] = query
    out["_shard"], out["_row"] = record["_shard"], record["_row"]
    return out


def reject_record(record: Mapping[str, Any], reason: str, caption: str | None = None) -> dict:
    out = {name: record.get(name) for name in contract.REJECT_COLUMNS if name != "drop_reason"}
    out["status"] = out.get("status") or contract.DownloadStatus.SUCCESS
    if caption is not None:
        out["caption"] = caption
    out["drop_reason"] = reason
    out["_shard"], out["_row"] = record["_shard"], record["_row"]
    return out


def strip_position(record: Mapping[str, Any]) -> dict:
    return {k: v for k, v in record.items() if k not in ("_shard", "_row")}
