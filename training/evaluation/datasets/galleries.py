"""Image galleries of the evaluation sets, and the error every loader raises.

A gallery is a list of image ids whose images load one at a time (`load(i)`), so a 30K-image
benchmark is never held decoded in memory, and whose `fingerprint()` changes when the images do
(the embedding cache's key). Images are decoded by `filters.contract.images`, the decoder (and
pixel cap) of the filter and the trainer. `without_undecodable` checks every image before an
evaluation and leaves out, naming each and counting them, those that do not decode, so that one
bad file costs its own sample and not the run; an image that fails later is an error naming it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import sys
from collections.abc import Sequence

from PIL import Image

from filters.contract.images import ImageDecodeError, decode_image, image_decodes


class EvalDataError(ValueError):
    """An evaluation set does not match its layout (missing files, bad lines, empty gallery)."""


def _decode(data: bytes, where: str) -> Image.Image:
    try:
        return decode_image(data)
    except ImageDecodeError as error:
        raise EvalDataError(f"cannot decode image {where}: truncated, corrupt or not an image ({error})") from error


class FileGallery:
    """Images stored as files; every path is checked to exist when the gallery is built."""

    def __init__(self, ids: Sequence[str], paths: Sequence[str]):
        if len(ids) != len(paths):
            raise ValueError("ids and paths differ in length")
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise EvalDataError(
                f"{len(missing)} image file(s) missing, e.g. {missing[0]}"
                + (f" and {missing[1]}" if len(missing) > 1 else "")
            )
        self.ids = list(ids)
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Image.Image:
        return _decode(self.encoded(index), self.paths[index])

    def encoded(self, index: int) -> bytes:
        with open(self.paths[index], "rb") as f:
            return f.read()

    def describe(self, index: int) -> str:
        return self.paths[index]

    def subset(self, indices: Sequence[int]) -> "FileGallery":
        return FileGallery([self.ids[i] for i in indices], [self.paths[i] for i in indices])

    def fingerprint(self) -> str:
        """Changes when a file is added, removed, replaced or touched."""
        digest = hashlib.sha256()
        for path in self.paths:
            stat = os.stat(path)
            digest.update(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


class Base64TsvGallery:
    """Images stored base64-encoded in a TSV (`id<TAB>base64` per line), read lazily by offset,
    so a 30K-image gallery is not held in memory as text."""

    def __init__(self, tsv_path: str, ids: Sequence[str], offsets: Sequence[int]):
        self.tsv_path = tsv_path
        self.ids = list(ids)
        self.offsets = list(offsets)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Image.Image:
        return _decode(self.encoded(index), self.describe(index))

    def encoded(self, index: int) -> bytes:
        with open(self.tsv_path, "rb") as f:
            f.seek(self.offsets[index])
            line = f.readline().rstrip(b"\r\n")
        _, _, payload = line.partition(b"\t")
        try:
            # Chinese-CLIP and MUGE write urlsafe base64; the standard alphabet decodes too.
            return base64.urlsafe_b64decode(payload.replace(b"+", b"-").replace(b"/", b"_"))
        except (binascii.Error, ValueError) as exc:
            raise EvalDataError(f"bad base64 for image {self.describe(index)}: {exc}") from exc

    def describe(self, index: int) -> str:
        return f"{self.ids[index]} in {self.tsv_path}"

    def subset(self, indices: Sequence[int]) -> "Base64TsvGallery":
        return Base64TsvGallery(self.tsv_path, [self.ids[i] for i in indices], [self.offsets[i] for i in indices])

    def fingerprint(self) -> str:
        stat = os.stat(self.tsv_path)
        key = f"{os.path.abspath(self.tsv_path)}|{stat.st_size}|{stat.st_mtime_ns}|{len(self.ids)}"
        return hashlib.sha256(key.encode()).hexdigest()


class BytesGallery:
    """Images held as encoded bytes (from Parquet shards)."""

    def __init__(self, ids: Sequence[str], images: Sequence[bytes], source: str):
        self.ids = list(ids)
        self.images = list(images)
        self.source = source

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Image.Image:
        return _decode(self.images[index], self.describe(index))

    def encoded(self, index: int) -> bytes:
        return self.images[index]

    def describe(self, index: int) -> str:
        return f"{self.ids[index]} in {self.source}"

    def subset(self, indices: Sequence[int]) -> "BytesGallery":
        return BytesGallery([self.ids[i] for i in indices], [self.images[i] for i in indices], self.source)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for key, data in zip(self.ids, self.images):
            digest.update(key.encode())
            digest.update(hashlib.sha256(data).digest())
        return digest.hexdigest()


Gallery = FileGallery | Base64TsvGallery | BytesGallery


def undecodable_images(gallery: Gallery) -> list[int]:
    """The indices of the images that do not decode (the decoder's check: JPEGs at 1/8 scale, so
    a pass costs a fraction of the evaluation), each announced on stderr by name."""
    bad = []
    for index in range(len(gallery)):
        try:
            usable = image_decodes(gallery.encoded(index))
        except EvalDataError:  # bad base64: no image bytes at all
            usable = False
        if not usable:
            print(f"warning: image {gallery.describe(index)} does not decode (truncated, corrupt, not an image "
                  "or over the pixel cap); skipped", file=sys.stderr, flush=True)
            bad.append(index)
    return bad
