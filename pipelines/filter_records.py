"""Record-level rules of the filter stage: one raw record in, a drop reason (or None) and the
record to write out. No Beam here: the Beam job (pipelines/filter.py) wraps these in one generic
DoFn, and tests call them directly.

A record is a dict of RAW_SCHEMA columns plus its position in the input, `_shard` and `_row`,
which decide "the first" occurrence of a duplicate and keep outputs in input order. What only the
whole corpus knows (repeated URLs, frequent captions, repeated image bytes) comes in as the
`ShardFacts` of the record's shard.
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


# What only the whole corpus knows, as the Beam job delivers it to the worker of one shard:
# (fact, key, value) triples about the keys that occur in that shard, and only those that matter.
URL_WINNER = "url_winner"  # key: a URL key repeated in the corpus; value: the row of this shard that
#                            holds its first successful download, or -1 when an earlier shard does
CAPTION_COUNT = "caption_count"  # key: a normalised caption over the threshold; value: its corpus count
IMAGE_WINNER = "image_winner"  # key: a sha256 repeated among kept pairs; value: as for URL_WINNER
NOT_IN_THIS_SHARD = -1
Fact = tuple[str, Any, int]


class ShardFacts:
    """The corpus facts of one shard, from its (fact, key, value) triples: the only corpus state a
    shard's worker holds. Each holds at most one entry per distinct URL, caption or image of the
    shard, so it grows with the shard, never with the corpus."""

    def __init__(self, facts: Iterable[Fact] = ()):
        self.url_winners: dict[str, int] = {}
        self.caption_counts: dict[str, int] = {}
        self.image_winners: dict[Any, int] = {}
        tables = {URL_WINNER: self.url_winners, CAPTION_COUNT: self.caption_counts, IMAGE_WINNER: self.image_winners}
        for fact, key, value in facts:
            if fact not in tables:
                raise ValueError(f"unknown corpus fact {fact!r} for {key!r}")
            tables[fact][key] = value

    def url_first(self, record: Mapping[str, Any]) -> bool:
        """No earlier successful download of the corpus has the record's URL."""
        if not record.get("url"):
            return True
        winner = self.url_winners.get(url_identity(record))
        return winner is None or winner == record["_row"]

    def caption_occurrences(self, caption: str) -> int:
        """The corpus count of a normalised caption, when it fails the frequency rule; else 1."""
        return self.caption_counts.get(caption, 1)

    def image_first(self, record: Mapping[str, Any]) -> bool:
        """No earlier kept pair has the record's image bytes."""
        winner = self.image_winners.get(record.get("sha256"))
        return winner is None or winner == record["_row"]


NO_FACTS = ShardFacts()


class RecordRules:
    """The paper's rules on raw records, built once per worker.

    `check(record, facts)` returns (reason, record_out): the clean record (CLEAN_SCHEMA columns)
    when reason is None, else the reject record (REJECT_SCHEMA columns, no image bytes).
    Positions `_shard`/`_row` ride along on both. `facts` are the corpus facts of the record's
    shard (ShardFacts); they answer the rules' corpus questions, and the reason is still the first
    rule of filters.rules.RULES that fails, so a URL duplicate with a frequent caption is
    `duplicate_url`, as the table orders them.
    """

    def __init__(self, config: FilterConfig = FilterConfig()):
        self.config = config
        self.rules = config.rules()

    def check(self, record: Mapping[str, Any], facts: ShardFacts = NO_FACTS) -> tuple[str | None, dict]:
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

    def pair(self, record: Mapping[str, Any], facts: ShardFacts = NO_FACTS) -> Pair:
        caption = self.rules.caption(caption_as_found(record))
        return Pair(caption, status=record.get("status"), image=record.get("image"),
                    width=record.get("width"), height=record.get("height"),
                    url_first=facts.url_first(record),
                    caption_occurrences=facts.caption_occurrences(caption.text),
                    image_first=facts.image_first(record))


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
