"""Evaluation sets read from local files, in the layouts in which the benchmarks are distributed.

Zero-shot classification:
- `load_image_folder(root, classnames_file)`: one sub-folder per class (ImageNet's `val/nXXXXXXXX/`
  layout); classes are the sorted folder names, matched line by line with the class-name file.

Retrieval (each gives a `RetrievalSet`: an image gallery, texts, and the image(s) of each text):
- `load_tsv_jsonl`: Chinese-CLIP's common layout, `*_imgs.tsv` (`image_id<TAB>base64`) and
  `*_texts.jsonl` (`{"text_id": .., "text": .., "image_ids": [..]}`).
- `load_muge`: MUGE Multimodal Retrieval as distributed (`MR_<split>_imgs.tsv`,
  `MR_<split>_queries.jsonl` with `query_id`/`query_text`/`item_ids`), or Chinese-CLIP's
  `<split>_imgs.tsv`/`<split>_texts.jsonl` conversion of it. Text->image only.
- `load_flickr_cn`: Flickr8K-CN caption files (`flickr8kzhc.caption.txt`:
  `<image>.jpg#zhc#<n> <caption>`) and Flickr30K-CN split folders in the VisualSearch layout
  (`<split>/ImageSets/<split>.txt`, `<split>/TextData/seg.<split>.caption.txt` with word-segmented
  captions, BosonNLP `word:pos` tags on the human-translated test split), images from the original
  Flickr image folder.
- `load_coco_cn`: COCO-CN (`coco-cn_<split>.txt` image ids, `imageid.human-written-caption.txt`:
  `COCO_val2014_000000123456#0<TAB>caption`), images from the COCO 2014 `train2014/`/`val2014/`.
- `load_aic_icc`: AI Challenger image captioning (`caption_validation_annotations_20170910.json`:
  a list of `{"image_id": "<hash>.jpg", "caption": [5 captions], "url": ..}`).
- `load_clean_shards`: this project's clean Parquet shards (one caption per image), for held-out
  evaluation of our own corpus.

Every loader checks its input up front: a referenced image that is missing, or a gallery with no
image, is a clear error, because a silently shrunk benchmark is not the benchmark.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from training.data import decode_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")


class EvalDataError(ValueError):
    """An evaluation set does not match its layout (missing files, bad lines, empty gallery)."""


# --------------------------------------------------------------------------------------------
# Image galleries
# --------------------------------------------------------------------------------------------


def _decode(data: bytes, where: str) -> Image.Image:
    """The training reader's full decode, but a bad image in an evaluation set is an error that
    names it (a benchmark must not silently shrink)."""
    image = decode_image(data)
    if image is None:
        raise EvalDataError(f"cannot decode image {where}: truncated, corrupt or not an image")
    return image


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
        with open(self.paths[index], "rb") as f:
            return _decode(f.read(), self.paths[index])

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
        with open(self.tsv_path, "rb") as f:
            f.seek(self.offsets[index])
            line = f.readline().rstrip(b"\r\n")
        _, _, payload = line.partition(b"\t")
        where = f"{self.ids[index]} in {self.tsv_path}"
        try:
            # Chinese-CLIP and MUGE write urlsafe base64; the standard alphabet decodes too.
            data = base64.urlsafe_b64decode(payload.replace(b"+", b"-").replace(b"/", b"_"))
        except (binascii.Error, ValueError) as exc:
            raise EvalDataError(f"bad base64 for image {where}: {exc}") from exc
        return _decode(data, where)

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
        return _decode(self.images[index], f"{self.ids[index]} in {self.source}")

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for key, data in zip(self.ids, self.images):
            digest.update(key.encode())
            digest.update(hashlib.sha256(data).digest())
        return digest.hexdigest()


Gallery = FileGallery | Base64TsvGallery | BytesGallery


@dataclass(frozen=True)
class RetrievalSet:
    """A retrieval benchmark: `texts[j]` describes the images `image_of_text[j]` of `gallery`."""

    name: str
    gallery: Gallery
    texts: list[str]
    image_of_text: list[tuple[int, ...]]
    directions: tuple[str, ...] = ("i2t", "t2i")
    text_ids: list[str] = field(default_factory=list)

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


def _build_set(
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


def _require_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise EvalDataError(f"{what} not found: {path}")
    return path


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8-sig") as f:
        return [line.rstrip("\r\n") for line in f]


# --------------------------------------------------------------------------------------------
# Zero-shot classification: an image folder
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassificationSet:
    """Images with integer labels; `classnames[label]` is the Chinese name of class `label`."""

    gallery: FileGallery
    labels: list[int]
    classnames: list[str]
    class_folders: list[str]


def list_class_folders(root: str) -> list[str]:
    """The sub-folders of `root`, sorted: the class order of an ImageNet-style folder."""
    if not os.path.isdir(root):
        raise EvalDataError(f"image folder not found: {root}")
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))


def load_image_folder(root: str, classnames: Sequence[str]) -> ClassificationSet:
    """Images under `root/<class folder>/`, labelled by the sorted position of their folder.

    `classnames` must name the folders in that sorted order (ImageNet: the 1,000 names of
    `training.prompts.imagenet_classnames_zh()` for the sorted `nXXXXXXXX` folders).
    """
    folders = list_class_folders(root)
    if len(classnames) != len(folders):
        raise EvalDataError(
            f"{len(classnames)} class names for {len(folders)} class folders in {root}: the "
            "class-name file must have one line per sub-folder, in sorted folder order"
        )
    ids, paths, labels = [], [], []
    for label, folder in enumerate(folders):
        directory = os.path.join(root, folder)
        for name in sorted(os.listdir(directory)):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                ids.append(f"{folder}/{name}")
                paths.append(os.path.join(directory, name))
                labels.append(label)
    if not paths:
        raise EvalDataError(f"no images in the class folders of {root}")
    return ClassificationSet(FileGallery(ids, paths), labels, list(classnames), folders)


# --------------------------------------------------------------------------------------------
# TSV of base64 images + JSONL of texts (Chinese-CLIP's layout; MUGE as distributed)
# --------------------------------------------------------------------------------------------


def read_base64_tsv(tsv_path: str) -> Base64TsvGallery:
    """Index `id<TAB>base64` lines by byte offset (images are decoded only when used)."""
    _require_file(tsv_path, "image TSV")
    ids, offsets = [], []
    with open(tsv_path, "rb") as f:
        offset = 0
        for line_number, line in enumerate(f, start=1):
            stripped = line.strip()
            if stripped:
                image_id, tab, payload = stripped.partition(b"\t")
                if not tab or not payload:
                    raise EvalDataError(f"{tsv_path}:{line_number}: expected 'image_id<TAB>base64'")
                ids.append(image_id.decode("utf-8"))
                offsets.append(offset)
            offset += len(line)
    if not ids:
        raise EvalDataError(f"the image gallery is empty: {tsv_path} has no images")
    return Base64TsvGallery(tsv_path, ids, offsets)


def _read_jsonl(path: str) -> list[dict]:
    records = []
    for line_number, line in enumerate(_read_lines(_require_file(path, "text JSONL")), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{path}:{line_number}: not JSON: {exc}") from exc
    return records


def _captions_from_jsonl(path: str, id_key: str, text_key: str, images_key: str) -> list[tuple[str, str, list[str]]]:
    captions = []
    for record in _read_jsonl(path):
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
    captions = _captions_from_jsonl(texts_jsonl, "text_id", "text", "image_ids")
    return _build_set(name, gallery, captions, directions)


def load_muge(root: str, split: str = "valid") -> RetrievalSet:
    """MUGE retrieval (text->image only; about 6 relevant product images per query).

    Reads `MR_<split>_imgs.tsv` + `MR_<split>_queries.jsonl` (as distributed) or, failing that,
    Chinese-CLIP's `<split>_imgs.tsv` + `<split>_texts.jsonl`.
    """
    distributed = (os.path.join(root, f"MR_{split}_imgs.tsv"), os.path.join(root, f"MR_{split}_queries.jsonl"))
    converted = (os.path.join(root, f"{split}_imgs.tsv"), os.path.join(root, f"{split}_texts.jsonl"))
    if all(os.path.isfile(p) for p in distributed):
        gallery = read_base64_tsv(distributed[0])
        captions = _captions_from_jsonl(distributed[1], "query_id", "query_text", "item_ids")
    elif all(os.path.isfile(p) for p in converted):
        gallery = read_base64_tsv(converted[0])
        captions = _captions_from_jsonl(converted[1], "text_id", "text", "image_ids")
    else:
        raise EvalDataError(
            f"no MUGE {split} split in {root}: expected MR_{split}_imgs.tsv and "
            f"MR_{split}_queries.jsonl (or {split}_imgs.tsv and {split}_texts.jsonl)"
        )
    return _build_set(f"muge-{split}", gallery, captions, ("t2i",))


# --------------------------------------------------------------------------------------------
# Flickr8K-CN / Flickr30K-CN
# --------------------------------------------------------------------------------------------

_POS_TAG = re.compile(r"^(.+):([a-zA-Z][a-zA-Z0-9]{0,5})$")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")


def join_segmented(text: str) -> str:
    """Undo word segmentation: `一个 男人 在 跑步` -> `一个男人在跑步`.

    BosonNLP part-of-speech tags (`男人:n 跑步:v`) are removed when every token carries one.
    A space is kept only between two Latin letters or digits (`T 恤` -> `T恤`, `iPhone 6` stays).
    """
    tokens = text.split()
    if not tokens:
        return ""
    tagged = [_POS_TAG.match(token) for token in tokens]
    if all(tagged):
        tokens = [m.group(1) for m in tagged]
    joined = tokens[0]
    for token in tokens[1:]:
        if _ASCII_WORD.match(joined[-1]) and _ASCII_WORD.match(token[0]):
            joined += " "
        joined += token
    return joined


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
        caption_file = _require_file(captions, "caption file")
        name = name or os.path.basename(captions).split(".")[0]

    by_image: dict[str, list[tuple[str, str]]] = {}
    for line_number, line in enumerate(_read_lines(caption_file), start=1):
        if line.strip():
            caption_id, image, text = _parse_flickr_caption_line(line, caption_file, line_number)
            by_image.setdefault(image, []).append((caption_id, text))

    def stem(image: str) -> str:
        return os.path.splitext(image)[0]

    if split_file is not None:
        wanted = [line.strip() for line in _read_lines(_require_file(split_file, "split file")) if line.strip()]
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
    return _build_set(name, gallery, rows, ("i2t", "t2i"))


# --------------------------------------------------------------------------------------------
# COCO-CN
# --------------------------------------------------------------------------------------------

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
    split_path = _require_file(os.path.join(root, f"coco-cn_{split}.txt"), "COCO-CN split file")
    caption_path = _require_file(os.path.join(root, caption_file), "COCO-CN caption file")
    image_ids = [line.strip() for line in _read_lines(split_path) if line.strip()]
    if not image_ids:
        raise EvalDataError(f"the image gallery is empty: {split_path} lists no image")
    for image_id in image_ids:
        if not _COCO_ID.match(image_id):
            raise EvalDataError(f"{split_path}: {image_id!r} is not a COCO 2014 image id")
    in_split = set(image_ids)
    rows = []
    for line_number, line in enumerate(_read_lines(caption_path), start=1):
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
    return _build_set(f"coco-cn-{split}", gallery, rows, ("i2t", "t2i"))


# --------------------------------------------------------------------------------------------
# AIC-ICC (AI Challenger image Chinese captioning)
# --------------------------------------------------------------------------------------------


def load_aic_icc(annotations: str, image_dir: str, max_images: int | None = None) -> RetrievalSet:
    """AI Challenger captions: a JSON list of `{"image_id": "<hash>.jpg", "caption": [..]}`.

    `max_images` keeps the first N images of the file (papers evaluate on a subset of the 30,000
    validation images; say which in the results).
    """
    with open(_require_file(annotations, "AIC-ICC annotation file"), encoding="utf-8") as f:
        try:
            records = json.load(f)
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
    return _build_set("aic-icc", gallery, rows, ("i2t", "t2i"))


# --------------------------------------------------------------------------------------------
# This project's clean shards
# --------------------------------------------------------------------------------------------


def load_clean_shards(directory: str, max_pairs: int | None = None) -> RetrievalSet:
    """Pairs from clean Parquet shards (filters.contract): one caption per image, by `key`."""
    from filters.contract import CLEAN_SCHEMA, list_shards, read_shard

    shards = list_shards(directory)
    if not shards:
        raise EvalDataError(f"the image gallery is empty: no clean shards in {directory}")
    keys, images, captions = [], [], []
    seen: set[str] = set()  # a key is a URL; the filter keeps one row per URL, but be sure
    for shard in shards:
        table = read_shard(shard, CLEAN_SCHEMA, columns=["key", "caption", "image"])
        for key, caption, image in zip(*(table.column(c).to_pylist() for c in ("key", "caption", "image"))):
            if image is None or not caption:
                continue
            if key in seen:
                continue
            seen.add(key)
            keys.append(key)
            images.append(image)
            captions.append(caption)
            if max_pairs is not None and len(keys) >= max_pairs:
                break
        if max_pairs is not None and len(keys) >= max_pairs:
            break
    if not keys:
        raise EvalDataError(f"the image gallery is empty: the shards in {directory} hold no image")
    gallery = BytesGallery(keys, images, directory)
    rows = [(key, caption, [key]) for key, caption in zip(keys, captions)]
    return _build_set(os.path.basename(os.path.normpath(directory)) or "shards", gallery, rows, ("i2t", "t2i"))
