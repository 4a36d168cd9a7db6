"""The trainer's parser is generated from the config dataclasses: every default exists once."""

import dataclasses

import pytest

from training.model import LiTConfig
from training.trainer.optim import OptimConfig
from training.trainer.params import MODEL_FLAGS, TrainConfig, build_parser, configs_from_args


def _configs(*argv):
    return configs_from_args(build_parser().parse_args(["--data", "d", "--output", "o", *argv]))


def test_the_defaults_are_the_dataclasses_defaults():
    train, model, optim = _configs()
    assert train == TrainConfig(data="d", output="o")
    assert model == LiTConfig()
    assert optim == OptimConfig()


def test_a_changed_dataclass_default_changes_the_command_line(monkeypatch):
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    monkeypatch.setattr(fields["global_batch"], "default", 1024)
    assert _configs()[0].global_batch == 1024
    assert "(default: 1024)" in build_parser().format_help()


def test_every_model_flag_reaches_the_model_config():
    argv = ["--image-tower", "resnet18", "--no-pretrained", "--image-weights", "w.pth", "--image-size", "96",
            "--image-token-pool", "4", "--text-layers", "3", "--text-width", "96", "--text-heads", "3",
            "--text-dropout", "0.2", "--text-checkpoint", "bert/", "--embed-dim", "64", "--similarity", "token_wise",
            "--token-reducer", "8", "--grad-checkpointing"]
    model = _configs(*argv)[1]
    assert model == LiTConfig(image_tower="resnet18", image_pretrained=False, image_weights="w.pth", image_size=96,
                              image_token_pool=4, text_layers=3, text_width=96, text_heads=3, text_dropout=0.2,
                              text_checkpoint="bert/", embed_dim=64, similarity="token_wise",
                              token_reducer_tokens=8, grad_checkpointing=True)
    assert set(MODEL_FLAGS) <= {f.name for f in dataclasses.fields(LiTConfig)}


def test_flags_without_a_field_of_their_own():
    train, _, optim = _configs("--no-augment", "--max-grad-norm", "0")
    assert train.auto_augment is None and TrainConfig.auto_augment == "original"
    assert optim.max_grad_norm is None  # 0 turns LAMB's clip off
    assert _configs("--max-grad-norm", "0.5")[2].max_grad_norm == 0.5


def test_tiny_keeps_an_explicit_resolution_and_tower_but_nothing_else():
    _, model, _ = _configs("--tiny", "--image-size", "96", "--text-layers", "12")
    assert model.image_size == 96  # the demo trains the tiny model at 96 px
    assert model.text_layers == LiTConfig.tiny().text_layers  # other model flags stay tiny
    _, default, _ = _configs("--tiny")
    assert default.image_size == LiTConfig.tiny().image_size
    assert _configs("--tiny", "--image-tower", "resnet34")[1].image_tower == "resnet34"
    assert _configs("--tiny", "--similarity", "token_wise")[1] == LiTConfig.tiny(similarity="token_wise")


def test_bad_combinations_are_value_errors():
    with pytest.raises(ValueError, match="--val-every needs"):
        _configs("--val-every", "2")
    with pytest.raises(ValueError, match="--data .* or --cache"):
        configs_from_args(build_parser().parse_args(["--output", "o"]))


def test_the_method_flags_reach_the_method_config_and_shape_the_model():
    from training.trainer.params import MethodConfig

    train, model, _ = _configs("--loss", "moco", "--queue-size", "4096", "--momentum", "0.9")
    assert train.method == MethodConfig(loss="moco", queue_size=4096, momentum=0.9) and model == LiTConfig()
    train, model, _ = _configs("--ranking-head", "--ranking-layers", "6", "--distill", "both", "--global-batch", "64")
    assert train.method == MethodConfig(ranking_head=True, ranking_layers=6, distill="both")
    assert model.ranking_layers == 6
    _, siglip, _ = _configs("--loss", "siglip")
    assert siglip.logit_bias == -10.0 and siglip.init_temperature == pytest.approx(0.1)  # SigLIP: t' = log 10, b = -10
    assert _configs()[0].method == MethodConfig() and _configs()[1].ranking_layers == 0


def test_bad_method_combinations_are_value_errors():
    with pytest.raises(ValueError, match="pre-ranking"):
        _configs("--loss", "siglip", "--ranking-head")
    with pytest.raises(ValueError, match="--similarity global"):
        _configs("--loss", "moco", "--similarity", "token_wise")
    with pytest.raises(ValueError, match="multiple of --global-batch"):
        _configs("--loss", "moco", "--queue-size", "100", "--global-batch", "64")
    with pytest.raises(ValueError, match="--accum-freq"):
        _configs("--distill", "target", "--accum-freq", "2", "--global-batch", "64", "--queue-size", "128")
