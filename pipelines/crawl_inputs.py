"""The crawl's inputs and how they are cut into resumable chunks.

Two modes:
- a query file (UTF-8, one query per line): each chunk is `chunk_size` consecutive queries;
- URL lists (`--url-list`: CSV, TSV or Parquet files with `url` and `caption` columns, such as
  the public Wukong release or img2dataset's inputs; a glob matches several): each chunk is a
  range of `chunk_size` rows of one file.

A chunk's name is its position plus a digest of what it holds (`part-00003-1a2b3c4d`), so the shard
that a chunk writes (`<name>.parquet`) says which work is done: a rerun skips the chunks whose
shard exists, and a changed input never mistakes an old shard for its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from crawler.queries import read_queries

MODE_QUERIES = "queries"
MODE_URLS = "urls"


class CrawlInputError(ValueError):
    """An input the crawl cannot use (missing file, no queries, no url column...)."""


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One unit of resumable work. Query chunks hold `queries`; URL-list chunks name a file
    and a row range (`first_rank` is the global row number of `start`)."""

    index: int
    name: str
    mode: str
    queries: tuple[str, ...] = ()
    path: str = ""
    start: int = 0
    stop: int = 0
    first_rank: int = 0

    @property
    def size(self) -> int:
        return len(self.queries) if self.mode == MODE_QUERIES else self.stop - self.start


def _digest(*parts: str) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:8]


def chunk_name(index: int, digest: str) -> str:
    return f"part-{index:05d}-{digest}"


def _read_bytes(path: str) -> bytes:
    try:
        with FileSystems.open(path) as handle:
            return handle.read()
    except (OSError, IOError) as err:  # Beam raises BeamIOError (an IOError) for a missing file
        raise CrawlInputError(f"cannot read {path}: {err}") from err


def load_queries(path: str) -> list[str]:
    """The queries of a UTF-8 file; QueryFileError for non-UTF-8 bytes, CrawlInputError when
    the file is missing or holds no query."""
    queries = read_queries(_read_bytes(path), source=path)
    if not queries:
        raise CrawlInputError(f"{path}: no queries (the file is empty or holds only blank lines)")
    return queries


def plan_query_chunks(queries: Sequence[str], chunk_size: int) -> list[Chunk]:
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    chunks = []
    for index, start in enumerate(range(0, len(queries), chunk_size)):
        part = tuple(queries[start:start + chunk_size])
        chunks.append(Chunk(index, chunk_name(index, _digest(MODE_QUERIES, *part)), MODE_QUERIES, queries=part))
    return chunks


# --------------------------------------------------------------------------------------------
# URL lists
# --------------------------------------------------------------------------------------------


def expand_paths(pattern: str) -> list[str]:
    """The files a path or glob names, sorted; CrawlInputError when there are none."""
    try:
        results = FileSystems.match([pattern])
    except (OSError, IOError) as err:
        raise CrawlInputError(f"cannot list {pattern}: {err}") from err
    paths = sorted(m.path for result in results for m in result.metadata_list)
    if not paths:
        raise CrawlInputError(f"--url-list {pattern}: no such file")
    return paths


def read_url_table(path: str) -> pa.Table:
    """The `url` and `caption` columns of a CSV, TSV or Parquet file, as strings (a missing
    caption column gives empty captions). CrawlInputError when it has no `url` column."""
    data = _read_bytes(path)
    lower = path.lower()
    try:
        if lower.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(data))
        else:
            delimiter = "\t" if lower.endswith((".tsv", ".tsv.gz")) else ","
            table = pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(delimiter=delimiter),
                                   convert_options=pacsv.ConvertOptions(
                                       column_types={"url": pa.string(), "caption": pa.string()},
                                       strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError) as err:
        raise CrawlInputError(f"{path}: not a readable CSV/TSV/Parquet file ({err})") from err
    if "url" not in table.column_names:
        raise CrawlInputError(f"{path}: no 'url' column (columns: {table.column_names}); "
                              f"a URL list needs a header with url,caption")
    urls = table.column("url").cast(pa.string())
    captions = (table.column("caption").cast(pa.string()) if "caption" in table.column_names
                else pa.array([""] * table.num_rows, pa.string()))
    return pa.table({"url": urls, "caption": captions})


def count_rows(path: str) -> int:
    if path.lower().endswith(".parquet"):
        with FileSystems.open(path) as handle:
            return pq.ParquetFile(io.BytesIO(handle.read())).metadata.num_rows
    return read_url_table(path).num_rows


def file_version(path: str) -> str:
    """Size and modification time of `path`: a URL list edited in place gives new chunk names,
    so a rerun does not take the old shards for its own."""
    metadata = FileSystems.match([path])[0].metadata_list[0]
    return f"{metadata.size_in_bytes}:{metadata.last_updated_in_seconds}"


def plan_url_chunks(pattern: str, chunk_size: int) -> list[Chunk]:
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    chunks = []
    rank = 0
    for path in expand_paths(pattern):
        rows = count_rows(path)
        version = file_version(path)
        for start in range(0, rows, chunk_size):
            stop = min(rows, start + chunk_size)
            index = len(chunks)
            name = chunk_name(index, _digest(MODE_URLS, path, version, str(start), str(stop)))
            chunks.append(Chunk(index, name, MODE_URLS, path=path, start=start, stop=stop, first_rank=rank + start))
        rank += rows
    if not chunks:
        raise CrawlInputError(f"--url-list {pattern}: no rows")
    return chunks


def iter_url_rows(chunk: Chunk) -> Iterator[tuple[int, str, str]]:
    """(rank, url, caption) of the chunk's rows; null cells read as ""."""
    table = read_url_table(chunk.path).slice(chunk.start, chunk.stop - chunk.start)
    for offset, (url, caption) in enumerate(zip(table.column("url").to_pylist(),
                                                table.column("caption").to_pylist())):
        yield chunk.first_rank + offset, url or "", caption or ""
