"""Sensitive-word quality: recall on spam captions and false drops on innocent ones, per split
and category (benchmarks/data/sensitive_captions.tsv).

Each data line: label (drop/keep), category, variant (plain, spaced, symbol, traditional,
variant = pinyin/initials/homophone with a spam cue, cue = plain with a cue), caption. The split
was fixed by rule before any tuning: the i-th data line (from 0) is held out when i % 5 is 1 or
3, the rest is dev. Tune on dev only. Run `python -m benchmarks.sensitive_words`.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sys
from collections.abc import Callable, Iterable

DATA = os.path.join(os.path.dirname(__file__), "data", "sensitive_captions.tsv")
HELD_OUT = {1, 3}


@dataclasses.dataclass(frozen=True)
class LabelledCaption:
    split: str  # dev or heldout
    drop: bool
    category: str
    variant: str
    text: str


def load(path: str = DATA) -> list[LabelledCaption]:
    rows: list[LabelledCaption] = []
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip() and not line.startswith("#")]
    for i, line in enumerate(lines):
        label, category, variant, text = line.split("\t")
        if label not in ("drop", "keep"):
            raise ValueError(f"{path}: data line {i}: label {label!r} is neither drop nor keep")
        split = "heldout" if i % 5 in HELD_OUT else "dev"
        rows.append(LabelledCaption(split, label == "drop", category, variant, text))
    return rows


@dataclasses.dataclass
class Score:
    drops: int = 0
    caught: int = 0
    keeps: int = 0
    false_drops: int = 0

    @property
    def recall(self) -> float:
        return self.caught / self.drops if self.drops else float("nan")

    @property
    def false_drop_rate(self) -> float:
        return self.false_drops / self.keeps if self.keeps else float("nan")


def score(rows: Iterable[LabelledCaption], is_dropped: Callable[[str], bool]) -> dict[tuple[str, str], Score]:
    """(split, group) -> Score, where group is `all`, a category, or `variant:<name>`."""
    scores: dict[tuple[str, str], Score] = collections.defaultdict(Score)
    for row in rows:
        dropped = is_dropped(row.text)
        for group in ("all", row.category, f"variant:{row.variant}"):
            s = scores[(row.split, group)]
            if row.drop:
                s.drops += 1
                s.caught += dropped
            else:
                s.keeps += 1
                s.false_drops += dropped
    return dict(scores)


def misses(rows: Iterable[LabelledCaption], is_dropped: Callable[[str], bool], split: str = "dev") -> list[str]:
    return [f"{'missed' if r.drop else 'false drop'}\t{r.category}\t{r.text}"
            for r in rows if r.split == split and is_dropped(r.text) != r.drop]


def main(argv: list[str] | None = None) -> int:
    from filters.sensitive import SensitiveWordMatcher  # noqa: PLC0415 - the thing measured

    argv = sys.argv[1:] if argv is None else argv
    matcher = SensitiveWordMatcher.default()
    rows = load()
    scores = score(rows, lambda text: bool(matcher.find(text)))
    print(f"{'split':8} {'group':22} {'drops':>5} {'recall':>7} {'keeps':>5} {'false drops':>11}")
    for (split, group), s in sorted(scores.items(), key=lambda kv: (kv[0][0], kv[0][1] != "all", kv[0][1])):
        recall = f"{s.recall:.3f}" if s.drops else "-"
        fdr = f"{s.false_drop_rate:.3f}" if s.keeps else "-"
        print(f"{split:8} {group:22} {s.drops:5} {recall:>7} {s.keeps:5} {fdr:>11}")
    if "--errors" in argv:
        print("\n".join(misses(rows, lambda text: bool(matcher.find(text)))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
