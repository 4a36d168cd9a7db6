"""Evaluation-set loaders, each on a tiny generated set in the benchmark's distributed layout.

The writers below (`write_*`) are also used by the end-to-end tests of `training.evaluate`.
Every image has its own colour, so a test can check that id -> pixels survived the loader.
"""

from __future__ import annotations

import base64
import io
import json
import os

import pytest
from PIL import Image

from training.eval_data import (
    EvalDataError,
    join_segmented,
    load_aic_icc,
    load_clean_shards,
    load_coco_cn,
    load_flickr_cn,
    load_image_folder,
    load_muge,
    load_tsv_jsonl,
)
from training.prompts import read_classnames


def colour(index: int) -> tuple[int, int, int]:
    """A distinct, exactly representable colour per index (PNG keeps it bit-exact)."""
    return (40 * (index % 6) + 5, 30 * ((index // 6) % 8) + 7, 200 - 9 * (index % 20))


def image_bytes(index: int, size: tuple[int, int] = (72, 60), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour(index)).save(buffer, format=fmt)
    return buffer.getvalue()


def write_image(path: str, index: int) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(image_bytes(index))
    return path


CAPTIONS = ["一只猫在沙发上", "两个红色的圆", "一个男人在跑步", "海边的日落", "蓝色的汽车", "草地上的狗", "桌上的苹果",
            "雪山和湖泊", "一群鸟在飞", "孩子在踢足球"]


def write_tsv_jsonl(root: str, split: str = "test", n_images: int = 6, captions_per_image: int = 2) -> dict:
    """Chinese-CLIP layout: `<split>_imgs.tsv` (id TAB urlsafe base64) and `<split>_texts.jsonl`."""
    os.makedirs(root, exist_ok=True)
    image_ids = [1000 + 7 * i for i in range(n_images)]
    with open(os.path.join(root, f"{split}_imgs.tsv"), "w", encoding="utf-8") as f:
        for i, image_id in enumerate(image_ids):
            f.write(f"{image_id}\t{base64.urlsafe_b64encode(image_bytes(i)).decode()}\n")
    texts = []
    with open(os.path.join(root, f"{split}_texts.jsonl"), "w", encoding="utf-8") as f:
        for i, image_id in enumerate(image_ids):
            for c in range(captions_per_image):
                text = f"{CAPTIONS[i % len(CAPTIONS)]}{c}"
                texts.append((text, i))
                f.write(json.dumps({"text_id": len(texts), "text": text, "image_ids": [image_id]},
                                   ensure_ascii=False) + "\n")
    return {"texts": texts, "n_images": n_images}


def write_muge(root: str, split: str = "valid") -> dict:
    """MUGE as distributed: `MR_<split>_imgs.tsv` and `MR_<split>_queries.jsonl` (query_id,
    query_text, item_ids); several images per query and images that no query names."""
    os.makedirs(root, exist_ok=True)
    item_ids = [557000 + i for i in range(8)]
    with open(os.path.join(root, f"MR_{split}_imgs.tsv"), "w", encoding="utf-8") as f:
        for i, item in enumerate(item_ids):
            f.write(f"{item}\t{base64.urlsafe_b64encode(image_bytes(i, fmt='JPEG')).decode()}\n")
    queries = [("纯棉短袖T恤", [0, 3, 5]), ("圣诞 抱枕", [1, 2]), ("儿童 雨靴", [4, 5, 6])]
    with open(os.path.join(root, f"MR_{split}_queries.jsonl"), "w", encoding="utf-8") as f:
        for q, (text, images) in enumerate(queries):
            f.write(json.dumps({"query_id": 248816 + q, "query_text": text,
                                "item_ids": [item_ids[i] for i in images]}, ensure_ascii=False) + "\n")
    return {"queries": queries, "n_images": len(item_ids)}


def write_flickr8k_cn(root: str) -> dict:
    """Flickr8K-CN: `flickr8kzhc.caption.txt` (`<file>.jpg#zhc#<n> <caption>`), the Flickr8k image
    folder and a split file listing the test images (like `Flickr_8k.testImages.txt`)."""
    names = [f"{1000268201 + i}_{i:02d}3b08cb0e.jpg" for i in range(5)]
    image_dir = os.path.join(root, "Flicker8k_Dataset")
    for i, name in enumerate(names):
        write_image(os.path.join(image_dir, name), i)
    lines = []
    for i, name in enumerate(names):
        for n in range(5):
            lines.append(f"{name}#zhc#{n} {CAPTIONS[(i + n) % len(CAPTIONS)]}，第{n}句")
    caption_file = os.path.join(root, "flickr8kcn", "data", "flickr8kzhc.caption.txt")
    os.makedirs(os.path.dirname(caption_file), exist_ok=True)
    with open(caption_file, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    split_file = os.path.join(root, "Flickr_8k.testImages.txt")
    test_images = [names[3], names[0], names[4]]
    with open(split_file, "w", encoding="utf-8") as f:
        f.write("\n".join(test_images) + "\n")
    return {"captions": caption_file, "images": image_dir, "split_file": split_file, "names": names,
            "test_images": test_images}


def write_flickr30k_cn(root: str) -> dict:
    """Flickr30K-CN test split in the VisualSearch layout: ImageSets/ and TextData/ with
    word-segmented, BosonNLP-tagged human translations; images as `<id>.jpg` elsewhere."""
    split = "flickr30kzhmbosontest"
    ids = [str(1000092795 + 11 * i) for i in range(4)]
    image_dir = os.path.join(root, "flickr30k-images")
    for i, image_id in enumerate(ids):
        write_image(os.path.join(image_dir, f"{image_id}.jpg"), i)
    folder = os.path.join(root, split)
    os.makedirs(os.path.join(folder, "ImageSets"))
    os.makedirs(os.path.join(folder, "TextData"))
    with open(os.path.join(folder, "ImageSets", f"{split}.txt"), "w") as f:
        f.write("\n".join(ids) + "\n")
    segmented = ["两:m 个:q 男人:n 在:p 跑步:v 。:wj", "一:m 只:q 狗:n 在:p 草地:n 上:f",
                 "穿:v T:nx 恤:n 的:ude1 女孩:n", "海边:s 的:ude1 日落:n", "蓝色:n 的:ude1 汽车:n"]
    with open(os.path.join(folder, "TextData", f"seg.{split}.caption.txt"), "w", encoding="utf-8") as f:
        for i, image_id in enumerate(ids):
            for n in range(5):
                f.write(f"{image_id}#zhm#{n} {segmented[(i + n) % len(segmented)]}\n")
    return {"folder": folder, "images": image_dir, "ids": ids}


def write_coco_cn(root: str) -> dict:
    """COCO-CN: `coco-cn_test.txt`, `imageid.human-written-caption.txt` (`<id>#<n><TAB>caption`),
    images in the COCO 2014 `train2014/`, `val2014/` folders; 1-2 captions per image."""
    base = os.path.join(root, "coco-cn-version1805v1.1")
    os.makedirs(base)
    test = ["COCO_val2014_000000290951", "COCO_train2014_000000000042", "COCO_val2014_000000000139"]
    train = ["COCO_train2014_000000000009"]
    image_dir = os.path.join(root, "coco2014")
    for i, image_id in enumerate(test + train):
        write_image(os.path.join(image_dir, image_id.split("_")[1], f"{image_id}.jpg"), i)
    for name, ids in (("test", test), ("train", train), ("val", [])):
        with open(os.path.join(base, f"coco-cn_{name}.txt"), "w") as f:
            f.write("".join(f"{i}\n" for i in ids))
    captions = [(test[0], 0, "一个人在厨房里做饭"), (test[0], 1, "厨房里的男人"), (train[0], 0, "训练集的图"),
                (test[1], 0, "桌子上有一盘水果"), (test[2], 0, "街上的公共汽车")]
    with open(os.path.join(base, "imageid.human-written-caption.txt"), "w", encoding="utf-8") as f:
        for image_id, n, text in captions:
            f.write(f"{image_id}#{n}\t{text}\n")
    return {"root": base, "images": image_dir, "test": test}


def write_aic_icc(root: str) -> dict:
    """AI Challenger captions: a JSON list of {url, image_id: '<sha1>.jpg', caption: [5]}."""
    image_dir = os.path.join(root, "caption_validation_images_20170910")
    records = []
    for i in range(4):
        image_id = f"{i:x}f00f3d0f1008e085ab660e70dffced16a8259f6.jpg"
        write_image(os.path.join(image_dir, image_id), i)
        records.append({"url": f"http://img.example/{i}.jpg", "image_id": image_id,
                        "caption": [f"{CAPTIONS[(i + n) % len(CAPTIONS)]}\n" if n == 0 else f"一个 {CAPTIONS[i]}{n}"
                                    for n in range(5)]})
    annotations = os.path.join(root, "caption_validation_annotations_20170910.json")
    with open(annotations, "w", encoding="utf-8") as f:
        json.dump(records, f, ensure_ascii=False)
    return {"annotations": annotations, "images": image_dir, "records": records}


def write_image_folder(root: str, classes: list[str], per_class: int = 2) -> str:
    """ImageNet-style folder: one sub-folder per class; returns the class-name file."""
    for c, _ in enumerate(classes):
        for i in range(per_class):
            write_image(os.path.join(root, "val", f"n{c:08d}", f"ILSVRC2012_val_{c * per_class + i:08d}.JPEG"), c)
    names = os.path.join(root, "classnames.txt")
    with open(names, "w", encoding="utf-8") as f:
        f.write("\n".join(classes) + "\n")
    return names


def pixel(gallery, index: int) -> tuple[int, int, int]:
    return gallery.load(index).getpixel((3, 3))


# --------------------------------------------------------------------------------------------


def test_tsv_jsonl_layout(tmp_path):
    expected = write_tsv_jsonl(str(tmp_path), n_images=5, captions_per_image=3)
    dataset = load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))
    assert len(dataset.gallery) == 5 and len(dataset.texts) == 15
    assert dataset.texts == [t for t, _ in expected["texts"]]
    assert dataset.image_of_text == [(i,) for _, i in expected["texts"]]
    assert [pixel(dataset.gallery, i) for i in range(5)] == [colour(i) for i in range(5)]
    assert dataset.directions == ("i2t", "t2i")


def test_muge_layout_is_text_to_image_with_several_images(tmp_path):
    expected = write_muge(str(tmp_path))
    dataset = load_muge(str(tmp_path), "valid")
    assert dataset.directions == ("t2i",)
    assert dataset.texts == [q for q, _ in expected["queries"]]
    assert dataset.image_of_text == [tuple(images) for _, images in expected["queries"]]
    assert len(dataset.gallery) == 8
    decoded = dataset.gallery.load(6).getpixel((30, 30))  # JPEG: close, not exact
    assert all(abs(a - b) <= 6 for a, b in zip(decoded, colour(6)))


def test_muge_chinese_clip_conversion_is_read_too(tmp_path):
    write_tsv_jsonl(str(tmp_path), split="valid", n_images=3, captions_per_image=1)
    dataset = load_muge(str(tmp_path), "valid")
    assert len(dataset.texts) == 3 and dataset.directions == ("t2i",)


def test_flickr8k_cn_caption_file_with_split(tmp_path):
    data = write_flickr8k_cn(str(tmp_path))
    dataset = load_flickr_cn(data["captions"], data["images"], data["split_file"])
    assert dataset.gallery.ids == data["test_images"]
    assert len(dataset.texts) == 15
    # Five captions per image, grouped by image in split order.
    assert dataset.image_of_text == [(i,) for i in range(3) for _ in range(5)]
    first = data["names"].index(data["test_images"][0])
    assert dataset.texts[0] == f"{CAPTIONS[first % len(CAPTIONS)]}，第0句"
    assert pixel(dataset.gallery, 0) == colour(first)
    everything = load_flickr_cn(data["captions"], data["images"])
    assert len(everything.gallery) == 5 and len(everything.texts) == 25


def test_flickr30k_cn_visualsearch_folder(tmp_path):
    data = write_flickr30k_cn(str(tmp_path))
    dataset = load_flickr_cn(data["folder"], data["images"])
    assert dataset.name == "flickr30kzhmbosontest"
    assert dataset.gallery.ids == data["ids"]
    assert len(dataset.texts) == 20
    # Segmentation and part-of-speech tags are undone.
    assert dataset.texts[0] == "两个男人在跑步。"
    assert "穿T恤的女孩" in dataset.texts
    assert pixel(dataset.gallery, 2) == colour(2)


def test_join_segmented():
    assert join_segmented("一个 男人 在 跑步") == "一个男人在跑步"
    assert join_segmented("男人:n 跑步:v") == "男人跑步"
    assert join_segmented("iPhone 6 手机 壳") == "iPhone 6手机壳"
    assert join_segmented("比例 3:2 的 图") == "比例3:2的图"  # a colon that is not a tag stays


def test_coco_cn_layout(tmp_path):
    data = write_coco_cn(str(tmp_path))
    dataset = load_coco_cn(data["root"], data["images"], "test")
    assert dataset.gallery.ids == data["test"]
    assert dataset.texts == ["一个人在厨房里做饭", "厨房里的男人", "桌子上有一盘水果", "街上的公共汽车"]
    assert dataset.image_of_text == [(0,), (0,), (1,), (2,)]  # 1-2 captions per image
    assert [pixel(dataset.gallery, i) for i in range(3)] == [colour(i) for i in range(3)]


def test_aic_icc_layout(tmp_path):
    data = write_aic_icc(str(tmp_path))
    dataset = load_aic_icc(data["annotations"], data["images"])
    assert len(dataset.gallery) == 4 and len(dataset.texts) == 20
    assert dataset.texts[0] == CAPTIONS[0]  # the stray newline is gone
    assert dataset.texts[1] == f"一个{CAPTIONS[0]}1"
    subset = load_aic_icc(data["annotations"], data["images"], max_images=2)
    assert len(subset.gallery) == 2 and len(subset.texts) == 10


def test_clean_shards_layout(clean_dir, clean_pairs):
    dataset = load_clean_shards(clean_dir, max_pairs=20)
    assert len(dataset.gallery) == 20
    assert dataset.texts == [r["caption"] for r in clean_pairs[:20]]
    assert dataset.image_of_text == [(i,) for i in range(20)]
    assert dataset.gallery.load(0).size == Image.open(io.BytesIO(clean_pairs[0]["image"])).size


def test_image_folder_and_classnames(tmp_path):
    names = write_image_folder(str(tmp_path), ["猫", "狗", "汽车"], per_class=2)
    dataset = load_image_folder(str(tmp_path / "val"), read_classnames(names))
    assert dataset.labels == [0, 0, 1, 1, 2, 2]
    assert dataset.classnames == ["猫", "狗", "汽车"]
    assert pixel(dataset.gallery, 4) == colour(2)


# --------------------------------------------------------------------------------------------
# Bad input: each a clear error
# --------------------------------------------------------------------------------------------


def test_classname_count_must_match_folders(tmp_path):
    names = write_image_folder(str(tmp_path), ["猫", "狗", "汽车"])
    with pytest.raises(EvalDataError, match="2 class names for 3 class folders"):
        load_image_folder(str(tmp_path / "val"), ["猫", "狗"])
    with open(names, "a", encoding="utf-8") as f:
        f.write("飞机\n")
    with pytest.raises(EvalDataError, match="4 class names for 3 class folders"):
        load_image_folder(str(tmp_path / "val"), read_classnames(names))


def test_missing_image_is_named(tmp_path):
    data = write_flickr8k_cn(str(tmp_path))
    missing = os.path.join(data["images"], data["test_images"][1])
    os.remove(missing)
    with pytest.raises(EvalDataError, match="1 image file.s. missing, e.g. .*" + data["test_images"][1]):
        load_flickr_cn(data["captions"], data["images"], data["split_file"])
    coco = write_coco_cn(str(tmp_path / "coco"))
    os.remove(os.path.join(coco["images"], "val2014", f"{coco['test'][2]}.jpg"))
    with pytest.raises(EvalDataError, match=coco["test"][2]):
        load_coco_cn(coco["root"], coco["images"])


def test_text_pointing_at_an_image_not_in_the_tsv(tmp_path):
    write_tsv_jsonl(str(tmp_path), n_images=2, captions_per_image=1)
    with open(tmp_path / "test_texts.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"text_id": 99, "text": "多余", "image_ids": [424242]}) + "\n")
    with pytest.raises(EvalDataError, match="text 99 refers to image '424242'"):
        load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))


def test_empty_gallery(tmp_path):
    (tmp_path / "empty_imgs.tsv").write_text("")
    (tmp_path / "empty_texts.jsonl").write_text("")
    with pytest.raises(EvalDataError, match="gallery is empty"):
        load_tsv_jsonl(str(tmp_path / "empty_imgs.tsv"), str(tmp_path / "empty_texts.jsonl"))
    os.makedirs(tmp_path / "folder" / "n0")
    with pytest.raises(EvalDataError, match="no images"):
        load_image_folder(str(tmp_path / "folder"), ["猫"])
    with pytest.raises(EvalDataError, match="gallery is empty"):
        os.makedirs(tmp_path / "no-shards")
        load_clean_shards(str(tmp_path / "no-shards"))
    (tmp_path / "aic.json").write_text("[]")
    with pytest.raises(EvalDataError, match="gallery is empty"):
        load_aic_icc(str(tmp_path / "aic.json"), str(tmp_path))


def test_corrupt_image_is_named_when_loaded(tmp_path):
    write_tsv_jsonl(str(tmp_path), n_images=2, captions_per_image=1)
    lines = (tmp_path / "test_imgs.tsv").read_text().splitlines()
    lines[1] = lines[1].split("\t")[0] + "\t" + base64.urlsafe_b64encode(b"not an image").decode()
    (tmp_path / "test_imgs.tsv").write_text("\n".join(lines) + "\n")
    dataset = load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))
    with pytest.raises(EvalDataError, match="cannot decode image 1007"):
        dataset.gallery.load(1)


def test_malformed_lines(tmp_path):
    bad = tmp_path / "captions.txt"
    bad.write_text("no-hash-here just text\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="captions.txt:1"):
        load_flickr_cn(str(bad), str(tmp_path))
    (tmp_path / "test_imgs.tsv").write_text("12345 no tab\n")
    (tmp_path / "test_texts.jsonl").write_text("")
    with pytest.raises(EvalDataError, match="test_imgs.tsv:1"):
        load_tsv_jsonl(str(tmp_path / "test_imgs.tsv"), str(tmp_path / "test_texts.jsonl"))
    with pytest.raises(EvalDataError, match="no MUGE valid split"):
        load_muge(str(tmp_path), "valid")


def test_flickr_folder_without_captions_and_split_without_captions(tmp_path):
    os.makedirs(tmp_path / "flickr30kzhmbosontest" / "ImageSets")
    with pytest.raises(EvalDataError, match="no TextData"):
        load_flickr_cn(str(tmp_path / "flickr30kzhmbosontest"), str(tmp_path))
    data = write_flickr8k_cn(str(tmp_path / "8k"))
    with open(data["split_file"], "a", encoding="utf-8") as f:
        f.write("999_unknown.jpg\n")
    with pytest.raises(EvalDataError, match="999_unknown.jpg .* has no caption"):
        load_flickr_cn(data["captions"], data["images"], data["split_file"])
