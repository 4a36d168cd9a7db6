"""Image rules of the paper (3.1): both sides greater than 200 px, long/short at most 3.

Whether an image decodes fully (`image_corrupt`) is `filters.contract.images.image_decodes`, the
one decoder that training and evaluation use too.
"""

from __future__ import annotations

import dataclasses

from filters.contract.flags import flag
from filters.contract.vocabulary import DropReason


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """Keep an image when both sides are > `min_side` px and long/short <= `max_aspect_ratio`."""

    min_side: int = dataclasses.field(default=200, metadata=flag(
        "keep images whose both sides are greater than this"))
    max_aspect_ratio: float = dataclasses.field(default=3.0, metadata=flag(
        "keep images whose long/short side ratio is at most this"))

    def __post_init__(self) -> None:
        if self.min_side < 0:
            raise ValueError(f"min_side must be >= 0, got {self.min_side}")
        if not self.max_aspect_ratio >= 1:
            raise ValueError(f"max_aspect_ratio must be >= 1, got {self.max_aspect_ratio}")


def is_too_small(width: int | None, height: int | None, config: ImageConfig = ImageConfig()) -> bool:
    """Unless both sides are > config.min_side (200 dropped, 201 kept). A missing or non-positive
    size is too small."""
    return width is None or height is None or width <= config.min_side or height <= config.min_side


def has_bad_aspect_ratio(width: int, height: int, config: ImageConfig = ImageConfig()) -> bool:
    """long/short > config.max_aspect_ratio (exactly 3 is kept)."""
    long_side, short_side = max(width, height), min(width, height)
    # Compared without dividing, so that a ratio of exactly 3 is never lost to rounding.
    return long_side > config.max_aspect_ratio * short_side


def check_image(width: int, height: int, config: ImageConfig = ImageConfig()) -> str | None:
    """The drop reason for an image of `width` x `height` px, or None to keep it: too small first,
    then a bad aspect ratio."""
    if is_too_small(width, height, config):
        return DropReason.IMAGE_TOO_SMALL
    if has_bad_aspect_ratio(width, height, config):
        return DropReason.ASPECT_RATIO
    return None
