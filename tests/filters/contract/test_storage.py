"""The one temporary-then-rename primitive under every artefact."""

import json
import os

import pyarrow.fs as pafs
import pytest

from filters import contract
from filters.contract import storage


def test_write_json_round_trips_and_leaves_no_temporary(tmp_path):
    target = str(tmp_path / "sub" / "funnel.json")
    payload = {"input": 3, "名": "<人名>"}
    assert contract.write_json(target, payload) == target
    assert json.loads(open(target, encoding="utf-8").read()) == payload
    assert os.listdir(tmp_path / "sub") == ["funnel.json"]  # no temporary left behind


class _DiskFull(pafs.LocalFileSystem):
    """A local filesystem whose output streams fail after a few bytes, as a full disk would."""

    def open_output_stream(self, path, *args, **kwargs):
        return _FailingStream(super().open_output_stream(path, *args, **kwargs))


class _FailingStream:
    def __init__(self, stream):
        self._stream = stream
        self.closed = False

    def write(self, data):
        self._stream.write(bytes(data)[:5])
        raise OSError("No space left on device")

    def close(self):
        self._stream.close()
        self.closed = True


def test_write_json_replaces_a_file_only_when_it_is_complete(tmp_path, monkeypatch):
    target = str(tmp_path / "stats.json")
    contract.write_json(target, {"version": 1})
    monkeypatch.setattr(storage, "resolve", lambda uri: (_DiskFull(), os.path.abspath(uri)))
    with pytest.raises(OSError, match="No space"):
        contract.write_json(target, {"version": 2, "words": ["长"] * 1000})
    assert json.loads(open(target, encoding="utf-8").read()) == {"version": 1}
    assert os.listdir(tmp_path) == ["stats.json"]  # the temporary is gone too


def test_atomic_file_appears_only_on_commit_and_never_on_error(tmp_path):
    target = tmp_path / "a.bin"
    with storage.AtomicFile(str(target)) as out:
        out.write(b"abc")
        assert not target.exists()
    assert target.read_bytes() == b"abc"
    with pytest.raises(RuntimeError):
        with storage.AtomicFile(str(target)) as out:
            out.write(b"xyz")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"abc"
    assert sorted(os.listdir(tmp_path)) == ["a.bin"]


def test_stale_temporaries_are_recognised_and_removed(tmp_path):
    stale = storage.temporary_for(str(tmp_path / "part-00000.parquet"))
    open(stale, "wb").close()
    assert storage.is_temporary(os.path.basename(stale))
    assert not storage.is_temporary("part-00000.parquet")
    assert contract.list_shards(str(tmp_path)) == []
    assert contract.remove_stale_temporaries(str(tmp_path)) == 1
    assert os.listdir(tmp_path) == []


def test_read_json_names_a_file_that_is_not_utf8_json(tmp_path):
    path = tmp_path / "funnel.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match="funnel.json"):
        contract.read_json(str(path))
