"""The learned decision of the person-name masker: logistic regression over the features of a
surname-pattern candidate (filters/names.py builds them: the rule evidence, the rule score, the
characters around the candidate, the segmenter's boundaries, jieba's dictionary).

A model is a table of feature weights. The packaged one, `filters/data/name_model.tsv`, is trained
by `python -m benchmarks.train_name_model` on labelled captions; its first lines say on which.

    model = NameModel.packaged()
    model.probability(["BIAS", "E=title_before", "R1=在"])  -> 0.93
    model = train(examples)                                 # examples: (features, 0 or 1)
    model.save("my_model.tsv")

Training is plain stochastic gradient descent with AdaGrad steps and an L2 penalty, in a fixed
order from a seed, so the same examples give the same table on every machine.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources

from filters.contract.storage import atomic_output

PACKAGED = "name_model.tsv"
# Characters that would break a table line; a feature holding one (a caption's control character
# next to a name) is left out of the saved table.
_UNSAVABLE = frozenset("\t\n\r")


class NameModelError(ValueError):
    """A model file that cannot be read; the message names the file and the line."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How `train` fits the weights."""

    epochs: int = 15
    learning_rate: float = 0.2  # AdaGrad's base step
    l2: float = 1e-4
    seed: int = 0
    min_weight: float = 1e-3  # weights smaller than this are left out of the table

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.learning_rate <= 0 or self.l2 < 0 or self.min_weight < 0:
            raise ValueError("learning_rate must be > 0, l2 and min_weight >= 0")


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclasses.dataclass(frozen=True)
class NameModel:
    """Feature weights; a feature the table lacks weighs 0."""

    weights: Mapping[str, float]
    notes: tuple[str, ...] = ()  # provenance, written as comment lines

    def probability(self, features: Iterable[str]) -> float:
        get = self.weights.get
        return _sigmoid(sum(get(f, 0.0) for f in features))

    def save(self, path: str) -> None:
        """Write the table atomically (the project's temporary-then-rename `atomic_output`)."""
        with atomic_output(path) as out:
            for note in self.notes:
                out.write(f"# {note}\n".encode())
            for feature in sorted(self.weights):
                if not _UNSAVABLE.intersection(feature):
                    out.write(f"{feature}\t{self.weights[feature]:.6f}\n".encode())

    @classmethod
    def parse(cls, text: str, source: str) -> NameModel:
        weights: dict[str, float] = {}
        notes = []
        for number, line in enumerate(text.split("\n"), 1):  # not splitlines: features may hold \x1c, \u2028
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            if line.startswith("#"):
                notes.append(line[1:].strip())
                continue
            feature, sep, value = line.rpartition("\t")
            try:
                if not sep or not feature:
                    raise ValueError("no tab")
                weights[feature] = float(value)
            except ValueError as err:
                raise NameModelError(f"{source}: line {number} is not 'feature<TAB>weight': {line[:60]!r}") from err
        if not weights:
            raise NameModelError(f"{source}: no weights")
        return cls(weights, tuple(notes))

    @classmethod
    def load(cls, path: str) -> NameModel:
        with open(path, encoding="utf-8") as handle:
            return cls.parse(handle.read(), path)

    @classmethod
    def packaged(cls) -> NameModel:
        return _packaged()


@functools.lru_cache(maxsize=1)
def _packaged() -> NameModel:
    text = resources.files("filters").joinpath("data", PACKAGED).read_text(encoding="utf-8")
    return NameModel.parse(text, f"filters/data/{PACKAGED}")


def train(examples: Sequence[tuple[Sequence[str], int]], config: TrainConfig = TrainConfig(),
          notes: Sequence[str] = ()) -> NameModel:
    """Fit the weights to `examples` (features, label 1 for a name, 0 for none)."""
    if not examples:
        raise ValueError("no training examples")
    weights: dict[str, float] = {}
    squares: dict[str, float] = {}
    order = list(range(len(examples)))
    rng = random.Random(config.seed)
    for _ in range(config.epochs):
        rng.shuffle(order)
        for i in order:
            features, label = examples[i]
            gradient = _sigmoid(sum(weights.get(f, 0.0) for f in features)) - label
            for f in features:
                w = weights.get(f, 0.0)
                g = gradient + config.l2 * w
                squares[f] = squares.get(f, 0.0) + g * g
                weights[f] = w - config.learning_rate * g / math.sqrt(squares[f] + 1e-8)
    kept = {f: round(w, 6) for f, w in weights.items() if abs(w) >= config.min_weight}
    return NameModel(kept, tuple(notes))
