"""MUGE Multimodal Retrieval (text->image only; about 6 relevant product images per query)."""

from __future__ import annotations

import os

from training.evaluation.datasets.galleries import EvalDataError
from training.evaluation.datasets.retrieval_set import RetrievalSet, build_retrieval_set
from training.evaluation.datasets.tsv import captions_from_jsonl, read_base64_tsv


def load_muge(root: str, split: str = "valid") -> RetrievalSet:
    """MUGE retrieval (text->image only; about 6 relevant product images per query).

    Reads `MR_<split>_imgs.tsv` + `MR_<split>_queries.jsonl` (as distributed) or, failing that,
    Chinese-CLIP's `<split>_imgs.tsv` + `<split>_texts.jsonl`.
    """
    distributed = (os.path.join(root, f"MR_{split}_imgs.tsv"), os.path.join(root, f"MR_{split}_queries.jsonl"))
    converted = (os.path.join(root, f"{split}_imgs.tsv"), os.path.join(root, f"{split}_texts.jsonl"))
    if all(os.path.isfile(p) for p in distributed):
        gallery = read_base64_tsv(distributed[0])
        captions = captions_from_jsonl(distributed[1], "query_id", "query_text", "item_ids")
    elif all(os.path.isfile(p) for p in converted):
        gallery = read_base64_tsv(converted[0])
        captions = captions_from_jsonl(converted[1], "text_id", "text", "image_ids")
    else:
        raise EvalDataError(
            f"no MUGE {split} split in {root}: expected MR_{split}_imgs.tsv and "
            f"MR_{split}_queries.jsonl (or {split}_imgs.tsv and {split}_texts.jsonl)"
        )
    return build_retrieval_set(f"muge-{split}", gallery, captions, ("t2i",))
