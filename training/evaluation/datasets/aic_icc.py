"""AI Challenger image Chinese captioning (AIC-ICC): a JSON list of images with 5 captions each."""

from __future__ import annotations

import json
import os

from training.evaluation.datasets.annotations import read_text, require_file
from training.evaluation.datasets.galleries import EvalDataError, FileGallery
from training.evaluation.datasets.retrieval_set import RetrievalSet, build_retrieval_set


def load_aic_icc(annotations: str, image_dir: str, max_images: int | None = None) -> RetrievalSet:
    """AI Challenger captions: a JSON list of `{"image_id": "<hash>.jpg", "caption": [..]}`.

    `max_images` keeps the first N images of the file (papers evaluate on a subset of the 30,000
    validation images; say which in the results).
    """
    text = read_text(require_file(annotations, "AIC-ICC annotation file"))
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvalDataError(f"{annotations}: not JSON: {exc}") from exc
    if not isinstance(records, list):
        raise EvalDataError(f"{annotations}: expected a JSON list of images")
    if max_images is not None:
        if max_images < 1:
            raise ValueError("max_images must be positive")
        records = records[:max_images]
    if not records:
        raise EvalDataError(f"the image gallery is empty: {annotations} has no images")
    image_ids, rows = [], []
    for index, record in enumerate(records):
        if not isinstance(record, dict) or "image_id" not in record or "caption" not in record:
            raise EvalDataError(f"{annotations}: record {index} lacks image_id/caption")
        image_id = str(record["image_id"])
        captions = record["caption"] if isinstance(record["caption"], list) else [record["caption"]]
        image_ids.append(image_id)
        for n, caption in enumerate(captions):
            # Some AIC-ICC captions carry stray newlines and spaces.
            text = "".join(str(caption).split())
            if text:
                rows.append((f"{image_id}#{n}", text, [image_id]))
    gallery = FileGallery(image_ids, [os.path.join(image_dir, i) for i in image_ids])
    return build_retrieval_set("aic-icc", gallery, rows, ("i2t", "t2i"))
