"""Shards: written atomically, read back equal, schema errors that name the file and the column."""

import os
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters import contract
from filters.contract.shards import read_row_group
from tests.support.clean_shards import record, write_shards
from tests.support.damage import corrupt_page, write_with_bad_text
from tests.support.images import jpeg
from tests.support.raw_shards import raw_record


def test_written_shard_reads_back_equal(tmp_path):
    records = [raw_record(i) for i in range(50)] + [raw_record(50, image=None, status="timeout",
                                                                  width=None, height=None)]
    path = str(tmp_path / "out" / contract.shard_name(0))
    contract.write_shard(path, records, contract.RAW_SCHEMA)
    table = contract.read_shard(path, contract.RAW_SCHEMA)
    assert table.schema.equals(contract.RAW_SCHEMA)
    assert table.to_pylist() == records
    # Readable by plain pyarrow too, with no helper.
    assert pq.read_table(path).num_rows == 51


def test_shard_is_written_under_final_name_only_on_close(tmp_path):
    path = str(tmp_path / contract.shard_name(3))
    writer = contract.ShardWriter(path, contract.RAW_SCHEMA)
    writer.write_records([raw_record(1)])
    assert not os.path.exists(path)
    assert contract.list_shards(str(tmp_path)) == []  # the temporary is not a shard
    writer.close()
    assert contract.list_shards(str(tmp_path)) == [path]


def test_writer_error_leaves_nothing(tmp_path):
    path = str(tmp_path / contract.shard_name(0))
    with pytest.raises(RuntimeError):
        with contract.ShardWriter(path, contract.RAW_SCHEMA) as writer:
            writer.write_records([raw_record(1)])
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_killed_writer_leaves_no_file_with_the_final_name(tmp_path):
    path = str(tmp_path / contract.shard_name(0))
    child = textwrap.dedent(f"""
        import sys, time
        from filters import contract
        from tests.support.raw_shards import raw_record
        writer = contract.ShardWriter({path!r}, contract.RAW_SCHEMA, row_group_size=10)
        for i in range(100):
            writer.write_records([raw_record(j) for j in range(i * 10, i * 10 + 10)])
        print("written", flush=True)
        time.sleep(60)
        writer.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    try:
        assert proc.stdout.readline().strip() == "written"
        assert any(".tmp-" in name for name in os.listdir(tmp_path))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not os.path.exists(path)
    assert contract.list_shards(str(tmp_path)) == []
    assert contract.remove_stale_temporaries(str(tmp_path)) == 1
    assert os.listdir(tmp_path) == []


def test_wrong_type_names_file_and_column(tmp_path):
    path = str(tmp_path / "bad.parquet")
    table = contract.records_to_table([raw_record(0)], contract.RAW_SCHEMA)
    table = table.set_column(table.schema.get_field_index("width"), "width",
                             pa.array(["300"], type=pa.string()))
    pq.write_table(table, path)
    with pytest.raises(contract.ShardSchemaError, match=r"bad\.parquet.*'width'.*string.*int32"):
        contract.read_shard(path, contract.RAW_SCHEMA)


def test_missing_column_names_file_and_column(tmp_path):
    path = str(tmp_path / "nocap.parquet")
    table = contract.records_to_table([raw_record(0)], contract.RAW_SCHEMA).drop_columns(["caption"])
    pq.write_table(table, path)
    with pytest.raises(contract.ShardSchemaError, match=r"nocap\.parquet: missing column 'caption'"):
        contract.read_shard(path, contract.RAW_SCHEMA)


def test_truncated_file_is_a_clear_read_error(tmp_path):
    path = str(tmp_path / "trunc.parquet")
    contract.write_shard(path, [raw_record(i) for i in range(20)], contract.RAW_SCHEMA)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(contract.ShardReadError, match="trunc.parquet"):
        contract.read_shard(path, contract.RAW_SCHEMA)


def test_writer_rejects_records_with_unknown_fields(tmp_path):
    with pytest.raises(contract.ShardSchemaError, match="colour"):
        contract.write_shard(str(tmp_path / "x.parquet"), [raw_record(0, colour="red")], contract.RAW_SCHEMA)


def test_list_shards_on_missing_directory_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        contract.list_shards(str(tmp_path / "nope"))


def test_invalid_utf8_in_a_caption_is_an_error_naming_the_file_and_row_group(tmp_path):
    import pyarrow.parquet as pq

    from tests.support.raw_shards import raw_record

    table = contract.records_to_table([raw_record(i) for i in range(3)], contract.RAW_SCHEMA)
    captions = pa.array([b"ok", b"bad \xff\xfe", b"fine"], pa.binary()).view(pa.string())  # unchecked
    index = table.schema.get_field_index("caption")
    table = table.set_column(index, table.schema.field(index), captions)
    path = str(tmp_path / "part-00000.parquet")
    pq.write_table(table, path)
    with pytest.raises(contract.ShardReadError, match=r"part-00000.parquet: row group 0: column 'caption' .*UTF-8"):
        list(contract.iter_shard_batches(path, contract.RAW_SCHEMA))


def test_the_filter_names_the_shard_with_invalid_utf8(tmp_path, capsys):
    import pyarrow.parquet as pq

    from pipelines import filter as filter_job
    from tests.support.raw_shards import raw_record

    table = contract.records_to_table([raw_record(i) for i in range(2)], contract.RAW_SCHEMA)
    captions = pa.array([b"ok", b"\xc3\x28"], pa.binary()).view(pa.string())
    index = table.schema.get_field_index("caption")
    table = table.set_column(index, table.schema.field(index), captions)
    (tmp_path / "raw").mkdir()
    pq.write_table(table, str(tmp_path / "raw" / "part-00000.parquet"))
    assert filter_job.main(["--input", str(tmp_path / "raw"), "--output", str(tmp_path / "out"),
                            "--no-word-cloud"]) == 2
    err = capsys.readouterr().err
    assert "part-00000.parquet: row group 0: column 'caption'" in err and "UTF-8" in err


def test_a_corrupted_page_is_caught_by_its_checksum_and_names_the_row_group(tmp_path):
    """Without page checksums most flipped bytes decompress into other bytes and read as data."""
    write_shards(str(tmp_path), [record(i, jpeg(32 + i, 32)) for i in range(48)], per_shard=48)  # 3 groups of 16
    path = contract.join(str(tmp_path), contract.shard_name(0))
    corrupt_page(path, 1, "image")
    parquet = contract.open_shard(path, contract.CLEAN_SCHEMA)
    with pytest.raises(contract.ShardReadError, match=f"{path}: row group 1 is corrupt"):
        read_row_group(parquet, path, 1, ["key", "image"])
    assert [r["key"] for r in read_row_group(parquet, path, 2, ["key", "image"]).rows] == [f"k{i}" for i in range(32, 48)]


def test_read_row_group_leaves_out_only_the_rows_whose_text_is_not_utf8(tmp_path):
    path = str(tmp_path / "part-00000.parquet")
    write_with_bad_text(path, [record(i, jpeg(40, 40)) for i in range(6)], {1: b"\xff", 4: b"ab\xc3\x28"},
                        row_group_size=6)
    group = read_row_group(contract.open_shard(path, contract.CLEAN_SCHEMA), path, 0, ["key", "caption"])
    assert [r and r["key"] for r in group.rows] == ["k0", None, "k2", "k3", None, "k5"]
    assert group.rows[2]["caption"] == "第2张图片"  # the rows kept are text again
    assert group.problem == f"{path}: row group 0: 2 row(s) hold text that is not valid UTF-8 (column 'caption')"


# --------------------------------------------------------------------------------------------
# Schema families, projections, streaming and its errors
# --------------------------------------------------------------------------------------------


def _schema(**types):
    return pa.schema([pa.field(name, kind) for name, kind in types.items()])


@pytest.mark.parametrize("actual, expected", [
    (pa.large_string(), pa.string()),   # Parquet stores the large and the plain variant alike
    (pa.string(), pa.large_string()),
    (pa.large_binary(), pa.binary()),
    (pa.binary(), pa.large_binary()),
    (pa.int32(), pa.int32()),
])
def test_check_schema_accepts_the_same_type_or_its_large_variant(actual, expected):
    contract.check_schema(_schema(c=actual, extra=pa.int8()), _schema(c=expected), "s.parquet")


@pytest.mark.parametrize("actual, expected", [
    (pa.int64(), pa.string()),
    (pa.string(), pa.int64()),
    (pa.binary(), pa.string()),         # bytes are not text, nor text bytes
    (pa.string(), pa.binary()),
    (pa.int32(), pa.binary()),
    (pa.large_string(), pa.large_binary()),
    (pa.int64(), pa.int32()),
])
def test_check_schema_refuses_another_family(actual, expected):
    with pytest.raises(contract.ShardSchemaError, match=r"s\.parquet: column 'c' has type"):
        contract.check_schema(_schema(c=actual), _schema(c=expected), "s.parquet")


def test_a_missing_shard_is_a_read_error_naming_it(tmp_path):
    path = str(tmp_path / "part-00007.parquet")
    with pytest.raises(contract.ShardReadError, match=r"part-00007\.parquet: no such shard"):
        contract.read_shard(path, contract.RAW_SCHEMA)
    with pytest.raises(contract.ShardReadError, match=r"part-00007\.parquet: no such shard"):
        list(contract.iter_shard_batches(path, contract.RAW_SCHEMA))


def test_read_shard_reads_only_the_columns_asked_for(tmp_path):
    path = str(tmp_path / "a.parquet")
    contract.write_shard(path, [raw_record(i) for i in range(3)], contract.RAW_SCHEMA)
    table = contract.read_shard(path, contract.RAW_SCHEMA, columns=("key", "caption"))
    assert table.column_names == ["key", "caption"]
    assert table.column("caption").to_pylist() == [raw_record(i)["caption"] for i in range(3)]
    assert contract.read_shard(path, contract.RAW_SCHEMA, columns=[]).num_columns == 0


def test_batches_stream_every_row_in_order_within_the_batch_size(tmp_path):
    path = str(tmp_path / "a.parquet")
    with contract.ShardWriter(path, contract.RAW_SCHEMA, row_group_size=40) as writer:
        writer.write_records([raw_record(i) for i in range(100)])
    # Row groups of the requested size: readers hold one row group at a time.
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    batches = list(contract.iter_shard_batches(path, contract.RAW_SCHEMA, columns=["rank", "url"], batch_size=15))
    assert all(batch.num_rows <= 15 for batch in batches)
    assert all(batch.schema.names == ["rank", "url"] for batch in batches)
    assert [r for batch in batches for r in batch.column("rank").to_pylist()] == list(range(100))
    whole = list(contract.iter_shard_batches(path, contract.RAW_SCHEMA))
    assert whole[0].schema.names == contract.RAW_SCHEMA.names
    assert sum(batch.num_rows for batch in whole) == 100


def _corrupt_the_middle(path):
    data = bytearray(open(path, "rb").read())
    for offset in range(len(data) // 3, len(data) // 3 + 2000):
        data[offset] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_corrupt_row_groups_are_read_errors_naming_the_file(tmp_path):
    # The footer is intact, so the file opens; its data pages do not decompress.
    path = str(tmp_path / "part-00003.parquet")
    contract.write_shard(path, [raw_record(i) for i in range(600)], contract.RAW_SCHEMA)
    _corrupt_the_middle(path)
    contract.open_shard(path, contract.RAW_SCHEMA)
    with pytest.raises(contract.ShardReadError, match=r"part-00003\.parquet: truncated or corrupt Parquet data"):
        contract.read_shard(path, contract.RAW_SCHEMA)
    with pytest.raises(contract.ShardReadError, match=r"part-00003\.parquet: truncated or corrupt Parquet data"):
        list(contract.iter_shard_batches(path, contract.RAW_SCHEMA))


def test_invalid_utf8_in_a_large_string_column_is_found_too(tmp_path):
    table = contract.records_to_table([raw_record(i) for i in range(2)], contract.RAW_SCHEMA)
    captions = pa.array([b"ok", b"\xc3\x28"], pa.large_binary()).view(pa.large_string())
    index = table.schema.get_field_index("caption")
    table = table.set_column(index, pa.field("caption", pa.large_string()), captions)
    path = str(tmp_path / "part-00001.parquet")
    pq.write_table(table, path)
    assert pq.read_schema(path).field("caption").type == pa.large_string()
    with pytest.raises(contract.ShardReadError, match=r"part-00001\.parquet: row group 0: column 'caption'"):
        list(contract.iter_shard_batches(path, contract.RAW_SCHEMA))


def test_shard_names_sort_in_index_order():
    names = [contract.shard_name(i) for i in (0, 9, 10, 12345)]
    assert names == ["part-00000.parquet", "part-00009.parquet", "part-00010.parquet", "part-12345.parquet"]
    assert contract.shard_name(2, prefix="rejects") == "rejects-00002.parquet"


def test_list_shards_refuses_a_file_and_skips_what_is_not_a_finished_shard(tmp_path):
    (tmp_path / "part-00001.parquet").write_bytes(b"x")
    (tmp_path / "part-00000.parquet").write_bytes(b"x")
    (tmp_path / ".part-00002.parquet").write_bytes(b"x")  # hidden
    (tmp_path / "notes.txt").write_bytes(b"x")
    (tmp_path / "dir.parquet").mkdir()
    (tmp_path / "dir.parquet" / "part-00005.parquet").write_bytes(b"x")  # another directory's shard
    assert contract.list_shards(str(tmp_path)) == [str(tmp_path / "part-00000.parquet"),
                                                    str(tmp_path / "part-00001.parquet")]
    with pytest.raises(NotADirectoryError, match="not a directory"):
        contract.list_shards(str(tmp_path / "notes.txt"))


def test_records_to_table_fills_missing_nullable_fields_with_null():
    record = raw_record(0)
    del record["error_message"], record["caption"]
    table = contract.records_to_table([record], contract.RAW_SCHEMA)
    assert table.schema.equals(contract.RAW_SCHEMA)
    row = table.to_pylist()[0]
    assert row["error_message"] is None and row["caption"] is None
    with pytest.raises(contract.ShardSchemaError, match=r"record 1 has fields not in the schema: \['a', 'b'\]"):
        contract.records_to_table([raw_record(0), raw_record(1, b=1, a=2)], contract.RAW_SCHEMA)


def test_writer_counts_rows_and_casts_to_its_schema(tmp_path):
    path = str(tmp_path / "a.parquet")
    table = contract.records_to_table([raw_record(i) for i in range(5)], contract.RAW_SCHEMA)
    table = table.select(list(reversed(table.column_names)))  # another column order
    with contract.ShardWriter(path, contract.RAW_SCHEMA) as writer:
        writer.write_table(table)
        writer.write_records([])
        writer.write_records([raw_record(5)])
        assert writer.rows == 6
    assert pq.read_schema(path).names == contract.RAW_SCHEMA.names
    assert contract.write_shard(str(tmp_path / "b.parquet"), table, contract.RAW_SCHEMA) == str(tmp_path / "b.parquet")
    assert pq.read_table(str(tmp_path / "b.parquet")).num_rows == 5


def test_close_and_abort_are_final(tmp_path):
    path = str(tmp_path / "a.parquet")
    writer = contract.ShardWriter(path, contract.RAW_SCHEMA)
    writer.write_records([raw_record(0)])
    assert writer.close() == path
    writer.abort()  # after close: the shard stays
    assert writer.close() == path
    assert contract.read_shard(path, contract.RAW_SCHEMA).num_rows == 1
    other = str(tmp_path / "b.parquet")
    writer = contract.ShardWriter(other, contract.RAW_SCHEMA)
    writer.write_records([raw_record(0)])
    writer.abort()
    writer.abort()
    writer.close()  # after abort: nothing appears
    assert sorted(os.listdir(tmp_path)) == ["a.parquet"]


def test_a_table_missing_a_column_names_the_shard_being_written(tmp_path):
    path = str(tmp_path / "part-00004.parquet")
    table = contract.records_to_table([raw_record(0)], contract.RAW_SCHEMA).drop_columns(["sha256"])
    with pytest.raises(contract.ShardSchemaError, match=r"part-00004\.parquet: missing column 'sha256'"):
        contract.write_shard(path, table, contract.RAW_SCHEMA)
    assert os.listdir(tmp_path) == []


def test_shards_are_zstd_compressed(tmp_path):
    # Clean shards are published and copied around: every column chunk is compressed.
    path = str(tmp_path / "a.parquet")
    contract.write_shard(path, [raw_record(i) for i in range(10)], contract.RAW_SCHEMA)
    group = pq.ParquetFile(path).metadata.row_group(0)
    assert {group.column(i).compression for i in range(group.num_columns)} == {"ZSTD"}
