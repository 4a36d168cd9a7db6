"""Shards and files damaged the ways disks, copies and outside tools damage them: a corrupted page
in the middle of a shard, captions that are not UTF-8, truncated and garbage files."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from filters import contract


def corrupt_page(path: str, group: int, column: str = "image") -> None:
    """Overwrite 8 bytes in the middle of the first page of `column` in row group `group` (the
    dictionary page when there is one: it holds the values), in place; the file's footer, and every
    other row group, stay intact."""
    meta = pq.ParquetFile(path).metadata.row_group(group)
    chunk = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column)
    if chunk.has_dictionary_page:
        start, end = chunk.dictionary_page_offset, chunk.data_page_offset
    else:
        start, end = chunk.data_page_offset, chunk.data_page_offset + chunk.total_compressed_size
    middle = (start + end) // 2
    with open(path, "r+b") as f:
        f.seek(middle)
        original = f.read(8)
        f.seek(middle)
        f.write(bytes(b ^ 0xA5 for b in original))


def write_with_bad_text(path: str, records: list[dict], bad: dict[int, bytes], column: str = "caption",
                        row_group_size: int = 16) -> None:
    """A clean shard of `records` whose `column` holds the raw bytes `bad[i]` in row i: text that
    is not UTF-8, which Parquet stores without a check (as outside tools write it)."""
    table = contract.records_to_table(records, contract.CLEAN_SCHEMA)
    values = [bad[i] if i in bad else (None if v is None else v.encode("utf-8"))
              for i, v in enumerate(table.column(column).to_pylist())]
    index = table.schema.get_field_index(column)
    table = table.set_column(index, table.schema.field(index), pa.array(values, pa.binary()).view(pa.string()))
    pq.write_table(table, path, row_group_size=row_group_size)


def damage_file(path: str, how: str) -> None:
    """Damage a file in place: `empty`, `truncated` (the first half kept), `flipped` (8 bytes in the
    middle changed: the size and the archive's structure stay intact) or `garbage`."""
    with open(path, "rb") as f:
        data = f.read()
    if how == "empty":
        data = b""
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "flipped":
        middle = len(data) // 2
        data = data[:middle] + bytes(b ^ 0xA5 for b in data[middle:middle + 8]) + data[middle + 8:]
    elif how == "garbage":
        data = b"this is not a checkpoint\n" * 40
    else:
        raise ValueError(f"unknown damage {how!r}")
    with open(path, "wb") as f:
        f.write(data)


DAMAGES = ("empty", "truncated", "flipped", "garbage")
