"""Small images for the tests: plain JPEGs, a PNG whose header claims a huge size, and catalog
entries of the local engine."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image

from crawler.local_engine import CatalogEntry


def jpeg(width: int, height: int, colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's header)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    # IHDR starts at byte 8: length(4) "IHDR"(4) width(4) height(4) ... crc(4)
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    return bytes(data)


def entry(path: str, behaviour: str = "ok", image: bytes | None = None, **kw) -> CatalogEntry:
    return CatalogEntry(path=path, caption=kw.pop("caption", f"图片{path}"),
                        image=jpeg(300, 240) if image is None else image, behaviour=behaviour, **kw)


def _encoded(fmt: str, size=(37, 29)) -> bytes:
    """A noisy image, so that every part of the compressed data carries pixels."""
    rng = random.Random(fmt)
    noise = bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, noise).save(buffer, format=fmt)
    return buffer.getvalue()


def hostile_images() -> dict[str, bytes]:
    """Images whose headers parse (the crawl records them as `success`) but which do not decode,
    or must not be: each raised something other than the usual errors in some decoder, or costs
    gigabytes to decode."""
    im = _encoded("IM", (4, 4)).replace(b"Image size (x*y): 4*4", b"Image size (x*y): 4.5*4")
    return {
        "truncated QOI": _encoded("QOI")[:len(_encoded("QOI")) // 2],
        "IM with a fractional size": im,
        "13000x13000 PNG": png_claiming(13000, 13000),
        "truncated JPEG": _encoded("JPEG", (300, 200))[:len(_encoded("JPEG", (300, 200))) // 2],
        "HTML": b"<html><body>not found</body></html>",
    }
