"""Image bytes to pixels, with one pixel cap for the whole project.

The crawl reads only an image's header (`read_header`); the filter's `image_corrupt` rule,
training and evaluation decode it (`decode_image`). All of them refuse the same images: those over
`MAX_PIXELS`. So an image the filter keeps is one that training can decode within bounded memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import warnings
from collections.abc import Iterator

from PIL import Image

#: The most pixels an image may have, checked on the header before any pixel is decoded.
#: 2**25 (about 33.5M: 8192x4096, 5792x5792, a 24-megapixel photo with room to spare) decodes
#: into 96 MiB as RGB; a decoder working in a 4-byte mode (RGBA, CMYK) plus the RGB copy peaks at
#: 7 bytes a pixel, 224 MiB, which a training worker can hold several of. Pillow's own guard
#: (error at 179M pixels) would let a 20 KB 13000x13000 PNG through and cost 1.4 GB to decode.
#: Training is resized to a few hundred pixels a side, so nothing larger is worth its memory.
MAX_PIXELS = 2**25


class NotAnImage(ValueError):
    """No image decoder recognises the bytes (HTML, text, a truncated header...)."""


class DecompressionBomb(ValueError):
    """The header declares more pixels than MAX_PIXELS."""


class ImageDecodeError(ValueError):
    """The bytes do not decode into a whole image."""


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    format: str  # Pillow's format name: JPEG, PNG, WEBP, GIF, ...


def _check_size(width: object, height: object) -> None:
    """Refuse a size that is not two positive integers (a hostile IM header declares 4.5x4)
    and one over MAX_PIXELS."""
    if not (isinstance(width, int) and isinstance(height, int)):
        raise NotAnImage(f"header declares a size that is not whole pixels: {width!r}x{height!r}")
    if width <= 0 or height <= 0:
        raise NotAnImage(f"header declares size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise DecompressionBomb(f"{width}x{height} is more than {MAX_PIXELS} pixels")


@contextlib.contextmanager
def _opened(data: bytes) -> Iterator[Image.Image]:
    """Pillow's lazy open (the header only). Our own cap replaces Pillow's bomb warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            yield image


def read_header(data: bytes) -> ImageHeader:
    """The size and format the image's header declares, without decoding pixels.

    Raises NotAnImage or DecompressionBomb.
    """
    if not data:
        raise NotAnImage("empty body")
    try:
        with _opened(data) as image:
            width, height = image.size
            fmt = image.format or ""
    except Image.DecompressionBombError as err:
        raise DecompressionBomb(str(err)) from err
    except Exception as err:  # noqa: BLE001 - any decoder failure on a header means "not an image"
        raise NotAnImage(f"{type(err).__name__}: {err}") from err
    _check_size(width, height)
    return ImageHeader(width, height, fmt)


def decode_image(data: bytes | None, *, verify_only: bool = False) -> Image.Image:
    """The fully decoded image, as RGB (as decoded, with `verify_only`). Raises ImageDecodeError
    when the bytes do not decode.

    Every failure of a decoder is a failure to decode, whatever the decoder raises: Pillow's
    plug-ins raise OSError, ValueError, SyntaxError and EOFError, and some raise IndexError or
    TypeError on hostile files; none of them may escape as a crash of the caller.

    With `verify_only`, JPEGs are decoded in draft mode (DCT scaling to 1/8): every byte of the
    entropy-coded data is still read, so truncation and corruption are caught, at a fraction of
    the cost. The image returned is then the reduced one. Animations give their first frame.
    """
    if not data:
        raise ImageDecodeError("no image bytes")
    try:
        with _opened(data) as image:
            width, height = image.size
            _check_size(width, height)
            if verify_only and image.format == "JPEG":
                image.draft(image.mode if image.mode in ("RGB", "L") else "RGB",
                            (max(1, width // 8), max(1, height // 8)))
            image.load()
            return image if verify_only else image.convert("RGB")
    except Exception as err:  # noqa: BLE001 - see the docstring: every decoder failure is a value
        raise ImageDecodeError(f"{type(err).__name__}: {err}") from err


def image_decodes(data: bytes | None) -> bool:
    """True when `data` is an image that decodes completely (within the pixel cap)."""
    try:
        decode_image(data, verify_only=True)
    except ImageDecodeError:
        return False
    return True
