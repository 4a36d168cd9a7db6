"""BriVL's momentum queues: the loss against a loop implementation, the EMA, the queue's order."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.momentum import KeyQueue, MomentumCopy, momentum_contrastive_loss


def _unit(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=-1)


def _loop_loss(image, text, image_keys, text_keys, image_queue, text_queue, t):
    total = 0.0
    for direction in ((image, text_keys, text_queue), (text, image_keys, image_queue)):
        query, keys, queue = direction
        for i in range(query.shape[0]):
            scores = [query[i] @ keys[i] / t] + [query[i] @ queue[j] / t for j in range(queue.shape[0])]
            scores = torch.stack(scores)
            total = total - (scores[0] - torch.logsumexp(scores, dim=0)) / query.shape[0]
    return total


def test_loss_and_gradients_equal_the_loop_implementation():
    image, text = _unit(4, 5, 0).requires_grad_(), _unit(4, 5, 1).requires_grad_()
    keys = [_unit(4, 5, 2), _unit(4, 5, 3), _unit(7, 5, 4), _unit(7, 5, 5)]
    ours = momentum_contrastive_loss(image, text, *keys, temperature=0.07)
    grads = torch.autograd.grad(ours, [image, text])
    image2, text2 = image.detach().clone().requires_grad_(), text.detach().clone().requires_grad_()
    reference = _loop_loss(image2, text2, *keys, 0.07)
    reference_grads = torch.autograd.grad(reference, [image2, text2])
    assert ours.item() == pytest.approx(reference.item(), rel=1e-6)
    for a, b in zip(grads, reference_grads):
        assert torch.allclose(a.double(), b, atol=1e-6)


def test_the_copy_moves_towards_the_trained_weights_and_is_never_trained():
    online = nn.Linear(3, 2)
    ema = MomentumCopy({"proj": online}, momentum=0.9)
    before = ema.copies["proj"].weight.clone()
    with torch.no_grad():
        online.weight.add_(1.0)
    ema.update({"proj": online})
    assert torch.allclose(ema.copies["proj"].weight, 0.9 * before + 0.1 * online.weight)
    assert not any(p.requires_grad for p in ema.parameters())
    with pytest.raises(ValueError):
        MomentumCopy({"proj": online}, momentum=1.0)


def test_the_queue_overwrites_the_oldest_keys_in_rank_order():
    queue = KeyQueue(6, 2)
    first = torch.arange(8.0).reshape(4, 2)  # rank 0's two keys, then rank 1's two
    queue.enqueue(first)
    assert torch.equal(queue.keys[:4], first) and int(queue.pointer) == 4
    second = -torch.arange(1.0, 9.0).reshape(4, 2)
    queue.enqueue(second)
    assert torch.equal(queue.keys[4:], second[:2]) and torch.equal(queue.keys[:2], second[2:])
    assert int(queue.pointer) == 2
    state = queue.state_dict()
    restored = KeyQueue(6, 2)
    restored.load_state_dict(state)
    assert torch.equal(restored.keys, queue.keys) and int(restored.pointer) == 2


def test_the_queue_size_must_be_a_multiple_of_the_global_batch():
    KeyQueue(96, 4).check_batch(32)
    with pytest.raises(ValueError, match="multiple"):
        KeyQueue(100, 4).check_batch(32)
