"""Word lists: the one file format of every list the rules read (sensitive words, the allow-list,
surnames, known names and non-names).

One entry per line, UTF-8; blank lines are skipped and `#` starts a comment. The defaults ship in
filters/data/; users pass files of their own in the same format.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources


class WordListError(ValueError):
    """A word-list file that cannot be read as UTF-8 text; the message names the file and line."""


def parse_word_list(lines: Iterable[str]) -> list[str]:
    """The entries of a word list's lines, in order."""
    words = []
    for line in lines:
        entry = line.split("#", 1)[0].strip()
        if entry:
            words.append(entry)
    return words


def decode_word_list(data: bytes, source: str) -> list[str]:
    """The entries of a word list's bytes. A byte-order mark is ignored; bytes that are not UTF-8
    raise WordListError naming `source` and the line."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise WordListError(f"{source}: not UTF-8 text (line {line}, byte {err.start}: {err.reason}); "
                            "save the list as UTF-8, one entry per line") from err
    return parse_word_list(text.splitlines())


def read_word_list(path: str) -> list[str]:
    """The entries of a word-list file on disk."""
    with open(path, "rb") as handle:
        return decode_word_list(handle.read(), path)


def packaged_word_list(name: str) -> list[str]:
    """The entries of a word list shipped in filters/data/."""
    data = resources.files("filters").joinpath("data", name).read_bytes()
    return decode_word_list(data, f"filters/data/{name}")
