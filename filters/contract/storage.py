"""Where artefacts live and how they are written: one temporary-then-rename primitive for all.

Every artefact of the project (shards, JSON, PNG, checkpoints, arrays) is written through
`atomic_output`: the bytes go to a hidden temporary beside the final name, which is renamed over the
final name only when the writer finished without an error. A reader therefore never sees half a
file, and a killed writer leaves only a temporary that `remove_stale_temporaries` recognises.

Paths are local paths or URIs that pyarrow's filesystems know (gs://, s3://, hdfs://).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from typing import IO, Any

import pyarrow.fs as pafs

TEMPORARY_MARK = ".tmp-"


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path of a local path or a URI (gs://, s3://...)."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    return pafs.FileSystem.from_uri(uri)


def join(base: str, *parts: str) -> str:
    """Join path parts with '/', which every filesystem here accepts."""
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def makedirs(uri: str) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def delete_file(uri: str) -> bool:
    """Delete a file if it is there; returns whether it was."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return False
    fs.delete_file(path)
    return True


def is_temporary(name: str) -> bool:
    """Whether a file name is one of `atomic_output`'s temporaries."""
    return name.startswith(".") and TEMPORARY_MARK in name


def temporary_for(path: str) -> str:
    """A hidden, unique temporary name in the same directory as `path` (so the rename is atomic)."""
    head, _, base = path.rpartition("/")
    return f"{head}/.{base}{TEMPORARY_MARK}{uuid.uuid4().hex}"


class AtomicFile:
    """A binary stream whose bytes appear under `uri` only when committed.

        with AtomicFile("runs/x/funnel.json") as out:   # commit on success, discard on error
            out.write(payload)

    Parent directories are created. `discard()` deletes the temporary; `uri` keeps whatever it
    held before. Long-lived writers (shards written batch by batch) call `commit()` and
    `discard()` themselves.
    """

    def __init__(self, uri: str):
        self.uri = uri
        self._fs, self._path = resolve(uri)
        head = self._path.rpartition("/")[0]
        if head:
            self._fs.create_dir(head, recursive=True)
        self._tmp = temporary_for(self._path)
        self.stream: IO[bytes] = self._fs.open_output_stream(self._tmp)
        self._done = False

    def commit(self) -> str:
        """Close the temporary and rename it to the final name; returns `uri`."""
        if not self._done:
            self._done = True
            try:
                self.stream.close()
                self._fs.move(self._tmp, self._path)
            except BaseException:
                self._delete_temporary()
                raise
        return self.uri

    def discard(self) -> None:
        """Close and delete the temporary; the final name is left as it was."""
        if not self._done:
            self._done = True
            try:
                if not self.stream.closed:
                    self.stream.close()
            finally:
                self._delete_temporary()

    def _delete_temporary(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.delete_file(self._tmp)

    def __enter__(self) -> IO[bytes]:
        return self.stream

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def atomic_output(uri: str) -> AtomicFile:
    """`AtomicFile(uri)`, for `with atomic_output(path) as out: out.write(...)`."""
    return AtomicFile(uri)


def write_bytes(uri: str, data: bytes) -> str:
    """Write `data` atomically; returns `uri`."""
    with atomic_output(uri) as out:
        out.write(data)
    return uri


def write_json(uri: str, payload: Any, indent: int = 1, sort_keys: bool = False) -> str:
    """Write `payload` as UTF-8 JSON atomically; returns `uri`."""
    text = json.dumps(payload, ensure_ascii=False, indent=indent, sort_keys=sort_keys)
    return write_bytes(uri, text.encode("utf-8"))


def read_json(uri: str) -> Any:
    """A JSON file on any filesystem `resolve` knows. A file that is not UTF-8 JSON raises
    ValueError naming it."""
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as stream:
        data = stream.read()
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{uri}: not a UTF-8 JSON file ({err})") from err


def remove_stale_temporaries(directory: str) -> int:
    """Delete the temporaries that killed writers left in `directory`; returns how many."""
    fs, path = resolve(directory)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return 0
    removed = 0
    for entry in fs.get_file_info(pafs.FileSelector(path, recursive=False)):
        if entry.type == pafs.FileType.File and is_temporary(entry.base_name):
            fs.delete_file(entry.path)
            removed += 1
    return removed
