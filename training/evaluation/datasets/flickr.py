"""Flickr8K-CN caption files and Flickr30K-CN split folders (the VisualSearch layout)."""

from __future__ import annotations

import os

from training.evaluation.datasets.annotations import join_segmented, read_lines, require_file
from training.evaluation.datasets.galleries import EvalDataError, FileGallery
from training.evaluation.datasets.retrieval_set import RetrievalSet, build_retrieval_set


def _parse_flickr_caption_line(line: str, path: str, line_number: int) -> tuple[str, str, str]:
    """`<image>#<lang>#<n> <caption>` or `<image>#<n><TAB><caption>` -> (caption id, image, text)."""
    parts = line.split(None, 1)
    if len(parts) != 2 or "#" not in parts[0]:
        raise EvalDataError(f"{path}:{line_number}: expected '<image>#..#<n> <caption>', got {line!r:.60}")
    caption_id = parts[0]
    image = caption_id.split("#", 1)[0]
    return caption_id, image, join_segmented(parts[1])


def _find_image(image_dir: str, image: str) -> str:
    """`image` as named, or with `.jpg` added (VisualSearch ids and Flickr30k ids lack it)."""
    path = os.path.join(image_dir, image)
    if not os.path.splitext(image)[1] and not os.path.isfile(path):
        path += ".jpg"
    return path


def load_flickr_cn(
    captions: str,
    image_dir: str,
    split_file: str | None = None,
    name: str | None = None,
) -> RetrievalSet:
    """Flickr8K-CN / Flickr30K-CN, usually 5 captions per image.

    `captions` is either a caption file (Flickr8K-CN: `flickr8kzhc.caption.txt`, lines
    `1000268201_693b08cb0e.jpg#zhc#0 <caption>`) or a VisualSearch split folder (Flickr30K-CN's
    `flickr30kzhmbosontest/` with `ImageSets/` and `TextData/seg.*.caption.txt`). `split_file`
    lists the images to keep, one per line (e.g. Flickr8k's `Flickr_8k.testImages.txt`); a
    VisualSearch folder brings its own (`ImageSets/<split>.txt`). The gallery is the split's
    images in that file's order, or the captioned images in order of first appearance.
    """
    if os.path.isdir(captions):
        split = os.path.basename(os.path.normpath(captions))
        caption_file = os.path.join(captions, "TextData", f"seg.{split}.caption.txt")
        if not os.path.isfile(caption_file):
            found = sorted(f for f in os.listdir(os.path.join(captions, "TextData")) if f.endswith("caption.txt")) \
                if os.path.isdir(os.path.join(captions, "TextData")) else []
            if not found:
                raise EvalDataError(f"no TextData/*caption.txt in the VisualSearch folder {captions}")
            caption_file = os.path.join(captions, "TextData", found[0])
        if split_file is None:
            candidate = os.path.join(captions, "ImageSets", f"{split}.txt")
            split_file = candidate if os.path.isfile(candidate) else None
        name = name or split
    else:
        caption_file = require_file(captions, "caption file")
        name = name or os.path.basename(captions).split(".")[0]

    by_image: dict[str, list[tuple[str, str]]] = {}
    for line_number, line in enumerate(read_lines(caption_file), start=1):
        if line.strip():
            caption_id, image, text = _parse_flickr_caption_line(line, caption_file, line_number)
            by_image.setdefault(image, []).append((caption_id, text))

    def stem(image: str) -> str:
        return os.path.splitext(image)[0]

    if split_file is not None:
        wanted = [line.strip() for line in read_lines(require_file(split_file, "split file")) if line.strip()]
        by_stem = {stem(image): image for image in by_image}
        images = []
        for entry in wanted:
            image = entry if entry in by_image else by_stem.get(stem(entry))
            if image is None:
                raise EvalDataError(f"{name}: image {entry} of {split_file} has no caption in {caption_file}")
            images.append(image)
    else:
        images = list(by_image)
    if not images:
        raise EvalDataError(f"the image gallery is empty: no captioned image in {caption_file}")
    gallery = FileGallery(images, [_find_image(image_dir, image) for image in images])
    rows = [(cid, text, [image]) for image in images for cid, text in by_image[image]]
    return build_retrieval_set(name, gallery, rows, ("i2t", "t2i"))
