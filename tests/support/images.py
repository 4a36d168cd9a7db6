"""Small images for the tests: plain JPEGs, a PNG whose header claims a huge size, and catalog
entries of the local engine."""

from __future__ import annotations

import io
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
