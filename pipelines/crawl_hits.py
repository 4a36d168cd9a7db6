"""Hit lists: what the search phase found for one chunk of queries, kept so that downloads can be
redone without searching again.

One Parquet file per query chunk (`OUTPUT/hits/<chunk>.parquet`), written atomically: one row per
hit (HITS_SCHEMA) and, in the file's metadata, one record per query of the chunk (its status,
pages and error), so that hits and statuses appear together or not at all. The file's existence
marks the chunk's search as done.

A hit's place in "the first by query order and rank wins" is `hit_order`: (round, chunk index,
position of the query in the chunk, rank). `round` is 0 for hits of a search made before any raw
shard was written, and the crawl run's start time (microseconds) for later ones (a retried query, a
chunk appended to the query file): such a hit comes after every earlier hit, so it never takes a
URL from a raw shard that is already written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from crawler.baidu import QueryResult
from filters import contract

HITS_SCHEMA = pa.schema([
    ("position", pa.int32()),   # the query's place in its chunk
    ("query", pa.string()),
    ("rank", pa.int32()),       # 0-based, within the query's results
    ("url", pa.string()),
    ("caption", pa.string()),   # as the engine gave it; the filter normalises
    ("page_url", pa.string()),
    ("width", pa.int32()),      # what the engine claims (0: not said)
    ("height", pa.int32()),
    ("round", pa.int64()),
])
_QUERIES_KEY = b"wukong.crawl.queries"


class HitListError(ValueError):
    """A hit list the crawl cannot read (names the file)."""


def hits_path(directory: str, name: str) -> str:
    return contract.join(directory, name + contract.SHARD_SUFFIX)


def query_record(result: QueryResult, position: int) -> dict:
    """What a chunk keeps of one query's search (without its hits)."""
    return {"position": position, "query": result.query, "status": result.status, "hits": len(result.hits),
            "pages": result.pages, "error_message": result.error_message}


def hit_rows(result: QueryResult, position: int, round_: int) -> list[dict]:
    return [{"position": position, "query": result.query, "rank": hit.rank, "url": hit.url.strip(),
             "caption": hit.caption, "page_url": hit.page_url, "width": hit.width, "height": hit.height,
             "round": round_} for hit in result.hits]


def write_hit_list(path: str, rows: Sequence[dict], queries: Sequence[dict]) -> None:
    """Write a chunk's hits and query records as one file, atomically."""
    table = contract.records_to_table(rows, HITS_SCHEMA)
    metadata = {_QUERIES_KEY: json.dumps(list(queries), ensure_ascii=False).encode("utf-8")}
    with contract.atomic_output(path) as out:
        pq.write_table(table.replace_schema_metadata(metadata), out, compression="zstd")


def _open(path: str) -> pq.ParquetFile:
    fs, inner = contract.resolve(path)
    try:
        parquet = pq.ParquetFile(fs.open_input_file(inner))
    except (pa.ArrowInvalid, OSError) as err:
        raise HitListError(f"{path}: not a readable hit list ({err}); remove it to search its chunk again") from err
    try:
        contract.check_schema(parquet.schema_arrow, HITS_SCHEMA, path)
    except contract.ShardSchemaError as err:
        raise HitListError(str(err)) from err
    return parquet


def _queries_of(parquet: pq.ParquetFile, path: str) -> list[dict]:
    raw = (parquet.schema_arrow.metadata or {}).get(_QUERIES_KEY)
    try:
        return json.loads(raw.decode("utf-8"))
    except (AttributeError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HitListError(f"{path}: hit list without readable query records ({err}); remove it to search "
                           f"its chunk again") from err


def read_query_records(path: str) -> list[dict]:
    """The query records of a hit list, from its footer only."""
    return _queries_of(_open(path), path)


def read_hit_list(path: str) -> tuple[list[dict], list[dict]]:
    """(hit rows, query records) of a hit list; HitListError, naming the file, when it is unreadable."""
    parquet = _open(path)
    queries = _queries_of(parquet, path)
    try:
        rows = parquet.read().to_pylist()
    except (pa.ArrowInvalid, OSError) as err:
        raise HitListError(f"{path}: truncated or corrupt hit list ({err}); remove it to search its chunk "
                           f"again") from err
    return rows, queries


def hit_order(round_: int, chunk_index: int, position: int, rank: int) -> tuple[int, int, int, int]:
    """The sort key of "the first by query order and rank wins" (see the module's docstring)."""
    return (round_, chunk_index, position, rank)


def merge_retry(old_rows: Sequence[dict], old_queries: Sequence[dict], results: dict[int, QueryResult],
                round_: int) -> tuple[list[dict], list[dict]]:
    """A chunk's hit list after searching again the queries at the positions in `results`.

    Nothing found before is dropped (a query answered before may be blocked now): a retried query
    keeps its earlier hits, with their rounds, and gains the hits whose URL it did not have, in
    round `round_`. Its record becomes the new search's, with the number of hits it now has."""
    rows = [dict(r) for r in old_rows]
    queries = [dict(q) for q in old_queries]
    for position, result in sorted(results.items()):
        known = {contract.url_key(r["url"]) for r in rows if r["position"] == position}
        for row in hit_rows(result, position, round_):
            key = contract.url_key(row["url"])
            if key not in known:
                known.add(key)
                rows.append(row)
        record = query_record(result, position)
        record["hits"] = sum(1 for r in rows if r["position"] == position)
        queries[position] = record
    rows.sort(key=lambda r: (r["position"], r["round"], r["rank"]))
    return rows, queries
