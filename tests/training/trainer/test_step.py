"""GradCache accumulation: the accumulated batch keeps all its negatives, gradients are exact."""

import pytest
import torch

from tests.support.training import gradients, random_inputs, rows, tiny_model
from training.loss import ContrastiveLoss
from training.trainer.step import contrastive_backward


@pytest.mark.parametrize("similarity", ["global", "token_wise"])
def test_two_micro_batches_of_4_give_the_gradient_of_one_batch_of_8(similarity):
    model = tiny_model(similarity=similarity)
    batch = random_inputs(model, 8)
    loss_fn = ContrastiveLoss(similarity)
    whole = contrastive_backward(model, loss_fn, [batch])
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    accumulated = contrastive_backward(model, loss_fn, [rows(batch, 0, 4), rows(batch, 4, 8)])
    got = gradients(model)
    assert torch.allclose(whole.loss, accumulated.loss, atol=1e-6)
    assert got.keys() == expected.keys() and "logit_scale" in got
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-6, rtol=1e-4), name


def test_naive_accumulation_would_differ():
    """The check above can fail: scoring micro-batches alone gives another gradient."""
    model = tiny_model()
    batch = random_inputs(model, 8)
    loss_fn = ContrastiveLoss("global")
    contrastive_backward(model, loss_fn, [batch])
    expected = gradients(model)["text_proj.weight"]
    model.zero_grad(set_to_none=True)
    for half in (rows(batch, 0, 4), rows(batch, 4, 8)):
        contrastive_backward(model, loss_fn, [half])
    assert not torch.allclose(gradients(model)["text_proj.weight"], expected, atol=1e-4)


def test_dropout_draws_the_same_masks_in_both_passes():
    """With dropout on, the gradient equals one pass that embeds both micro-batches in turn."""
    model = tiny_model(text_dropout=0.3)
    batch = random_inputs(model, 8)
    loss_fn = ContrastiveLoss("global")
    first, second = rows(batch, 0, 4), rows(batch, 4, 8)
    torch.manual_seed(123)
    image_a, text_a, _, scale = model(*first.inputs())
    image_b, text_b, _, _ = model(*second.inputs())
    loss, _ = loss_fn(torch.cat([image_a, image_b]), torch.cat([text_a, text_b]), scale)
    loss.backward()
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    result = contrastive_backward(model, loss_fn, [first, second])
    assert torch.allclose(result.loss, loss.detach(), atol=1e-6)
    for name, grad in gradients(model).items():
        assert torch.allclose(grad, expected[name], atol=1e-6, rtol=1e-4), name


def test_gradient_checkpointing_of_the_text_tower_gives_the_same_gradients():
    plain = tiny_model()
    checkpointed = tiny_model(grad_checkpointing=True)
    assert checkpointed.text_tower.is_activation_checkpointing
    batch = random_inputs(plain, 8)
    contrastive_backward(plain, ContrastiveLoss("global"), [batch])
    contrastive_backward(checkpointed, ContrastiveLoss("global"), [batch])
    expected = gradients(plain)
    for name, grad in gradients(checkpointed).items():
        assert torch.allclose(grad, expected[name], atol=1e-6, rtol=1e-4), name


def test_bf16_autocast_runs_and_stays_close_to_fp32():
    model = tiny_model()
    batch = random_inputs(model, 8)
    fp32 = contrastive_backward(model, ContrastiveLoss("global"), [batch]).loss
    bf16 = contrastive_backward(model, ContrastiveLoss("global"), [batch],
                                lambda: torch.autocast("cpu", dtype=torch.bfloat16)).loss
    assert bf16.dtype == torch.float32 and abs(bf16.item() - fp32.item()) < 0.05
