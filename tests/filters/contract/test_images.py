"""Image bytes to pixels: whole images decode, truncated and garbage ones do not, one pixel cap."""

import io
import random
import struct
import time
import zlib

import pytest
from PIL import Image

from filters.contract.images import (
    MAX_PIXELS,
    DecompressionBomb,
    ImageHeader,
    ImageDecodeError,
    NotAnImage,
    decode_image,
    image_decodes,
    read_header,
)
from tests.support.images import png_claiming


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


# --------------------------------------------------------------------------------------------
# Hostile files: every decoder failure is a value, never a crash
# --------------------------------------------------------------------------------------------

# Formats Pillow writes (and reads back); a format this Pillow cannot write is left out below.
_FUZZ_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "QOI", "IM", "PPM", "TGA", "ICO", "PCX", "SGI",
                 "DDS", "MSP", "XBM", "SPIDER", "JPEG2000", "PALM", "ICNS", "EPS", "PDF")
_MODES = {"MSP": "1", "XBM": "1", "PALM": "1", "SPIDER": "F"}


def _small(fmt):
    rng = random.Random(fmt)
    image = Image.frombytes("RGB", (37, 29), bytes(rng.getrandbits(8) for _ in range(37 * 29 * 3)))
    buffer = io.BytesIO()
    try:
        image.convert(_MODES.get(fmt, "RGB")).save(buffer, format=fmt)
    except (KeyError, OSError, ValueError) as err:
        pytest.skip(f"this Pillow cannot write {fmt}: {err}")
    return buffer.getvalue()


def _hostile_variants(data, seed, n_cuts=25, n_mutations=120):
    """Truncations at random places and copies with 1..8 random bytes changed, from one seed."""
    rng = random.Random(seed)
    yield from (data[:n] for n in sorted({rng.randrange(len(data)) for _ in range(n_cuts)}))
    for _ in range(n_mutations):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
        yield bytes(mutated)


@pytest.mark.parametrize("fmt", _FUZZ_FORMATS)
def test_truncated_and_mutated_files_fail_only_with_the_documented_errors(fmt):
    start = time.monotonic()
    for data in _hostile_variants(_small(fmt), seed=fmt):
        try:
            read_header(data)
        except (NotAnImage, DecompressionBomb):
            pass
        try:
            decode_image(data)
        except ImageDecodeError:
            pass
        assert isinstance(image_decodes(data), bool)
    assert time.monotonic() - start < 60


def _im_file(size_text: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="IM")
    return buffer.getvalue().replace(b"Image size (x*y): 4*4", b"Image size (x*y): " + size_text)


def test_a_header_with_a_fractional_size_is_not_an_image():
    data = _im_file(b"4.5*4")  # Pillow's IM reader takes the size as floats
    with pytest.raises(NotAnImage, match="whole pixels"):
        read_header(data)
    with pytest.raises(ImageDecodeError):
        decode_image(data)
    assert not image_decodes(data)


def test_a_truncated_qoi_file_is_a_decode_error():
    data = _small("QOI")
    for cut in range(14, len(data), max(1, len(data) // 40)):
        with pytest.raises(ImageDecodeError):
            decode_image(data[:cut])


# --------------------------------------------------------------------------------------------
# The pixel cap
# --------------------------------------------------------------------------------------------


def test_the_pixel_cap_is_inclusive_and_shared_by_header_and_decode():
    width = 8192
    height = MAX_PIXELS // width
    assert width * height == MAX_PIXELS
    assert read_header(png_claiming(width, height)).width == width
    with pytest.raises(DecompressionBomb):
        read_header(png_claiming(width, height + 1))
    with pytest.raises(ImageDecodeError, match="more than"):
        decode_image(png_claiming(width, height + 1))


def test_a_13000_square_png_of_a_few_kilobytes_is_over_the_cap():
    # 169M pixels: under Pillow's own error level, 1.4 GB to decode as RGBA plus RGB.
    data = _blank_png(13000, 13000)
    assert len(data) < 300_000
    with pytest.raises(DecompressionBomb):
        read_header(data)
    assert not image_decodes(data)


def _blank_png(width, height):
    """A real, valid, all-black greyscale PNG, compressed row by row (never held as pixels)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------


def test_read_header_gives_size_and_format_without_decoding():
    from tests.support.images import jpeg

    assert read_header(jpeg(300, 240)) == ImageHeader(300, 240, "JPEG")
    assert read_header(png_claiming(640, 480)) == ImageHeader(640, 480, "PNG")  # no pixel data at all


def test_header_errors_say_what_was_wrong():
    with pytest.raises(NotAnImage, match="^empty body$"):
        read_header(b"")
    with pytest.raises(NotAnImage, match="^UnidentifiedImageError: cannot identify image file"):
        read_header(b"<html><body>404</body></html>")
    # over Pillow's own limit: Pillow's message, which gives the pixel count
    with pytest.raises(DecompressionBomb, match="400000000 pixels"):
        read_header(png_claiming(20000, 20000))


@pytest.mark.parametrize("width, height", [(0, 4), (4, 0), (0, 0), (-1, 4), (4, -1)])
def test_a_side_of_no_pixels_is_refused(width, height):
    # Pillow refuses these itself today; the project's own check must not rely on it.
    from filters.contract.images import _check_size

    with pytest.raises(NotAnImage, match=f"^header declares size {width}x{height}$"):
        _check_size(width, height)


def _plain(mode, size, fmt):
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format=fmt)
    return buffer.getvalue()


def test_decode_gives_the_whole_image_in_rgb():
    for data in (_plain("P", (40, 30), "PNG"), _plain("L", (40, 30), "JPEG"), _plain("RGB", (40, 30), "JPEG")):
        image = decode_image(data)
        assert (image.mode, image.size) == ("RGB", (40, 30))


def test_verify_only_gives_the_image_as_decoded_and_jpegs_at_an_eighth():
    assert decode_image(_plain("P", (40, 30), "PNG"), verify_only=True).mode == "P"
    for mode in ("RGB", "L"):
        image = decode_image(_plain(mode, (800, 600), "JPEG"), verify_only=True)
        assert (image.mode, image.size) == (mode, (100, 75))
    assert decode_image(_plain("RGB", (8, 8), "JPEG"), verify_only=True).size == (1, 1)


def test_image_decodes_verifies_in_draft_mode(monkeypatch):
    from filters.contract import images

    calls = []
    monkeypatch.setattr(images, "decode_image", lambda data, **kwargs: calls.append(kwargs))
    assert images.image_decodes(b"x")
    assert calls == [{"verify_only": True}]


def test_decode_errors_say_what_was_wrong():
    for empty in (None, b""):
        with pytest.raises(ImageDecodeError, match="^no image bytes$"):
            decode_image(empty)
    with pytest.raises(ImageDecodeError, match="^UnidentifiedImageError: "):
        decode_image(b"<html></html>")


def test_a_one_pixel_image_has_a_size():
    assert read_header(_plain("RGB", (1, 1), "PNG")) == ImageHeader(1, 1, "PNG")
    assert decode_image(_plain("RGB", (1, 1), "PNG")).size == (1, 1)
