"""Reading the benchmarks' annotation files: checked paths, lines, word-segmented captions."""

from __future__ import annotations

import io
import os
import re

from training.evaluation.datasets.galleries import EvalDataError


def require_file(path: str, what: str) -> str:
    """`path`, or EvalDataError naming `what` is missing."""
    if not os.path.isfile(path):
        raise EvalDataError(f"{what} not found: {path}")
    return path


def read_text(path: str) -> str:
    """A UTF-8 text file (a byte-order mark is dropped). Bytes that are not UTF-8 are an
    EvalDataError naming the file and the line: every text input has one policy, and a file in a
    legacy encoding (GBK, Big5) must fail here, not as a UnicodeDecodeError naming nothing."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise EvalDataError(f"{path}: not UTF-8 text (line {line}, byte {err.start}: {err.reason}); "
                            "save it as UTF-8") from err


def read_lines(path: str) -> list[str]:
    """The lines of a UTF-8 file (see `read_text`), without line ends (\\n, \\r\\n or \\r)."""
    return [line.rstrip("\r\n") for line in io.StringIO(read_text(path), newline=None)]


_POS_TAG = re.compile(r"^(.+):([a-zA-Z][a-zA-Z0-9]{0,5})$")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")


def join_segmented(text: str) -> str:
    """Undo word segmentation: `一个 男人 在 跑步` -> `一个男人在跑步`.

    BosonNLP part-of-speech tags (`男人:n 跑步:v`) are removed when every token carries one.
    A space is kept only between two Latin letters or digits (`T 恤` -> `T恤`, `iPhone 6` stays).
    """
    tokens = text.split()
    if not tokens:
        return ""
    tagged = [_POS_TAG.match(token) for token in tokens]
    if all(tagged):
        tokens = [m.group(1) for m in tagged]
    joined = tokens[0]
    for token in tokens[1:]:
        if _ASCII_WORD.match(joined[-1]) and _ASCII_WORD.match(token[0]):
            joined += " "
        joined += token
    return joined
