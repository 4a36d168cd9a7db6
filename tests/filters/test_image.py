"""Image rules: size and aspect at their boundaries, and the full-decode check."""

import io
import random

import pytest
from PIL import Image

from filters.image import ImageConfig, check_decodes, check_image, image_decodes


@pytest.mark.parametrize("width, height, expected", [
    (200, 300, "image_too_small"),   # 200 is dropped ...
    (300, 200, "image_too_small"),
    (201, 201, None),                # ... and 201 kept
    (200, 200, "image_too_small"),
    (0, 500, "image_too_small"),
    (-5, 500, "image_too_small"),
    (None, 500, "image_too_small"),
    (603, 201, None),                # ratio exactly 3 is kept
    (201, 603, None),
    (604, 201, "aspect_ratio"),      # just over 3
    (201, 604, "aspect_ratio"),
    (904, 301, "aspect_ratio"),
    (900, 300, None),
    (1920, 1080, None),
    (150, 2000, "image_too_small"),  # too small wins over the ratio (first failing rule)
])
def test_check_image_boundaries(width, height, expected):
    assert check_image(width, height) == expected


def test_check_image_config_changes_thresholds():
    assert check_image(150, 150, ImageConfig(min_side=100)) is None
    assert check_image(500, 201, ImageConfig(max_aspect_ratio=2.0)) == "aspect_ratio"


@pytest.mark.parametrize("kwargs", [{"min_side": -1}, {"max_aspect_ratio": 0.5}])
def test_image_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        ImageConfig(**kwargs)


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
    assert check_decodes(_encode(fmt)) is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_images_do_not_decode(fmt):
    data = _encode(fmt, (640, 480))
    if fmt != "WEBP":  # (libwebp refuses a truncated file at open already)
        # The header still parses: the crawl would have accepted it.
        assert Image.open(io.BytesIO(data[: len(data) // 2])).size == (640, 480)
    assert not image_decodes(data[: len(data) // 2])
    assert check_decodes(data[: len(data) // 2]) == "image_corrupt"


@pytest.mark.parametrize("data", [None, b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 50])
def test_garbage_does_not_decode(data):
    assert check_decodes(data) == "image_corrupt"
