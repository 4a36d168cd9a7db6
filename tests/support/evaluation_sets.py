"""Tiny evaluation sets, each written in its benchmark's distributed layout, for the tests of
`training.evaluation` (its loaders, zero-shot and the command line).

Every image has its own colour, so a test can check that id -> pixels survived the loader.
"""

from __future__ import annotations

import base64
import io
import json
import os

from PIL import Image


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
