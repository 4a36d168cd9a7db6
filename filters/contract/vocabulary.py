"""The words the shards speak: download statuses, drop reasons, the funnel's stages, the name mask.

Each vocabulary has this one definition. The crawler writes `DownloadStatus` values into raw shards,
the rules of `filters/` give `DropReason` values, the filter job writes them into reject shards and
`funnel.json`, and the report and the tests read them back. Members are `str` subclasses, so they
compare equal to, and are stored in Parquet as, their plain string values.
"""

from __future__ import annotations

import dataclasses
import enum


class DownloadStatus(enum.StrEnum):
    """`status` of a raw row: the download succeeded, or why it did not."""

    SUCCESS = "success"
    HTTP_ERROR = "http_error"  # a 4xx/5xx answer after the allowed retries
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    TOO_LARGE = "too_large"  # over the byte cap
    NOT_AN_IMAGE = "not_an_image"  # wrong content type, or a body no image decoder recognises
    DECOMPRESSION_BOMB = "decompression_bomb"  # more pixels than the project's pixel cap
    ROBOTS_DISALLOWED = "robots_disallowed"  # robots.txt of the image host
    NOAI = "noai"  # X-Robots-Tag: noai / noimageai
    UNSAFE_DESTINATION = "unsafe_destination"  # an address that is not globally routable, not allowed
    BAD_URL = "bad_url"  # not http(s), or unparsable
    ERROR = "error"  # anything else, with the detail in error_message


class DropReason(enum.StrEnum):
    """Every reason a pair can be dropped for, in the order the rules run (the paper, 3.1 and 3.2)."""

    DOWNLOAD_FAILED = "download_failed"
    DUPLICATE_URL = "duplicate_url"
    IMAGE_TOO_SMALL = "image_too_small"
    ASPECT_RATIO = "aspect_ratio"
    IMAGE_CORRUPT = "image_corrupt"  # the image does not decode fully
    TEXT_LENGTH = "text_length"
    MEANINGLESS_CAPTION = "meaningless_caption"
    FREQUENT_CAPTION = "frequent_caption"
    SENSITIVE_WORD = "sensitive_word"
    DUPLICATE_IMAGE = "duplicate_image"  # optional exact de-duplication by sha256, off by default


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the funnel and the reasons it can drop a pair for."""

    name: str
    reasons: tuple[DropReason, ...]
    optional: bool = False  # runs only when switched on (image de-duplication)


#: The funnel's stages in the order the filter applies them. Person-name masking changes a caption
#: and never drops one, so it is not a stage of the funnel.
STAGES: tuple[Stage, ...] = (
    Stage("download", (DropReason.DOWNLOAD_FAILED,)),
    Stage("url_dedup", (DropReason.DUPLICATE_URL,)),
    Stage("image_size", (DropReason.IMAGE_TOO_SMALL, DropReason.ASPECT_RATIO)),
    Stage("image_decode", (DropReason.IMAGE_CORRUPT,)),
    Stage("text_length", (DropReason.TEXT_LENGTH,)),
    Stage("meaningless", (DropReason.MEANINGLESS_CAPTION,)),
    Stage("frequency", (DropReason.FREQUENT_CAPTION,)),
    Stage("sensitive", (DropReason.SENSITIVE_WORD,)),
    Stage("image_dedup", (DropReason.DUPLICATE_IMAGE,), optional=True),
)


def stage_of(reason: DropReason) -> Stage:
    """The stage that drops pairs for `reason`."""
    return next(stage for stage in STAGES if reason in stage.reasons)


def stages(with_optional: bool = False) -> tuple[Stage, ...]:
    """The stages that run: the paper's, plus the optional ones when switched on."""
    return tuple(s for s in STAGES if with_optional or not s.optional)


#: What replaces a person's name in a caption (rule 4). Training maps it to one token id.
NAME_MASK = "<人名>"
