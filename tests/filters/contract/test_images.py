"""Image bytes to pixels: whole images decode, truncated and garbage ones do not, one pixel cap."""

import io
import random

import pytest
from PIL import Image

from filters.contract.images import ImageDecodeError, decode_image, image_decodes


def _encode(fmt, size=(320, 240)):
    """A noisy image, so that every part of the compressed data carries pixels."""
    rng = random.Random(0)
    image = Image.frombytes("RGB", size, bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_whole_images_decode(fmt):
    assert image_decodes(_encode(fmt))
    

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_images_do_not_decode(fmt):
    data = _encode(fmt, (640, 480))
    if fmt != "WEBP":  # (libwebp refuses a truncated file at open already)
        # The header still parses: the crawl would have accepted it.
        assert Image.open(io.BytesIO(data[: len(data) // 2])).size == (640, 480)
    assert not image_decodes(data[: len(data) // 2])


@pytest.mark.parametrize("data", [None, b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 50])
def test_garbage_does_not_decode(data):
    assert not image_decodes(data)
    with pytest.raises(ImageDecodeError):
        decode_image(data)
