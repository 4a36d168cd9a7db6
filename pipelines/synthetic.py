"""Synthetic image-caption pairs and raw shards, for tests, the offline demo and training work
before a crawl exists.

Every clean pair's image shows what its caption says: a number of shapes of one colour on a
background of another colour, so that a model trained on them has something to learn. Around
them, a share of pairs breaks each rule of the filter stage (docs/design.md), and each pair records the
drop reason the filter is expected to give it (None for a pair that should be kept), so tests can
check the filter against the generator.

    python -m pipelines.synthetic --output runs/synthetic/raw --pairs 2000 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import math
import random
import sys
from collections.abc import Iterator, Sequence

from PIL import Image, ImageDraw

from filters import contract
from filters.contract import DropReason
from filters.text import normalise_caption

COLOURS = {
    "红色": (220, 30, 30),
    "绿色": (30, 170, 60),
    "蓝色": (30, 60, 220),
    "黄色": (240, 210, 20),
    "紫色": (140, 40, 170),
    "橙色": (245, 130, 20),
    "黑色": (15, 15, 15),
    "白色": (245, 245, 245),
}
SHAPES = ("圆形", "方块", "三角形", "十字")
COUNTS = {1: "一个", 2: "两个", 3: "三个", 4: "四个"}
BACKGROUNDS = {
    "白色": (250, 250, 250),
    "灰色": (128, 128, 128),
    "浅蓝色": (170, 210, 240),
    "米黄色": (240, 230, 190),
    "深绿色": (20, 80, 40),
    "黑色": (10, 10, 10),
}
TEMPLATES = (
    "{bg}背景上的{count}{colour}{shape}",
    "{count}{colour}的{shape}，{bg}底色",
    "一张{bg}背景的图片，画着{count}{colour}{shape}",
    "{bg}的画面中有{count}{colour}{shape}",
)
# Person names, some in jieba's dictionary and some it has never seen; the filter masks them.
NAMES = ("刘德华", "王菲", "周杰伦", "姚明", "欧阳子涵", "司马砚秋", "陈晓雯", "林嘉怡")
NAME_TEMPLATES = (
    "{name}展示的{count}{colour}{shape}，{bg}背景",
    "{name}画的{bg}背景上{count}{colour}{shape}",
)
SENSITIVE = ("网络赌博", "出售冰毒", "代开发票", "枪支弹药出售")
MEANINGLESS = ("微信图片_{digits}.jpg", "截图_{digits}.png", "未命名图片-{digits}.jpeg")
FILE_NAMES = ("{digits3}.jpg", "IMG_{digits4}.JPG", "DSC{digits4}.jpeg", "{hash}")
FREQUENT_CAPTION = "高清壁纸图片大全"
FREQUENT_TIMES = 12  # > 10: every pair with it is dropped

#: The share of generated pairs that break each rule (the rest are clean).
DEFECT_SHARES = {
    DropReason.DOWNLOAD_FAILED: 0.03,
    DropReason.DUPLICATE_URL: 0.03,
    DropReason.IMAGE_TOO_SMALL: 0.04,
    DropReason.ASPECT_RATIO: 0.04,
    DropReason.IMAGE_CORRUPT: 0.03,
    DropReason.TEXT_LENGTH: 0.05,
    DropReason.MEANINGLESS_CAPTION: 0.04,
    DropReason.SENSITIVE_WORD: 0.03,
    DropReason.DUPLICATE_IMAGE: 0.02,
}
NAME_SHARE = 0.05  # clean pairs whose caption carries a person's name


@dataclasses.dataclass(frozen=True)
class Scene:
    """What an image shows; the caption describes it."""

    colour: str
    shape: str
    count: int
    background: str


@dataclasses.dataclass(frozen=True)
class SyntheticPair:
    """One raw pair plus the verdict the filter stage should reach on it."""

    index: int
    url: str
    caption: str
    image: bytes | None
    width: int
    height: int
    image_format: str | None
    status: str
    scene: Scene | None
    expected_reason: str | None  # the docs/design.md drop reason, or None to keep
    has_person_name: bool = False
    error_message: str | None = None
    query: str = ""

    def to_raw_record(self) -> dict:
        ok = self.status == contract.DownloadStatus.SUCCESS
        return {
            "key": contract.url_key(self.url),
            "url": self.url,
            "caption": None,  # the crawl stores the caption as found only
            "caption_raw": self.caption,
            "query": self.query,
            "rank": self.index,
            "page_url": "",
            "image": self.image if ok else None,
            "width": self.width if ok else None,
            "height": self.height if ok else None,
            "image_format": self.image_format if ok else None,
            "sha256": hashlib.sha256(self.image).hexdigest() if ok and self.image else None,
            "status": self.status,
            "error_message": self.error_message,
        }

    def to_clean_record(self) -> dict:
        """The record a clean shard holds for this pair when the filter keeps it (the caption
        normalised; names are not masked here; no `caption_raw`: clean shards never hold the
        caption as found)."""
        raw = self.to_raw_record()
        raw["caption"] = normalise_caption(self.caption)
        return {name: raw[name] for name in contract.CLEAN_COLUMNS}


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def draw_scene(scene: Scene, width: int = 256, height: int = 256, rng: random.Random | None = None) -> Image.Image:
    """Draw `scene.count` shapes of `scene.colour` on `scene.background`, spread over a grid so
    that they never overlap; small jitter from `rng` keeps images distinct."""
    rng = rng or random.Random(0)
    image = Image.new("RGB", (width, height), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    colour = COLOURS[scene.colour]
    if colour == BACKGROUNDS.get(scene.background):
        colour = tuple(255 - c for c in colour)
    cols = 2 if scene.count > 1 else 1
    rows = math.ceil(scene.count / cols)
    cell_w, cell_h = width / cols, height / rows
    size = 0.34 * min(cell_w, cell_h)
    for i in range(scene.count):
        cx = (i % cols + 0.5) * cell_w + rng.uniform(-0.08, 0.08) * cell_w
        cy = (i // cols + 0.5) * cell_h + rng.uniform(-0.08, 0.08) * cell_h
        _draw_shape(draw, scene.shape, cx, cy, size, colour)
    return image


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, colour) -> None:
    if shape == "圆形":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "方块":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "三角形":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "十字":
        t = r / 3
        draw.rectangle([cx - r, cy - t, cx + r, cy + t], fill=colour)
        draw.rectangle([cx - t, cy - r, cx + t, cy + r], fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def encode_image(image: Image.Image, image_format: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format=image_format)
    return buffer.getvalue()


def caption_for(scene: Scene, rng: random.Random) -> str:
    template = rng.choice(TEMPLATES)
    return template.format(bg=scene.background, count=COUNTS[scene.count], colour=scene.colour, shape=scene.shape)


def random_scene(rng: random.Random) -> Scene:
    colour = rng.choice(list(COLOURS))
    background = rng.choice([b for b in BACKGROUNDS if b != colour])
    return Scene(colour=colour, shape=rng.choice(SHAPES), count=rng.choice(list(COUNTS)), background=background)


# --------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------


def _plan(n: int, rng: random.Random) -> list[str | None]:
    """Which defect each of n pairs gets: every reason at least once, then by share; the
    frequent caption takes FREQUENT_TIMES slots."""
    plan: list[str | None] = []
    for reason, share in DEFECT_SHARES.items():
        plan += [reason] * max(1, round(share * n))
    plan += [DropReason.FREQUENT_CAPTION] * FREQUENT_TIMES
    plan += ["person_name"] * max(1, round(NAME_SHARE * n))
    if len(plan) > n:
        raise ValueError(f"need at least {len(plan)} pairs to cover every drop reason, got {n}")
    plan += [None] * (n - len(plan))
    rng.shuffle(plan)
    return plan


def generate_pairs(n: int, seed: int = 0, url_prefix: str = "https://img.synthetic.example/",
                   size: int = 256) -> list[SyntheticPair]:
    """n synthetic raw pairs, deterministic for (n, seed, url_prefix, size).

    A pair whose defect needs an earlier pair (duplicate URL, duplicate image) copies the
    nearest earlier clean pair, so the first occurrence is kept and the copy dropped.
    """
    rng = random.Random(seed)
    plan = _plan(n, rng)
    pairs: list[SyntheticPair] = []
    clean_so_far: list[SyntheticPair] = []
    for index, defect in enumerate(plan):
        if defect in (DropReason.DUPLICATE_URL, DropReason.DUPLICATE_IMAGE) and not clean_so_far:
            defect = None  # nothing to duplicate yet; the plan has other slots for it
        pair = _make_pair(index, defect, rng, url_prefix, size, clean_so_far)
        pairs.append(pair)
        if pair.expected_reason is None:
            clean_so_far.append(pair)
    return pairs


def _make_pair(index: int, defect: str | None, rng: random.Random, url_prefix: str, size: int,
               clean_so_far: Sequence[SyntheticPair]) -> SyntheticPair:
    scene = random_scene(rng)
    fmt = rng.choices(["JPEG", "PNG", "WEBP"], weights=[8, 1, 1])[0]
    ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
    url = f"{url_prefix}{index:06d}.{ext}"
    caption = caption_for(scene, rng)
    width = height = size
    has_name = False
    reason = defect

    if defect == DropReason.DUPLICATE_URL:
        original = rng.choice(clean_so_far)
        return dataclasses.replace(original, index=index, expected_reason=DropReason.DUPLICATE_URL)
    if defect == DropReason.DUPLICATE_IMAGE:
        original = rng.choice(clean_so_far)
        return dataclasses.replace(original, index=index, url=url, caption=caption_for(original.scene, rng),
                                   expected_reason=DropReason.DUPLICATE_IMAGE)
    if defect == DropReason.DOWNLOAD_FAILED:
        return SyntheticPair(index, url, caption, None, 0, 0, None, contract.DownloadStatus.HTTP_ERROR, scene, DropReason.DOWNLOAD_FAILED,
                             error_message="HTTP 404")
    if defect == DropReason.IMAGE_TOO_SMALL:
        width = height = rng.choice([64, 120, 200])
        if rng.random() < 0.5:
            width = 300  # only one side too small
    elif defect == DropReason.ASPECT_RATIO:
        width, height = rng.choice([(700, 210), (230, 760), (904, 301)])
    elif defect == DropReason.TEXT_LENGTH:
        if rng.random() < 0.5:
            caption = _file_name(rng)  # no Chinese word at all
        else:  # far more than 31 Chinese words
            caption = "，".join(caption_for(random_scene(rng), rng) for _ in range(8))
    elif defect == DropReason.MEANINGLESS_CAPTION:
        caption = rng.choice(MEANINGLESS).format(digits=_digits(rng, 14))
    elif defect == DropReason.FREQUENT_CAPTION:
        caption = FREQUENT_CAPTION
    elif defect == DropReason.SENSITIVE_WORD:
        caption = f"{caption}，{rng.choice(SENSITIVE)}"
    elif defect == "person_name":
        caption = rng.choice(NAME_TEMPLATES).format(
            name=rng.choice(NAMES), bg=scene.background, count=COUNTS[scene.count],
            colour=scene.colour, shape=scene.shape)
        has_name = True
        reason = None

    image = draw_scene(scene, width, height, rng)
    data = encode_image(image, fmt)
    if defect == DropReason.IMAGE_CORRUPT:
        fmt, ext = "JPEG", "jpg"
        data = encode_image(image, "JPEG")
        data = data[: len(data) // 3]  # the header parses; the pixel data ends early
    return SyntheticPair(index, url, caption, data, width, height, fmt, contract.DownloadStatus.SUCCESS, scene, reason,
                         has_person_name=has_name)


def _digits(rng: random.Random, k: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(k))


def _file_name(rng: random.Random) -> str:
    template = rng.choice(FILE_NAMES)
    return template.format(digits3=_digits(rng, 3), digits4=_digits(rng, 4),
                           hash="%032x" % rng.getrandbits(128))


# --------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------


def iter_chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_raw_shards(pairs: Sequence[SyntheticPair], output_dir: str, rows_per_shard: int = 1000) -> list[str]:
    """Write pairs as raw shards (RAW_SCHEMA), atomically; returns the shard paths."""
    if rows_per_shard <= 0:
        raise ValueError("rows_per_shard must be positive")
    contract.makedirs(output_dir)
    paths = []
    for i, chunk in enumerate(iter_chunks(pairs, rows_per_shard)):
        path = contract.join(output_dir, contract.shard_name(i))
        contract.write_shard(path, [p.to_raw_record() for p in chunk], contract.RAW_SCHEMA)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.synthetic",
        description="Write synthetic raw shards: images that show what their captions say, plus pairs "
                    "that break each filter rule.")
    parser.add_argument("--output", required=True, help="directory (or gs://... URI) for the raw shards")
    parser.add_argument("--pairs", type=int, default=2000, help="number of pairs (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same shards")
    parser.add_argument("--rows-per-shard", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256, help="side of a clean image in px (default 256)")
    args = parser.parse_args(argv)
    pairs = generate_pairs(args.pairs, seed=args.seed, size=args.size)
    paths = write_raw_shards(pairs, args.output, args.rows_per_shard)
    kept = sum(p.expected_reason is None for p in pairs)
    print(f"wrote {len(pairs)} pairs ({kept} expected to pass the filters) in {len(paths)} shards to {args.output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
