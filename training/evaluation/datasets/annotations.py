"""Reading the benchmarks' annotation files: checked paths, lines, word-segmented captions."""

from __future__ import annotations

import os
import re

from training.evaluation.datasets.galleries import EvalDataError


def require_file(path: str, what: str) -> str:
    """`path`, or EvalDataError naming `what` is missing."""
    if not os.path.isfile(path):
        raise EvalDataError(f"{what} not found: {path}")
    return path


def read_lines(path: str) -> list[str]:
    """The lines of a UTF-8 file (a byte-order mark is dropped), without line ends."""
    with open(path, encoding="utf-8-sig") as f:
        return [line.rstrip("\r\n") for line in f]


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
