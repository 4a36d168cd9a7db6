"""Image rules of the paper (3.1): both sides greater than 200 px, long/short at most 3; and the
full-decode check, because the crawl only read the image header.
"""

from __future__ import annotations

import dataclasses
import io
import warnings

from PIL import Image

# A decoded image larger than this is refused as a decompression bomb (Pillow's own default is
# 89M pixels with a warning, 179M with an error; we refuse at the error level without a warning).
MAX_PIXELS = 179_000_000


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """Keep an image when both sides are > `min_side` px and long/short <= `max_aspect_ratio`."""

    min_side: int = 200
    max_aspect_ratio: float = 3.0

    def __post_init__(self) -> None:
        if self.min_side < 0:
            raise ValueError(f"min_side must be >= 0, got {self.min_side}")
        if not self.max_aspect_ratio >= 1:
            raise ValueError(f"max_aspect_ratio must be >= 1, got {self.max_aspect_ratio}")


def check_image(width: int, height: int, config: ImageConfig = ImageConfig()) -> str | None:
    """The drop reason for an image of `width` x `height` px, or None to keep it.

    "image_too_small" unless both sides are > config.min_side (200 dropped, 201 kept); then
    "aspect_ratio" if long/short > config.max_aspect_ratio (exactly 3 is kept). A missing or
    non-positive size is "image_too_small".
    """
    if width is None or height is None or width <= config.min_side or height <= config.min_side:
        return "image_too_small"
    long_side, short_side = max(width, height), min(width, height)
    # Compare without dividing so that a ratio of exactly 3 is never lost to rounding.
    if long_side > config.max_aspect_ratio * short_side:
        return "aspect_ratio"
    return None


def image_decodes(data: bytes | None) -> bool:
    """True when `data` is an image that decodes completely.

    JPEGs are decoded in draft mode (DCT scaling to 1/8): every byte of the entropy-coded data is
    still read, so truncation and corruption are caught, at a fraction of the cost of a full
    decode. Other formats are decoded in full (only the first frame of an animation).
    """
    if not data:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    return False
                if image.format == "JPEG":
                    image.draft(image.mode if image.mode in ("RGB", "L") else "RGB",
                                (max(1, width // 8), max(1, height // 8)))
                image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError):
        # Pillow reports truncated and corrupt data as OSError (and a few decoders as
        # ValueError/SyntaxError/EOFError): all of them mean "does not decode".
        return False
    return True


def check_decodes(data: bytes | None) -> str | None:
    """"image_corrupt" unless `data` decodes completely."""
    return None if image_decodes(data) else "image_corrupt"
