"""Chinese-CLIP's common retrieval layout: `*_imgs.tsv` (`image_id<TAB>base64`) and `*_texts.jsonl`
(`{"text_id": .., "text": .., "image_ids": [..]}`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from training.evaluation.datasets.annotations import read_lines, require_file
from training.evaluation.datasets.galleries import Base64TsvGallery, EvalDataError
from training.evaluation.datasets.retrieval_set import RetrievalSet, build_retrieval_set


def read_base64_tsv(tsv_path: str) -> Base64TsvGallery:
    """Index `id<TAB>base64` lines by byte offset (images are decoded only when used)."""
    require_file(tsv_path, "image TSV")
    ids, offsets = [], []
    with open(tsv_path, "rb") as f:
        offset = 0
        for line_number, line in enumerate(f, start=1):
            stripped = line.strip()
            if stripped:
                image_id, tab, payload = stripped.partition(b"\t")
                if not tab or not payload:
                    raise EvalDataError(f"{tsv_path}:{line_number}: expected 'image_id<TAB>base64'")
                try:
                    ids.append(image_id.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise EvalDataError(f"{tsv_path}:{line_number}: the image id is not UTF-8 text") from exc
                offsets.append(offset)
            offset += len(line)
    if not ids:
        raise EvalDataError(f"the image gallery is empty: {tsv_path} has no images")
    return Base64TsvGallery(tsv_path, ids, offsets)


def read_jsonl(path: str) -> list[dict]:
    """The records of a JSON-lines file; a bad line is an error naming it."""
    records = []
    for line_number, line in enumerate(read_lines(require_file(path, "text JSONL")), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{path}:{line_number}: not JSON: {exc}") from exc
    return records


def captions_from_jsonl(path: str, id_key: str, text_key: str,
                        images_key: str) -> list[tuple[str, str, list[str]]]:
    """(text id, text, image ids) of each record, read under the given keys."""
    captions = []
    for record in read_jsonl(path):
        missing = [k for k in (id_key, text_key, images_key) if k not in record]
        if missing:
            raise EvalDataError(f"{path}: record {record!r:.80} lacks {missing}")
        image_ids = record[images_key]
        if not isinstance(image_ids, list):
            image_ids = [image_ids]
        captions.append((str(record[id_key]), str(record[text_key]), [str(i) for i in image_ids]))
    return captions


def load_tsv_jsonl(
    images_tsv: str,
    texts_jsonl: str,
    name: str = "tsv_jsonl",
    directions: Sequence[str] = ("i2t", "t2i"),
) -> RetrievalSet:
    """Chinese-CLIP's layout: `id<TAB>base64` images and `{"text_id","text","image_ids"}` texts."""
    gallery = read_base64_tsv(images_tsv)
    captions = captions_from_jsonl(texts_jsonl, "text_id", "text", "image_ids")
    return build_retrieval_set(name, gallery, captions, directions)
