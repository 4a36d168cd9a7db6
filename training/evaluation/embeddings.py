"""Batched image and text embeddings for evaluation, with an on-disk cache.

Embeddings are computed in batches (images through a DataLoader, so decoding runs in worker
processes) and streamed, batch after batch, into a `.npy` file that is then read back as a memory
map: a 30K-image gallery of token embeddings (30K x 196 x 256 in float16, about 3 GB) never has to
sit in RAM, and the block-wise scorers of `training.evaluation.retrieval` read only the rows they
need.

The cache key is a hash of everything the numbers depend on: the checkpoint (path, size, mtime),
the kind of embedding, the image transform or the tokenizer, and the data (file names, sizes and
mtimes, or the texts). A re-run with the same inputs reads the cache; any change recomputes.
Files are written through `filters.contract.storage`, so an interrupted run leaves no bad cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from filters.contract.storage import AtomicFile

#: Global features are small: keep float32. Token features are large: float16 halves the cache
#: (cosines of unit vectors lose < 1e-3, far below any ranking-relevant difference we measured).
GLOBAL_DTYPE = np.float32
TOKEN_DTYPE = np.float16

Progress = Callable[[str, int, int], None]


def checkpoint_fingerprint(path: str) -> str:
    """Identity of a checkpoint file for cache keys (cheap: no hashing of gigabytes)."""
    stat = os.stat(path)
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


def cache_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") + b"\0")
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class EmbeddingCache:
    """A directory of `<key>.<name>.npy` files; `directory=None` disables caching."""

    directory: str | None

    def path(self, key: str, name: str) -> str | None:
        return None if self.directory is None else os.path.join(self.directory, f"{key}.{name}.npy")

    def load(self, key: str, name: str) -> np.ndarray | None:
        path = self.path(key, name)
        if path is None or not os.path.isfile(path):
            return None
        return np.load(path, mmap_mode="r")

    def create(self, key: str, name: str, shape: tuple[int, ...], dtype) -> "ArrayWriter":
        """A writer for an array of `shape`, filled in row order; `commit()` publishes it."""
        return ArrayWriter(shape, dtype, self.path(key, name))


class ArrayWriter:
    """An array written row block after row block: into a `.npy` file (the header first, then the
    rows as they come, through an `AtomicFile`), or, without a path, into memory."""

    def __init__(self, shape: tuple[int, ...], dtype, path: str | None):
        self.shape, self.dtype, self.path = tuple(shape), np.dtype(dtype), path
        self.rows = 0
        self._memory = np.empty(self.shape, dtype=self.dtype) if path is None else None
        self._file = None
        if path is not None:
            self._file = AtomicFile(path)
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
            np.lib.format.write_array_header_1_0(self._file.stream, header)

    def write(self, block: np.ndarray) -> None:
        """Append the next rows."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or self.rows + len(block) > self.shape[0]:
            raise ValueError(f"rows of shape {block.shape} do not continue an array of shape {self.shape} "
                             f"after {self.rows} rows")
        if self._file is not None:
            self._file.stream.write(block.tobytes())
        else:
            self._memory[self.rows:self.rows + len(block)] = block
        self.rows += len(block)

    def commit(self) -> np.ndarray:
        """The whole array: publishes the file and maps it, or returns the in-memory array."""
        if self.rows != self.shape[0]:
            self.discard()
            raise ValueError(f"{self.rows} of {self.shape[0]} rows were written")
        if self._file is None:
            return self._memory
        self._file.commit()
        return np.load(self.path, mmap_mode="r")

    def discard(self) -> None:
        """Drop what was written; the file, if any, never appears."""
        if self._file is not None:
            self._file.discard()


class TransformedImages(Dataset):
    """gallery[i] -> transform(image) tensor; picklable, so DataLoader workers can decode."""

    def __init__(self, gallery, transform: Callable):
        self.gallery = gallery
        self.transform = transform

    def __len__(self) -> int:
        return len(self.gallery)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.gallery.load(index))


@contextlib.contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; the caller's mode (e.g. the trainer's) restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def embed_images(
    model,
    transform: Callable,
    gallery,
    tokens: bool,
    device: torch.device,
    batch_size: int = 64,
    num_workers: int = 0,
    cache: EmbeddingCache = EmbeddingCache(None),
    key: str = "",
    progress: Progress | None = None,
) -> np.ndarray:
    """Global features `[N, D]` (float32) or token features `[N, T, D]` (float16) of a gallery."""
    name = "image_tokens" if tokens else "image_global"
    if len(gallery) == 0:
        raise ValueError("the image gallery is empty")
    cached = cache.load(key, name)
    if cached is not None and cached.shape[0] == len(gallery):
        return cached
    loader = DataLoader(TransformedImages(gallery, transform), batch_size=batch_size,
                        num_workers=num_workers, shuffle=False)
    encode = model.encode_image_tokens if tokens else model.encode_image
    pending, done = None, 0
    try:
        with evaluation_mode(model):
            for pixels in loader:
                features = encode(pixels.to(device)).float().cpu().numpy()
                if pending is None:
                    pending = cache.create(key, name, (len(gallery), *features.shape[1:]),
                                           TOKEN_DTYPE if tokens else GLOBAL_DTYPE)
                pending.write(features)
                done += len(features)
                if progress is not None:
                    progress(name, done, len(gallery))
    except BaseException:
        if pending is not None:
            pending.discard()
        raise
    return pending.commit()


def embed_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    tokens: bool,
    device: torch.device,
    batch_size: int = 256,
    cache: EmbeddingCache = EmbeddingCache(None),
    key: str = "",
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Global features `[N, D]` and None, or token features `[N, L, D]` and their mask `[N, L]`."""
    name = "text_tokens" if tokens else "text_global"
    cached = cache.load(key, name)
    cached_mask = cache.load(key, "text_mask") if tokens else None
    if cached is not None and cached.shape[0] == len(texts) and (not tokens or cached_mask is not None):
        return cached, cached_mask
    pending = pending_mask = None
    try:
        with evaluation_mode(model):
            for start in range(0, len(texts), batch_size):
                ids, attention = tokenizer(list(texts[start:start + batch_size]))
                ids, attention = ids.to(device), attention.to(device)
                if tokens:
                    features, mask = model.encode_text_tokens(ids, attention)
                    mask = mask.cpu().numpy()
                else:
                    features, mask = model.encode_text(ids, attention), None
                features = features.float().cpu().numpy()
                if pending is None:
                    pending = cache.create(key, name, (len(texts), *features.shape[1:]),
                                           TOKEN_DTYPE if tokens else GLOBAL_DTYPE)
                    if tokens:
                        pending_mask = cache.create(key, "text_mask", (len(texts), mask.shape[1]), np.bool_)
                pending.write(features)
                if tokens:
                    pending_mask.write(mask)
                if progress is not None:
                    progress(name, min(start + batch_size, len(texts)), len(texts))
    except BaseException:
        for p in (pending, pending_mask):
            if p is not None:
                p.discard()
        raise
    if pending is None:
        raise ValueError("there are no texts to embed")
    # The mask is published first: a features file without its mask would be a broken cache.
    mask_array = pending_mask.commit() if tokens else None
    return pending.commit(), mask_array
