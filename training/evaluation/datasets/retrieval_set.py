"""A retrieval benchmark as every loader returns it: a gallery, texts, and the image(s) of each text."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from training.evaluation.datasets.galleries import EvalDataError, Gallery, undecodable_images


@dataclass(frozen=True)
class RetrievalSet:
    """A retrieval benchmark: `texts[j]` describes the images `image_of_text[j]` of `gallery`."""

    name: str
    gallery: Gallery
    texts: list[str]
    image_of_text: list[tuple[int, ...]]
    directions: tuple[str, ...] = ("i2t", "t2i")
    text_ids: list[str] = field(default_factory=list)
    skipped: int = 0  # pairs of the source left out because they could not be read or decoded

    def __post_init__(self) -> None:
        if len(self.gallery) == 0:
            raise EvalDataError(f"{self.name}: the image gallery is empty")
        if not self.texts:
            raise EvalDataError(f"{self.name}: there are no texts")
        if len(self.texts) != len(self.image_of_text):
            raise ValueError("texts and image_of_text differ in length")
        n = len(self.gallery)
        for j, images in enumerate(self.image_of_text):
            if not images or any(not 0 <= i < n for i in images):
                raise EvalDataError(f"{self.name}: text {j} has no valid image ({images})")

    def texts_fingerprint(self) -> str:
        """Changes when any text changes (text embeddings depend on nothing else of the set)."""
        digest = hashlib.sha256()
        for text in self.texts:
            digest.update(text.encode("utf-8") + b"\0")
        return digest.hexdigest()


def build_retrieval_set(
    name: str,
    gallery: Gallery,
    captions: Sequence[tuple[str, str, Sequence[str]]],
    directions: Sequence[str],
) -> RetrievalSet:
    """`captions`: (text id, text, image ids). Every image id must be in the gallery."""
    index_of = {image_id: i for i, image_id in enumerate(gallery.ids)}
    if len(index_of) != len(gallery.ids):
        raise EvalDataError(f"{name}: the gallery lists an image id twice")
    texts, image_of_text, text_ids = [], [], []
    for text_id, text, image_ids in captions:
        unknown = [i for i in image_ids if i not in index_of]
        if unknown:
            raise EvalDataError(
                f"{name}: text {text_id} refers to image {unknown[0]!r}, which is not in the gallery"
            )
        if not image_ids:
            raise EvalDataError(f"{name}: text {text_id} has no image")
        texts.append(text)
        image_of_text.append(tuple(sorted({index_of[i] for i in image_ids})))
        text_ids.append(str(text_id))
    return RetrievalSet(name, gallery, texts, image_of_text, tuple(directions), text_ids)


def without_undecodable(dataset: RetrievalSet) -> RetrievalSet:
    """The set without the images that do not decode (each named on stderr) and the texts left
    with no image; `skipped` counts the images left out."""
    bad = set(undecodable_images(dataset.gallery))
    if not bad:
        return dataset
    kept = [i for i in range(len(dataset.gallery)) if i not in bad]
    new_index = {old: new for new, old in enumerate(kept)}
    texts, image_of_text, text_ids = [], [], []
    for j, images in enumerate(dataset.image_of_text):
        remaining = tuple(new_index[i] for i in images if i in new_index)
        if remaining:
            texts.append(dataset.texts[j])
            image_of_text.append(remaining)
            if dataset.text_ids:
                text_ids.append(dataset.text_ids[j])
    if not kept or not texts:
        raise EvalDataError(f"{dataset.name}: no image of the set decodes")
    return replace(dataset, gallery=dataset.gallery.subset(kept), texts=texts, image_of_text=image_of_text,
                   text_ids=text_ids, skipped=dataset.skipped + len(bad))
