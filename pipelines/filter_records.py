"""Record-level rules of the filter stage: one raw record in, a drop reason (or None) and the
record to write out. No Beam here: the Beam job (pipelines/filter.py) wraps these in one generic
DoFn, and tests call them directly.

A record is a dict of RAW_SCHEMA columns plus its position in the input, `_shard` and `_row`,
which decide "the first" occurrence of a duplicate and keep outputs in input order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from filters.chain import TextFilterChain
from filters.image import ImageConfig, check_decodes, check_image
from filters.sensitive import SensitiveWordMatcher
from filters.text import TextConfig, normalise_caption
from pipelines import schema

Position = tuple[int, int]  # (shard index, row index): the order of the raw corpus

#: The funnel's stages, in pipeline order, with the reasons each can give.
STAGES = (
    ("download", ("download_failed",)),
    ("url_dedup", ("duplicate_url",)),
    ("image_size", ("image_too_small", "aspect_ratio")),
    ("image_decode", ("image_corrupt",)),
    ("text_length", ("text_length",)),
    ("meaningless", ("meaningless_caption",)),
    ("frequency", ("frequent_caption",)),
    ("sensitive", ("sensitive_word",)),
    ("image_dedup", ("duplicate_image",)),
)


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """The filter stage's settings; the defaults are the paper's rules."""

    image: ImageConfig = ImageConfig()
    text: TextConfig = TextConfig()
    dedup_images: bool = False  # exact sha256 de-duplication; the paper does not do it
    sensitive_words: tuple[str, ...] = ()  # files replacing the default list
    sensitive_allow: tuple[str, ...] = ()  # files replacing the default allow-list
    extra_sensitive_words: tuple[str, ...] = ()  # files extending the list in use
    extra_sensitive_allow: tuple[str, ...] = ()

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

    def stages(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return STAGES if self.dedup_images else STAGES[:-1]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def position(record: Mapping[str, Any]) -> Position:
    return (record["_shard"], record["_row"])


def caption_for_count(record: Mapping[str, Any]) -> str:
    """The normalised caption the frequency rule counts (from the caption as found)."""
    raw = record.get("caption_raw")
    return normalise_caption(raw if raw is not None else record.get("caption"))


class RecordRules:
    """The per-record rules in the paper's order, built once per worker.

    `check(record, duplicate_url_winners, hot_captions)` returns (reason, record_out): the clean
    record (CLEAN_SCHEMA columns) when reason is None, else the reject record (REJECT_SCHEMA
    columns, no image bytes). Positions `_shard`/`_row` ride along on both.
    """

    def __init__(self, config: FilterConfig = FilterConfig()):
        self.config = config
        self.text = TextFilterChain(config.text, matcher=config.matcher())

    def check(self, record: Mapping[str, Any], duplicate_url_winners: Mapping[str, Position],
              hot_captions: Mapping[str, int]) -> tuple[str | None, dict]:
        reason, caption = self._reason(record, duplicate_url_winners, hot_captions)
        if reason is None:
            return None, clean_record(record, caption)
        return reason, reject_record(record, reason, caption)

    def _reason(self, record, duplicate_url_winners, hot_captions) -> tuple[str | None, str]:
        caption = caption_for_count(record)
        if record.get("status") != schema.STATUS_SUCCESS or not record.get("image"):
            return "download_failed", caption
        winner = duplicate_url_winners.get(record["url"])
        if winner is not None and tuple(winner) != position(record):
            return "duplicate_url", caption
        reason = check_image(record.get("width"), record.get("height"), self.config.image)
        if reason is None:
            reason = check_decodes(record["image"])
        if reason is not None:
            return reason, caption
        verdict = self.text.apply(record.get("caption_raw") if record.get("caption_raw") is not None
                                  else record.get("caption"), hot_captions)
        return verdict.reason, verdict.caption


def check_duplicate_image(record: Mapping[str, Any], duplicate_image_winners: Mapping[str, Position]) -> str | None:
    """"duplicate_image" when another kept pair with the same image bytes came first."""
    winner = duplicate_image_winners.get(record.get("sha256"))
    return "duplicate_image" if winner is not None and tuple(winner) != position(record) else None


_CLEAN_COLUMNS = tuple(schema.CLEAN_SCHEMA.names)
_REJECT_COLUMNS = tuple(schema.REJECT_SCHEMA.names)


def clean_record(record: Mapping[str, Any], caption: str) -> dict:
    out = {name: record.get(name) for name in _CLEAN_COLUMNS}
    out["caption"] = caption
    out["_shard"], out["_row"] = record["_shard"], record["_row"]
    return out


def reject_record(record: Mapping[str, Any], reason: str, caption: str | None = None) -> dict:
    out = {name: record.get(name) for name in _REJECT_COLUMNS if name != "drop_reason"}
    out["status"] = out.get("status") or schema.STATUS_SUCCESS
    if caption is not None:
        out["caption"] = caption
    out["drop_reason"] = reason
    out["_shard"], out["_row"] = record["_shard"], record["_row"]
    return out


def strip_position(record: Mapping[str, Any]) -> dict:
    return {k: v for k, v in record.items() if k not in ("_shard", "_row")}
