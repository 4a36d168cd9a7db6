"""Raw records written by hand, for tests of shard I/O."""

from __future__ import annotations

from filters import contract


def raw_record(i: int, **overrides) -> dict:
    record = {
        "key": contract.url_key(f"https://a.example/{i}.jpg"),
        "url": f"https://a.example/{i}.jpg",
        "caption": f"第{i}张图片",
        "caption_raw": f" 第{i}张图片 ",
        "query": "风景",
        "rank": i,
        "page_url": "",
        "image": bytes([i % 256]) * 10,
        "width": 300,
        "height": 240,
        "image_format": "JPEG",
        "sha256": "0" * 64,
        "status": "success",
        "error_message": None,
    }
    record.update(overrides)
    return record
