"""Width, height and format of an image from its header, without decoding the pixels.

Pillow opens lazily: `Image.open` reads the header only. Decoding every pixel (what img2dataset
does to learn the size) is left to the filter stage, which must check that kept images decode.
Pillow's decompression-bomb guard stays on: an image whose header claims more than twice
`Image.MAX_IMAGE_PIXELS` pixels is refused at open.
"""

from __future__ import annotations

import dataclasses
import io
import warnings

from PIL import Image, UnidentifiedImageError


class NotAnImage(ValueError):
    """No image decoder recognises the bytes (HTML, text, a truncated header...)."""


class DecompressionBomb(ValueError):
    """The header claims more pixels than Pillow's guard allows."""


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    format: str  # Pillow's format name: JPEG, PNG, WEBP, GIF, ...


def inspect_image(data: bytes) -> ImageHeader:
    """The size and format the image's header declares. Raises NotAnImage or DecompressionBomb."""
    if not data:
        raise NotAnImage("empty body")
    try:
        with warnings.catch_warnings():
            # Between 1x and 2x the pixel limit Pillow only warns; such images are legal.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                fmt = image.format or ""
    except Image.DecompressionBombError as err:
        raise DecompressionBomb(str(err)) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise NotAnImage(f"{type(err).__name__}: {err}") from err
    if width <= 0 or height <= 0:
        raise NotAnImage(f"header declares size {width}x{height}")
    return ImageHeader(width, height, fmt)
