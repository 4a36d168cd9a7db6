"""Train the name masker's learned decision (filters/name_model.py) and write the packaged table.

    python -m benchmarks.train_name_model                  # writes filters/data/name_model.tsv
    python -m benchmarks.train_name_model --cross-validate # leave one evaluation set's dev half out

The training captions are `benchmarks/data/name_training.tsv` (3,600 image-search titles written
for training, by writers who saw none of the evaluation sets) and the development halves of the
four evaluation sets (benchmarks/name_masking.py). No held-out line is read. `--extra FILE` adds
captions of your own: lines whose last tab-separated field is a caption with names in [[...]].

`--cross-validate` trains once per evaluation set without that set's dev half and scores the
masker on it, at several probability thresholds, next to the rule decision: how the threshold
of NameMaskerConfig.model_threshold was chosen.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Sequence

from benchmarks import name_masking as name_set
from filters.name_model import TrainConfig, train
from filters.names import NameMaskerConfig, PersonNameMasker

TRAINING = os.path.join(os.path.dirname(__file__), "data", "name_training.tsv")
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "filters", "data", "name_model.tsv")
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)

Labelled = list[tuple[str, tuple[tuple[int, int], ...]]]


def read_marked(path: str) -> Labelled:
    """Captions with names in [[...]] from the last tab-separated field of each line ('#' comments)."""
    captions = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            marked = line.split("\t")[-1]
            if marked.count("[[") != marked.count("]]"):
                raise ValueError(f"{path}: line {number}: unbalanced [[ ]] marks")
            captions.append(name_set.parse_marked(marked))
    return captions


def dev_halves() -> dict[str, Labelled]:
    """The development half of each evaluation set: the only part of them that training reads."""
    sets = {"original": name_set.load(name_set.DATA), "fresh": name_set.load(name_set.FRESH),
            "blind": name_set.load_blind(), "natural": name_set.load_natural()}
    return {name: [(c.text, c.spans) for c in captions if c.split == "dev"] for name, captions in sets.items()}


@functools.lru_cache(maxsize=1)
def _rules_masker() -> PersonNameMasker:
    return PersonNameMasker(NameMaskerConfig(decision="rules"))  # features do not depend on a model


def examples_of(captions: Labelled) -> list[tuple[list[str], int]]:
    masker = _rules_masker()
    examples = []
    for text, spans in captions:
        examples += masker.training_examples(text, spans)
    return examples


def cross_validate(training: Labelled, halves: dict[str, Labelled], config: TrainConfig) -> None:
    # A caption's features do not depend on what else is trained on: each part is read once.
    trained = examples_of(training)
    of_half = {name: examples_of(part) for name, part in halves.items()}
    for held, captions in halves.items():
        model = train(trained + [e for name, part in of_half.items() if name != held for e in part], config)
        scored = [name_set.NameCaption("dev", "", text, spans) for text, spans in captions]
        line = [f"{held:9s} dev without it:"]
        for threshold in THRESHOLDS:
            masker = PersonNameMasker(NameMaskerConfig(model_threshold=threshold), model=model)
            s = name_set.score(scored, masker.find)
            line.append(f"{threshold}: P {s.precision:.3f} R {s.recall:.3f}")
        s = name_set.score(scored, _rules_masker().find)
        line.append(f"rules (tuned on it): P {s.precision:.3f} R {s.recall:.3f}")
        print(" | ".join(line), flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_name_model",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=OUT, help="where the model table goes (default: the packaged one)")
    parser.add_argument("--extra", action="append", default=[], metavar="FILE",
                        help="more labelled captions (last field of each line, names in [[...]]); repeatable")
    parser.add_argument("--cross-validate", action="store_true",
                        help="score each evaluation set's dev half with a model trained without it; write nothing")
    for field in dataclasses.fields(TrainConfig):
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(field.default), default=field.default,
                            help=f"(default {field.default})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
        training = read_marked(TRAINING)
        for path in args.extra:
            training += read_marked(path)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    halves = dev_halves()
    if args.cross_validate:
        cross_validate(training, halves, config)
        return 0
    captions = training + [c for part in halves.values() for c in part]
    started = time.perf_counter()
    examples = examples_of(captions)
    names = sum(label for _, label in examples)
    print(f"{len(captions)} captions, {len(examples)} candidates, {names} of them names", flush=True)
    notes = [f"Trained by `python -m benchmarks.train_name_model` on {len(captions)} captions:",
             f"{len(training)} from benchmarks/data/name_training.tsv and --extra files, and the dev halves of",
             "the four name evaluation sets; no held-out line.",
             f"{len(examples)} surname-pattern candidates, {names} names; {config}."]
    model = train(examples, config, notes)
    model.save(args.out)
    print(f"{len(model.weights)} weights -> {args.out} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
