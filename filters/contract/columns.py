"""The columns of the three kinds of shard, each listed explicitly (never derived from another).

Raw shards are what the crawl writes and the filter reads; clean shards are what users publish
and the trainer reads; reject shards keep every dropped pair, without image bytes, with the reason.
Raw and reject shards are internal: they hold the caption as found (`caption_raw`). Clean shards
are what users publish: they have no `caption_raw`, their `caption` is masked, and their `query`
is masked the same way (a search query can be a person's name), so no clean column holds a name the
masker found. See docs/data-quality.md.

This module imports only pyarrow: it is the schema half of the contract between the data side and
the trainer.
"""

from __future__ import annotations

import pyarrow as pa

# Each column is defined once here and listed by name in each kind of shard below.
_COLUMNS = {
    "key": pa.field("key", pa.string(), nullable=False),  # stable for a URL (contract.urls.url_key)
    "url": pa.field("url", pa.string(), nullable=False),
    # Raw: optional, for raw shards built by other tools that hold one caption only; the crawl
    # leaves it null and stores the caption as found in caption_raw. Clean and reject: the
    # normalised caption after the text rules (masked from rule 4 on).
    "caption": pa.field("caption", pa.string()),
    "caption_raw": pa.field("caption_raw", pa.string()),  # as found; raw and reject shards only
    # The search query that found it, or "" for URL lists; names masked in clean shards.
    "query": pa.field("query", pa.string()),
    "rank": pa.field("rank", pa.int32()),  # rank within the query's results, or row in a URL list
    "page_url": pa.field("page_url", pa.string()),  # the page the image was found on, may be ""
    "image": pa.field("image", pa.binary()),  # null when the download failed
    "width": pa.field("width", pa.int32()),
    "height": pa.field("height", pa.int32()),
    "image_format": pa.field("image_format", pa.string()),  # Pillow's format name: JPEG, PNG, ...
    "sha256": pa.field("sha256", pa.string()),  # of the image bytes, hex
    "status": pa.field("status", pa.string(), nullable=False),  # a vocabulary.DownloadStatus
    "error_message": pa.field("error_message", pa.string()),
    "drop_reason": pa.field("drop_reason", pa.string(), nullable=False),  # a vocabulary.DropReason
}

RAW_COLUMNS = ("key", "url", "caption", "caption_raw", "query", "rank", "page_url", "image", "width",
               "height", "image_format", "sha256", "status", "error_message")
CLEAN_COLUMNS = ("key", "url", "caption", "query", "rank", "page_url", "image", "width",
                 "height", "image_format", "sha256")
REJECT_COLUMNS = ("key", "url", "caption", "caption_raw", "query", "rank", "page_url", "width",
                  "height", "image_format", "sha256", "status", "error_message", "drop_reason")


def _schema(columns: tuple[str, ...]) -> pa.Schema:
    return pa.schema([_COLUMNS[name] for name in columns])


RAW_SCHEMA = _schema(RAW_COLUMNS)
CLEAN_SCHEMA = _schema(CLEAN_COLUMNS)
REJECT_SCHEMA = _schema(REJECT_COLUMNS)

SCHEMAS = {"raw": RAW_SCHEMA, "clean": CLEAN_SCHEMA, "reject": REJECT_SCHEMA}
