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


# --------------------------------------------------------------------------------------------
# Paths and URIs
# --------------------------------------------------------------------------------------------


def test_resolve_takes_local_paths_and_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fs, path = storage.resolve("runs/x")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == os.path.join(str(tmp_path), "runs", "x")
    fs, path = storage.resolve(f"file://{tmp_path}/runs/x")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == f"{tmp_path}/runs/x"


def test_join_puts_exactly_one_slash_between_parts():
    assert storage.join("gs://bucket/runs/", "/clean/", "part-00000.parquet") == "gs://bucket/runs/clean/part-00000.parquet"
    assert storage.join("runs") == "runs"
    assert storage.join("runs/X/", "/Xray") == "runs/X/Xray"  # only slashes are trimmed
    assert storage.join("/abs/dir", "f.json") == "/abs/dir/f.json"


def test_makedirs_exists_and_delete_file(tmp_path):
    target = str(tmp_path / "a" / "b")
    assert not storage.exists(target)
    storage.makedirs(target)
    storage.makedirs(target)  # again: no error
    assert os.path.isdir(target) and storage.exists(target)
    file = storage.join(target, "f.bin")
    storage.write_bytes(file, b"1")
    assert storage.exists(file)
    assert storage.delete_file(file) is True
    assert not os.path.exists(file) and not storage.exists(file)
    assert storage.delete_file(file) is False


@pytest.mark.parametrize("name, temporary", [
    (".part-00000.parquet.tmp-0123abcd", True),
    (".funnel.json.tmp-x", True),
    (".lock", False),                       # hidden, but no writer's temporary
    (".hidden.parquet", False),
    ("part.tmp-0123.parquet", False),       # the mark, but not hidden: somebody's own file
    ("part-00000.parquet", False),
])
def test_is_temporary_needs_both_the_dot_and_the_mark(name, temporary):
    assert storage.is_temporary(name) is temporary


def test_temporaries_are_hidden_unique_and_beside_the_final_name():
    first = storage.temporary_for("/data/run/clean/part-00000.parquet")
    second = storage.temporary_for("/data/run/clean/part-00000.parquet")
    assert first != second
    head, _, base = first.rpartition("/")
    assert head == "/data/run/clean"  # same directory: the rename is atomic
    assert base.startswith(".part-00000.parquet" + storage.TEMPORARY_MARK)
    assert storage.is_temporary(base)


# --------------------------------------------------------------------------------------------
# AtomicFile: commit and discard
# --------------------------------------------------------------------------------------------


def test_atomic_file_creates_parents_and_commit_is_idempotent(tmp_path):
    target = str(tmp_path / "new" / "dirs" / "a.bin")
    atomic = storage.AtomicFile(target)
    atomic.stream.write(b"data")
    assert atomic.commit() == target
    assert atomic.commit() == target  # a second commit neither fails nor moves anything
    atomic.discard()  # after a commit, discard keeps the committed file
    assert open(target, "rb").read() == b"data"
    assert os.listdir(tmp_path / "new" / "dirs") == ["a.bin"]


def test_discard_keeps_what_the_final_name_held_and_closes_the_stream(tmp_path):
    target = str(tmp_path / "a.bin")
    storage.write_bytes(target, b"old")
    atomic = storage.AtomicFile(target)
    atomic.stream.write(b"new")
    atomic.discard()
    assert atomic.stream.closed
    atomic.discard()  # twice: no error
    atomic.commit()  # after a discard, a commit writes nothing
    assert open(target, "rb").read() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_a_discard_after_the_stream_was_closed_still_removes_the_temporary(tmp_path):
    atomic = storage.AtomicFile(str(tmp_path / "a.bin"))
    atomic.stream.close()
    atomic.discard()
    assert os.listdir(tmp_path) == []


class _RenameFails(pafs.LocalFileSystem):
    def move(self, src, dest):
        raise OSError("rename refused")


def test_a_failed_rename_removes_the_temporary_and_raises(tmp_path, monkeypatch):
    target = str(tmp_path / "a.bin")
    monkeypatch.setattr(storage, "resolve", lambda uri: (_RenameFails(), os.path.abspath(uri)))
    atomic = storage.AtomicFile(target)
    atomic.stream.write(b"x")
    with pytest.raises(OSError, match="rename refused"):
        atomic.commit()
    assert os.listdir(tmp_path) == []


def test_write_bytes_replaces_a_file_and_returns_its_name(tmp_path):
    target = str(tmp_path / "a.bin")
    assert storage.write_bytes(target, b"one") == target
    assert storage.write_bytes(target, b"two") == target
    assert open(target, "rb").read() == b"two"


def test_write_json_writes_readable_utf8_with_the_requested_layout(tmp_path):
    target = str(tmp_path / "stats.json")
    contract.write_json(target, {"b": 1, "a": ["猫"]})
    text = open(target, "rb").read().decode("utf-8")
    assert "猫" in text  # not \u732b: people read these files
    assert text == json.dumps({"b": 1, "a": ["猫"]}, ensure_ascii=False, indent=1)
    contract.write_json(target, {"b": 1, "a": 2}, indent=None, sort_keys=True)
    assert open(target, encoding="utf-8").read() == '{"a": 2, "b": 1}'


def test_read_json_round_trips_through_a_uri(tmp_path):
    target = f"file://{tmp_path}/funnel.json"
    contract.write_json(target, {"input": 3, "名": "<人名>"})
    assert contract.read_json(target) == {"input": 3, "名": "<人名>"}


def test_read_json_names_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "split.json"
    path.write_text('{"train": ', encoding="utf-8")
    with pytest.raises(ValueError, match=r"split\.json: not a UTF-8 JSON file"):
        contract.read_json(str(path))


# --------------------------------------------------------------------------------------------
# Stale temporaries
# --------------------------------------------------------------------------------------------


def test_remove_stale_temporaries_removes_only_temporaries_at_the_top_level(tmp_path):
    assert contract.remove_stale_temporaries(str(tmp_path / "missing")) == 0
    (tmp_path / "part-00000.parquet").write_bytes(b"p")
    (tmp_path / ".lock").write_bytes(b"")
    (tmp_path / ".a.tmp-1").write_bytes(b"t")
    (tmp_path / ".b.tmp-2").write_bytes(b"t")
    (tmp_path / ".c.tmp-dir").mkdir()  # a directory is no writer's temporary
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".d.tmp-3").write_bytes(b"t")  # another directory's business
    assert contract.remove_stale_temporaries(str(tmp_path)) == 2
    assert sorted(os.listdir(tmp_path)) == [".c.tmp-dir", ".lock", "part-00000.parquet", "sub"]
    assert os.listdir(tmp_path / "sub") == [".d.tmp-3"]


def test_a_discard_does_not_fail_when_the_temporary_is_already_gone(tmp_path):
    # Another process's remove_stale_temporaries may have taken it; the discard must still work.
    atomic = storage.AtomicFile(str(tmp_path / "a.bin"))
    atomic.stream.write(b"x")
    assert contract.remove_stale_temporaries(str(tmp_path)) == 1
    atomic.discard()
    assert os.listdir(tmp_path) == []
