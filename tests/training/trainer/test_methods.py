"""The trainer's methods: each loss as the step loop runs it, against a loop implementation on one
process and against one process on the whole batch under 2 gloo ranks; teachers and queues."""

import math

import pytest
import torch
import torch.nn.functional as F

from tests.support.training import gradients, random_inputs, rows, run_on_gloo_ranks, tiny_model
from training.ranking import CLASS_WEIGHTS, sample_hard_negatives
from training.sigmoid_loss import INIT_BIAS
from training.trainer.distributed import wrap_ddp
from training.trainer.methods import (
    ContrastiveMethod,
    RankingMethod,
    SigLipTrainLoss,
    build_method,
    mask_tokens,
    soft_target_loss,
    step_generator,
)
from training.trainer.params import MethodConfig

SIGLIP = dict(init_temperature=0.1, logit_bias=INIT_BIAS)
RANKING = dict(ranking_layers=1)


def _loop_sigmoid_loss(image, text, scale, bias):
    """The SigLIP loss pair by pair: -1/N sum_ij log sigmoid(z_ij (t x_i.y_j + b))."""
    total = 0.0
    for i in range(image.shape[0]):
        for j in range(text.shape[0]):
            z = 1.0 if i == j else -1.0
            total = total - F.logsigmoid(z * (scale * image[i] @ text[j] + bias))
    return total / image.shape[0]


def test_the_siglip_step_equals_the_loop_loss_and_trains_the_bias():
    model = tiny_model(**SIGLIP)
    batch = random_inputs(model, 6)
    result = ContrastiveMethod(SigLipTrainLoss()).backward(model, [batch])
    got = gradients(model)
    model.zero_grad(set_to_none=True)
    image, text, _, params = model(*batch.inputs())
    assert torch.allclose(params, torch.tensor([10.0, -10.0]))  # SigLIP's t = exp(log 10), b = -10
    expected = _loop_sigmoid_loss(image, text, params[0], params[1])
    expected.backward()
    assert torch.allclose(result.loss, expected.detach(), atol=1e-5)
    for name, grad in gradients(model).items():
        assert torch.allclose(got[name], grad, atol=1e-6, rtol=1e-4), name
    assert got["logit_bias"].abs() > 0


def test_siglip_accumulation_of_two_micro_batches_equals_one_batch():
    model = tiny_model(**SIGLIP)
    batch = random_inputs(model, 8)
    method = ContrastiveMethod(SigLipTrainLoss())
    whole = method.backward(model, [batch])
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    accumulated = method.backward(model, [rows(batch, 0, 4), rows(batch, 4, 8)])
    assert torch.allclose(whole.loss, accumulated.loss, atol=1e-5)
    for name, grad in gradients(model).items():
        assert torch.allclose(grad, expected[name], atol=1e-6, rtol=1e-4), name


def _loop_momentum_loss(image, text, image_keys, text_keys, image_queue, text_queue, temperature):
    """BriVL's CE(i2t) + CE(t2i), row by row: column 0 is the pair's key, then the queue."""
    total = 0.0
    n = image.shape[0]
    for i in range(n):
        row = torch.stack([image[i] @ text_keys[i], *[image[i] @ k for k in text_queue]]) / temperature
        total = total - row.log_softmax(0)[0] / n
        row = torch.stack([text[i] @ image_keys[i], *[text[i] @ k for k in image_queue]]) / temperature
        total = total - row.log_softmax(0)[0] / n
    return total


def test_moco_equals_the_loop_loss_freezes_the_temperature_and_updates_teacher_then_queue():
    model = tiny_model()
    method = build_method(model, MethodConfig(loss="moco", queue_size=12, momentum=0.5))
    assert not model.logit_scale.requires_grad
    batch = random_inputs(model, 4)
    teacher = method.teacher
    queue_before = teacher.text_queue.keys.clone()
    result = method.backward(model, [batch])
    got = gradients(model)
    model.zero_grad(set_to_none=True)
    image, text, _, _ = model(*batch.inputs())
    image_keys, text_keys = teacher.image_keys(batch.pooled), teacher.text_keys(batch.input_ids, batch.attention_mask)
    expected = _loop_momentum_loss(image, text, image_keys, text_keys, teacher.image_queue.keys, queue_before, 0.07)
    expected.backward()
    assert torch.allclose(result.loss, expected.detach(), atol=1e-4)
    for name, grad in gradients(model).items():
        assert torch.allclose(got[name], grad, atol=1e-6, rtol=1e-4), name

    with torch.no_grad():  # as if the optimiser had stepped
        for p in model.text_proj.parameters():
            p.add_(1.0)
    old_copy = teacher.copy.copies["text_proj"].weight.clone()
    method.after_step(model)
    # the EMA moved half way to the new weights, and the keys (computed before the update) were enqueued
    assert torch.allclose(teacher.copy.copies["text_proj"].weight, 0.5 * old_copy + 0.5 * model.text_proj.weight)
    assert torch.equal(teacher.text_queue.keys[:4], text_keys) and torch.equal(teacher.text_queue.keys[4:], queue_before[4:])
    assert int(teacher.text_queue.pointer) == 4


def test_hard_negatives_and_the_weighted_ranking_loss_match_a_hand_computation():
    model = tiny_model(**RANKING)
    batch = random_inputs(model, 5)
    method = RankingMethod(model, MethodConfig(ranking_head=True), seed=3, mask_id=None)
    result = method.backward(model, [batch], step=7)
    got = gradients(model)
    model.zero_grad(set_to_none=True)
    image, text, _, scale, hidden = model(*batch.inputs(), with_hidden=True)
    logits = scale * image @ text.t()
    labels = torch.arange(5)
    contrastive = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    g = step_generator(3, 7)
    similarity = (image @ text.t()).detach()
    neg_text = sample_hard_negatives(similarity, 1.0, generator=g)
    neg_image = sample_hard_negatives(similarity.t(), 1.0, generator=g)
    assert not (neg_text == labels).any() and not (neg_image == labels).any()
    total, weight = 0.0, 0.0
    pairs = [(i, i, 1) for i in range(5)] + [(i, int(neg_text[i]), 0) for i in range(5)] + \
            [(int(neg_image[i]), i, 0) for i in range(5)]
    for image_row, text_row, label in pairs:
        out = model.ranking_head(batch.tokens[image_row:image_row + 1], hidden[text_row:text_row + 1],
                                 batch.attention_mask[text_row:text_row + 1])
        total = total - CLASS_WEIGHTS[label] * out.log_softmax(-1)[0, label]
        weight += CLASS_WEIGHTS[label]
    expected = contrastive + total / weight
    expected.backward()
    assert torch.allclose(result.loss, expected.detach(), atol=1e-5)
    for name, grad in gradients(model).items():
        assert torch.allclose(got[name], grad, atol=1e-6, rtol=1e-4), name
    assert any(name.startswith("ranking_head.") for name in got)


def test_the_shared_generator_depends_on_seed_and_step_only():
    a, b = step_generator(0, 5), step_generator(0, 5)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(torch.rand(4, generator=step_generator(0, 6)), torch.rand(4, generator=step_generator(0, 5)))


def test_soft_targets_are_one_hot_at_alpha_0_and_the_teacher_at_alpha_1():
    g = torch.Generator().manual_seed(0)
    logits, teacher = torch.randn(3, 7, generator=g), torch.randn(3, 7, generator=g)
    labels = torch.tensor([0, 4, 6])
    assert torch.allclose(soft_target_loss(logits, teacher, labels, 0.0), F.cross_entropy(logits, labels))
    loop = -sum((teacher[i].softmax(0) * logits[i].log_softmax(0)).sum() for i in range(3)) / 3
    assert torch.allclose(soft_target_loss(logits, teacher, labels, 1.0), loop)


def test_masking_touches_caption_tokens_only():
    ids = torch.tensor([[101, 5, 6, 7, 102, 0, 0], [101, 8, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    all_masked = mask_tokens(ids, mask, 103, rate=0.999999)
    assert all_masked.tolist() == [[101, 103, 103, 103, 102, 0, 0], [101, 103, 102, 0, 0, 0, 0]]
    torch.manual_seed(0)
    some = mask_tokens(torch.full((200, 32), 7).index_fill(1, torch.tensor([0]), 101), torch.ones(200, 32).long(),
                       103, rate=0.15)
    share = (some == 103).float().mean().item()
    assert 0.12 < share < 0.18


def test_target_distillation_uses_the_teacher_queue():
    model = tiny_model()
    method = build_method(model, MethodConfig(distill="target", queue_size=8), mask_id=103)
    batch = random_inputs(model, 4)
    before = method.backward(model, [batch]).loss
    method.teacher.text_queue.keys.copy_(F.normalize(torch.randn(8, model.config.embed_dim), dim=-1))
    model.zero_grad(set_to_none=True)
    assert not torch.allclose(method.backward(model, [batch]).loss, before)


def test_a_checkpoint_from_another_method_is_refused():
    model = tiny_model()
    plain = build_method(model, MethodConfig())
    assert plain.state_dict() is None
    with pytest.raises(ValueError, match="another"):
        plain.load_state_dict({"teacher": {}})


# ---- DDP: 2 gloo ranks x 4 rows == 1 process x 8 rows -------------------------------------------

CASES = {
    "siglip": (SIGLIP, MethodConfig(loss="siglip")),
    "moco": ({}, MethodConfig(loss="moco", queue_size=16)),
    "ranking": (RANKING, MethodConfig(ranking_head=True)),
    "distill-target": ({}, MethodConfig(distill="target", queue_size=16)),
}


def _case(name: str, rank: int = 0, world: int = 1) -> dict:
    overrides, config = CASES[name]
    model = tiny_model(**overrides)
    method = build_method(model, config, seed=0, mask_id=103, rank=rank, world_size=world)
    batch = random_inputs(model, 8)
    train_model = model
    if world > 1:
        batch = rows(batch, 4 * rank, 4 * rank + 4)
        train_model = wrap_ddp(model, torch.device("cpu"))
    result = method.backward(train_model, [batch], step=2)
    out = {"loss": result.loss, "grads": gradients(model)}
    state = method.state_dict()
    if state is not None:
        method.after_step(model)
        out["queues"] = {k: v.clone() for k, v in method.state_dict()["teacher"].items() if "queue" in k}
    return out


def _rank_results(rank: int, world: int) -> dict:
    return {name: _case(name, rank, world) for name in CASES}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_on_gloo_ranks(_rank_results, tmp_path_factory.mktemp("ddp-methods"))


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CASES))
def test_two_gloo_ranks_of_4_equal_one_process_of_8(ranks, name):
    single = _case(name)
    assert math.isclose(float((ranks[0][name]["loss"] + ranks[1][name]["loss"]) / 2), float(single["loss"]),
                        abs_tol=1e-5)
    assert single["grads"].keys() == ranks[0][name]["grads"].keys()
    for key, grad in single["grads"].items():
        assert torch.allclose(ranks[0][name]["grads"][key], ranks[1][name]["grads"][key]), key
        assert torch.allclose(ranks[0][name]["grads"][key], grad, atol=1e-6, rtol=1e-4), key
    if "queues" in single:  # every rank enqueues all ranks' keys in rank order: the single process's order
        for key, value in single["queues"].items():
            assert torch.equal(ranks[0][name]["queues"][key], ranks[1][name]["queues"][key]), key
            assert torch.allclose(ranks[0][name]["queues"][key], value, atol=1e-6), key
