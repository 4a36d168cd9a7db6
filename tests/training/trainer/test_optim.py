"""LAMB with the exact no-decay groups, and the cosine schedule with warm-up."""

import math

import pytest

from tests.support.training import tiny_model
from training.trainer.optim import OptimConfig, build_optimizer, build_scheduler, lr_factor, parameter_groups


def test_no_decay_is_exactly_biases_layernorm_embeddings_and_temperature():
    model = tiny_model(similarity="token_wise", token_reducer_tokens=4)
    decay, no_decay = parameter_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    expected_no_decay = {"logit_scale", "token_reducer.norm.weight", "token_reducer.norm.bias",
                         "token_reducer.attention.bias", "text_tower.embeddings.word_embeddings.weight",
                         "text_tower.embeddings.position_embeddings.weight",
                         "text_tower.embeddings.token_type_embeddings.weight",
                         "text_tower.embeddings.LayerNorm.weight", "text_tower.embeddings.LayerNorm.bias"}
    for layer in range(2):
        prefix = f"text_tower.encoder.layer.{layer}."
        expected_no_decay |= {prefix + n for n in (
            "attention.self.query.bias", "attention.self.key.bias", "attention.self.value.bias",
            "attention.output.dense.bias", "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
            "intermediate.dense.bias", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias")}
    assert set(no_decay["names"]) == expected_no_decay
    expected_decay = {"image_proj.weight", "text_proj.weight", "token_reducer.attention.weight"}
    for layer in range(2):
        prefix = f"text_tower.encoder.layer.{layer}."
        expected_decay |= {prefix + n for n in ("attention.self.query.weight", "attention.self.key.weight",
                                                 "attention.self.value.weight", "attention.output.dense.weight",
                                                 "intermediate.dense.weight", "output.dense.weight")}
    assert set(decay["names"]) == expected_decay
    assert not any(n.startswith("image_tower.") for n in decay["names"] + no_decay["names"])  # locked


def test_lamb_is_built_with_the_papers_settings_and_explicit_timm_defaults():
    model = tiny_model()
    opt = build_optimizer(model, OptimConfig(lr=2e-3, weight_decay=1e-3, max_grad_norm=None, always_adapt=True))
    assert type(opt).__name__ == "Lamb"
    d = opt.defaults
    assert d["betas"] == (0.9, 0.999) and d["eps"] == 1e-2 and d["lr"] == 2e-3
    assert d["max_grad_norm"] is None and d["always_adapt"] is True
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-3, 0.0]
    assert build_optimizer(model, OptimConfig()).defaults["max_grad_norm"] == 1.0


def test_cosine_schedule_with_linear_warmup():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(100, 100, 10, min_lr_ratio=0.1) == pytest.approx(0.1)
    model = tiny_model()
    opt = build_optimizer(model, OptimConfig(lr=1.0, warmup_steps=2))
    sched = build_scheduler(opt, OptimConfig(lr=1.0, warmup_steps=2), total_steps=6)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        OptimConfig(lr=0)
    with pytest.raises(ValueError):
        OptimConfig(betas=(0.9, 1.0))
    model = tiny_model()
    with pytest.raises(ValueError, match="warmup"):
        build_scheduler(build_optimizer(model, OptimConfig()), OptimConfig(warmup_steps=10), total_steps=10)
