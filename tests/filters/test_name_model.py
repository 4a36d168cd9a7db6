"""The learned decision's table: training, saving, loading, and the packaged model."""

import os
import stat

import pytest

from filters.name_model import NameModel, NameModelError, TrainConfig, train

# A name follows a title and ends on a boundary; a non-name does not: the features decide alone.
EXAMPLES = [(["BIAS", "E=title_before", "EB=1"], 1)] * 20 + [(["BIAS", "E=token_crossed", "EB=0"], 0)] * 20


def test_training_learns_which_features_mark_a_name():
    model = train(EXAMPLES)
    assert model.probability(["BIAS", "E=title_before", "EB=1"]) > 0.9
    assert model.probability(["BIAS", "E=token_crossed", "EB=0"]) < 0.1
    assert model.weights["E=title_before"] > 0 > model.weights["E=token_crossed"]
    assert model.probability(["a feature never seen"]) == pytest.approx(model.probability([]))


def test_training_is_deterministic_for_a_seed():
    assert train(EXAMPLES).weights == train(EXAMPLES).weights
    mixed = [(["BIAS", f"F{i % 7}", f"G{i % 5}"], i % 2) for i in range(60)]
    assert train(mixed, TrainConfig(seed=1)).weights != train(mixed, TrainConfig(seed=2)).weights


def test_small_weights_are_left_out():
    full = train(EXAMPLES, TrainConfig(min_weight=0.0))
    pruned = train(EXAMPLES, TrainConfig(min_weight=10.0))
    assert full.weights and not pruned.weights


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0, l2 and min_weight >= 0"),
    ({"l2": -1.0}, "learning_rate must be > 0, l2 and min_weight >= 0"),
])
def test_train_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        TrainConfig(**kwargs)
    with pytest.raises(ValueError, match="no training examples"):
        train([])


def test_save_and_load_give_the_same_table(tmp_path):
    model = train(EXAMPLES, notes=["trained on forty examples"])
    path = tmp_path / "model.tsv"
    model.save(str(path))
    assert NameModel.load(str(path)) == model
    assert path.read_text(encoding="utf-8").startswith("# trained on forty examples\n")
    assert os.listdir(tmp_path) == ["model.tsv"]  # the temporary file was renamed, not left behind
    assert stat.S_IMODE(path.stat().st_mode) & stat.S_IRGRP  # readable by others, as every artefact


def test_a_feature_that_would_break_a_line_is_not_saved(tmp_path):
    model = NameModel({"BIAS": 1.0, "L1=\n": 2.0, "R1=\t": 3.0, "R1=\u2028": 0.5, "R1=\x1c": 0.25})
    path = tmp_path / "model.tsv"
    model.save(str(path))
    assert NameModel.load(str(path)).weights == {"BIAS": 1.0, "R1=\u2028": 0.5, "R1=\x1c": 0.25}


def test_a_failed_save_leaves_the_old_table_and_no_temporary(tmp_path):
    path = tmp_path / "model.tsv"
    NameModel({"BIAS": 1.0}).save(str(path))

    class Failing(dict):  # a table whose writing fails half-way, after some lines went out
        def __getitem__(self, feature):
            if feature == "Z":
                raise OSError("disk full")
            return super().__getitem__(feature)

    with pytest.raises(OSError, match="disk full"):
        NameModel(Failing({"BIAS": 2.0, "A": 1.0, "Z": 3.0})).save(str(path))
    assert os.listdir(tmp_path) == ["model.tsv"]
    assert NameModel.load(str(path)).weights == {"BIAS": 1.0}


@pytest.mark.parametrize("text, message", [
    ("BIAS\t0.5\nL1=记 1.0\n", "line 2 is not 'feature<TAB>weight'"),
    ("BIAS\tlots\n", "line 1 is not 'feature<TAB>weight'"),
    ("\t0.5\n", "line 1 is not 'feature<TAB>weight'"),
    ("# only a note\n", "no weights"),
])
def test_a_broken_table_names_the_file_and_the_line(tmp_path, text, message):
    path = tmp_path / "broken.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(NameModelError, match=f"^{path}: {message}"):
        NameModel.load(str(path))


def test_the_packaged_model_loads_and_says_how_it_was_trained():
    model = NameModel.packaged()
    assert len(model.weights) > 1000 and "BIAS" in model.weights
    notes = " ".join(model.notes)
    assert "benchmarks.train_name_model" in notes and "no held-out line" in notes
