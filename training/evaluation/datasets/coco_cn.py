"""COCO-CN: human-written Chinese captions of COCO 2014 images."""

from __future__ import annotations

import os
import re

from training.evaluation.datasets.annotations import join_segmented, read_lines, require_file
from training.evaluation.datasets.galleries import EvalDataError, FileGallery
from training.evaluation.datasets.retrieval_set import RetrievalSet, build_retrieval_set

_COCO_ID = re.compile(r"^COCO_(train|val)2014_\d{12}$")


def load_coco_cn(
    root: str,
    image_dir: str,
    split: str = "test",
    caption_file: str = "imageid.human-written-caption.txt",
) -> RetrievalSet:
    """COCO-CN, 1-2 human-written captions per image (test: 1,000 images, 1,053 captions).

    `root` holds `coco-cn_<split>.txt` (ids like `COCO_val2014_000000290951`) and the caption
    file (`<id>#<n><TAB><caption>`); images are `<image_dir>/<train2014|val2014>/<id>.jpg` or
    `<image_dir>/<id>.jpg`.
    """
    split_path = require_file(os.path.join(root, f"coco-cn_{split}.txt"), "COCO-CN split file")
    caption_path = require_file(os.path.join(root, caption_file), "COCO-CN caption file")
    image_ids = [line.strip() for line in read_lines(split_path) if line.strip()]
    if not image_ids:
        raise EvalDataError(f"the image gallery is empty: {split_path} lists no image")
    for image_id in image_ids:
        if not _COCO_ID.match(image_id):
            raise EvalDataError(f"{split_path}: {image_id!r} is not a COCO 2014 image id")
    in_split = set(image_ids)
    rows = []
    for line_number, line in enumerate(read_lines(caption_path), start=1):
        if not line.strip():
            continue
        caption_id, tab, text = line.partition("\t")
        if not tab:
            caption_id, _, text = line.partition(" ")
        image_id = caption_id.split("#", 1)[0]
        if "#" not in caption_id or not text.strip():
            raise EvalDataError(f"{caption_path}:{line_number}: expected '<image id>#<n><TAB><caption>'")
        if image_id in in_split:
            rows.append((caption_id, join_segmented(text), [image_id]))

    def path_of(image_id: str) -> str:
        partition = image_id.split("_")[1]  # train2014 / val2014
        nested = os.path.join(image_dir, partition, f"{image_id}.jpg")
        return nested if os.path.isfile(nested) else os.path.join(image_dir, f"{image_id}.jpg")

    gallery = FileGallery(image_ids, [path_of(i) for i in image_ids])
    return build_retrieval_set(f"coco-cn-{split}", gallery, rows, ("i2t", "t2i"))
