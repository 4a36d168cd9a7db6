"""The trainer of the name masker's model: it reproduces the packaged table, reads no held-out line,
and reports bad input."""

from __future__ import annotations

import os

import pytest

from benchmarks import name_masking, train_name_model
from filters.name_model import NameModel


def test_the_packaged_model_is_what_the_trainer_writes(tmp_path):
    out = tmp_path / "model.tsv"
    assert train_name_model.main(["--out", str(out)]) == 0
    with open(train_name_model.OUT, encoding="utf-8") as packaged:
        assert out.read_text(encoding="utf-8") == packaged.read()


@pytest.mark.e2e
def test_cross_validation_scores_each_dev_half_without_it(capsys):
    assert train_name_model.main(["--cross-validate", "--epochs", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["original", "fresh", "blind", "natural"]
    for line in lines:
        cells = line.split(" | ")
        assert [c.split(":")[0] for c in cells[1:]] == [str(t) for t in train_name_model.THRESHOLDS] + [
            "rules (tuned on it)"]
        scores = [float(x) for c in cells[1:] for x in (c.split("P ")[1].split(" R ")[0], c.rsplit("R ", 1)[1])]
        assert all(0.5 < x <= 1.0 for x in scores)  # two epochs already do far better than chance


def test_cross_validation_trains_each_model_without_the_half_it_scores(monkeypatch, capsys):
    from filters.name_model import TrainConfig

    halves = train_name_model.dev_halves()
    made: dict[int, str] = {}  # id of each example -> the half (or "training") it came from
    real_examples_of = train_name_model.examples_of

    def examples_of(captions):
        examples = real_examples_of(captions)
        owner = next((name for name, part in halves.items() if part is captions), "training")
        made.update({id(example): owner for example in examples})
        return examples

    trained_on = []
    real_train = train_name_model.train

    def train(examples, config):
        trained_on.append({made[id(example)] for example in examples})
        return real_train(examples, config)

    monkeypatch.setattr(train_name_model, "examples_of", examples_of)
    monkeypatch.setattr(train_name_model, "train", train)
    training = [("记者李晓峰在现场", ((2, 5),))]
    train_name_model.cross_validate(training, halves, TrainConfig(epochs=1))
    assert trained_on == [{"training"} | set(halves) - {held} for held in halves]
    assert len(capsys.readouterr().out.splitlines()) == len(halves)


def test_training_reads_only_the_dev_halves():
    halves = train_name_model.dev_halves()
    heldout = {c.text for captions in (name_masking.load(name_masking.DATA), name_masking.load(name_masking.FRESH),
                                       name_masking.load_blind(), name_masking.load_natural())
               for c in captions if c.split == "heldout"}
    heldout |= {c.text for c in name_masking.load_unseen()}  # neither half of the unseen set
    trained = {text for part in halves.values() for text, _ in part}
    trained |= {text for text, _ in train_name_model.read_marked(train_name_model.TRAINING)}
    assert heldout and not trained & heldout
    assert set(halves) == {"original", "fresh", "blind", "natural"}


def test_extra_captions_are_read_from_the_last_field(tmp_path):
    extra = tmp_path / "mine.tsv"
    extra.write_text("# my captions\nshop\t店主[[吴秀兰]]的手工皂\n\n[[张三]]和[[李四]]\n", encoding="utf-8")
    assert train_name_model.read_marked(str(extra)) == [("店主吴秀兰的手工皂", ((2, 5),)),
                                                        ("张三和李四", ((0, 2), (3, 5)))]


def test_bad_input_is_an_error_that_writes_nothing(tmp_path, capsys):
    out = tmp_path / "model.tsv"
    broken = tmp_path / "broken.tsv"
    broken.write_text("[[张三]和李四\n", encoding="utf-8")
    assert train_name_model.main(["--extra", str(broken), "--out", str(out)]) == 2
    assert f"{broken}: line 1: unbalanced [[ ]] marks" in capsys.readouterr().err
    assert train_name_model.main(["--extra", str(tmp_path / "missing.tsv"), "--out", str(out)]) == 2
    assert train_name_model.main(["--epochs", "0", "--out", str(out)]) == 2
    assert not out.exists()


def test_command_line_has_help_with_the_training_settings(capsys):
    with pytest.raises(SystemExit) as done:
        train_name_model.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--extra", "--cross-validate", "--epochs", "--learning-rate", "--l2", "--seed"):
        assert flag in text
    assert os.path.basename(train_name_model.OUT) == "name_model.tsv"
    assert NameModel.load(train_name_model.OUT).weights
