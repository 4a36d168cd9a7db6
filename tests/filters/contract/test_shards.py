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
