import json
import os
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters import contract


def _raw_record(i: int, **overrides) -> dict:
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


def test_written_shard_reads_back_equal(tmp_path):
    records = [_raw_record(i) for i in range(50)] + [_raw_record(50, image=None, status="timeout",
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
    writer.write_records([_raw_record(1)])
    assert not os.path.exists(path)
    assert contract.list_shards(str(tmp_path)) == []  # the temporary is not a shard
    writer.close()
    assert contract.list_shards(str(tmp_path)) == [path]


def test_writer_error_leaves_nothing(tmp_path):
    path = str(tmp_path / contract.shard_name(0))
    with pytest.raises(RuntimeError):
        with contract.ShardWriter(path, contract.RAW_SCHEMA) as writer:
            writer.write_records([_raw_record(1)])
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_killed_writer_leaves_no_file_with_the_final_name(tmp_path):
    path = str(tmp_path / contract.shard_name(0))
    child = textwrap.dedent(f"""
        import sys, time
        from filters import contract
        from tests.pipelines.test_schema import _raw_record
        writer = contract.ShardWriter({path!r}, contract.RAW_SCHEMA, row_group_size=10)
        for i in range(100):
            writer.write_records([_raw_record(j) for j in range(i * 10, i * 10 + 10)])
        print("written", flush=True)
        time.sleep(60)
        writer.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
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
    table = contract.records_to_table([_raw_record(0)], contract.RAW_SCHEMA)
    table = table.set_column(table.schema.get_field_index("width"), "width",
                             pa.array(["300"], type=pa.string()))
    pq.write_table(table, path)
    with pytest.raises(contract.ShardSchemaError, match=r"bad\.parquet.*'width'.*string.*int32"):
        contract.read_shard(path, contract.RAW_SCHEMA)


def test_missing_column_names_file_and_column(tmp_path):
    path = str(tmp_path / "nocap.parquet")
    table = contract.records_to_table([_raw_record(0)], contract.RAW_SCHEMA).drop_columns(["caption"])
    pq.write_table(table, path)
    with pytest.raises(contract.ShardSchemaError, match=r"nocap\.parquet: missing column 'caption'"):
        contract.read_shard(path, contract.RAW_SCHEMA)


def test_truncated_file_is_a_clear_read_error(tmp_path):
    path = str(tmp_path / "trunc.parquet")
    contract.write_shard(path, [_raw_record(i) for i in range(20)], contract.RAW_SCHEMA)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(contract.ShardReadError, match="trunc.parquet"):
        contract.read_shard(path, contract.RAW_SCHEMA)


def test_writer_rejects_records_with_unknown_fields(tmp_path):
    with pytest.raises(contract.ShardSchemaError, match="colour"):
        contract.write_shard(str(tmp_path / "x.parquet"), [_raw_record(0, colour="red")], contract.RAW_SCHEMA)


def test_clean_and_reject_schemas_follow_the_contract():
    for column in ("key", "url", "caption", "caption_raw", "image", "width", "height", "sha256", "query"):
        assert column in contract.CLEAN_SCHEMA.names
    assert "image" not in contract.REJECT_SCHEMA.names
    assert "drop_reason" in contract.REJECT_SCHEMA.names
    assert contract.CLEAN_SCHEMA.field("image").type == pa.binary()


def test_list_shards_on_missing_directory_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        contract.list_shards(str(tmp_path / "nope"))


def test_url_key_is_stable():
    assert contract.url_key("https://a.example/1.jpg") == contract.url_key("https://a.example/1.jpg ")
    assert contract.url_key("https://a.example/1.jpg") != contract.url_key("https://a.example/2.jpg")
    assert len(contract.url_key("x")) == 16


def test_funnel_layout_adds_up():
    funnel = contract.build_funnel(100, [("download", {"download_failed": 5}),
                                       ("text", {"text_length": 10, "sensitive_word": 1})])
    assert funnel == {
        "input": 100,
        "stages": [
            {"stage": "download", "dropped": {"download_failed": 5}, "remaining": 95},
            {"stage": "text", "dropped": {"text_length": 10, "sensitive_word": 1}, "remaining": 84},
        ],
        "output": 84,
    }
    contract.validate_funnel(json.loads(json.dumps(funnel)))
    broken = dict(funnel, output=85)
    with pytest.raises(ValueError, match="do not add up"):
        contract.validate_funnel(broken)
    with pytest.raises(ValueError, match="unknown drop reasons"):
        contract.build_funnel(10, [("x", {"too_blue": 1})])


def test_write_json_is_atomic_and_round_trips(tmp_path):
    target = str(tmp_path / "sub" / "funnel.json")
    payload = {"input": 3, "名": "<人名>"}
    assert contract.write_json(target, payload) == target
    assert json.loads(open(target, encoding="utf-8").read()) == payload
    assert os.listdir(tmp_path / "sub") == ["funnel.json"]  # no temporary left behind
