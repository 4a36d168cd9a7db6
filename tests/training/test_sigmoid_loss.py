"""SigLIP's sigmoid loss against a loop implementation, and its DDP ring against one process."""

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from training.sigmoid_loss import INIT_BIAS, INIT_LOG_SCALE, SigmoidLoss, sigmoid_loss


def _features(n: int, dim: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(n, dim, generator=generator, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(n, dim, generator=generator, dtype=torch.float64), dim=-1)
    return image, text


def _loop_loss(image, text, scale, bias):
    total = 0.0
    for i in range(image.shape[0]):
        for j in range(text.shape[0]):
            z = 1.0 if i == j else -1.0
            total = total - torch.log(torch.sigmoid(z * (scale * image[i] @ text[j] + bias)))
    return total / image.shape[0]


def test_the_initialisation_is_the_papers():
    assert math.exp(INIT_LOG_SCALE) == pytest.approx(10.0)
    assert INIT_BIAS == -10.0


def test_value_and_gradients_equal_the_loop_implementation():
    image, text = _features(5)
    scale = torch.tensor(7.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    inputs = [image.clone().requires_grad_(), text.clone().requires_grad_()]
    ours = sigmoid_loss(*inputs, scale, bias)
    ours_grads = torch.autograd.grad(ours, [*inputs, scale, bias])
    reference_inputs = [image.clone().requires_grad_(), text.clone().requires_grad_()]
    reference = _loop_loss(*reference_inputs, scale, bias)
    reference_grads = torch.autograd.grad(reference, [*reference_inputs, scale, bias])
    assert ours.item() == pytest.approx(reference.item(), rel=1e-10)
    for a, b in zip(ours_grads, reference_grads):
        assert torch.allclose(a, b, atol=1e-10)


def test_negatives_only_give_every_pair_label_minus_one():
    image, text = _features(3)
    expected = -F.logsigmoid(-(2.0 * image @ text.t() - 1.0)).sum() / 3
    assert sigmoid_loss(image, text, 2.0, -1.0, positives=False).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError):
        sigmoid_loss(image, text[:2], 2.0, -1.0)


def _rank_main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        image, text = _features(8, seed=3)
        per_rank = 8 // world
        local_image = image[rank * per_rank:(rank + 1) * per_rank].clone().requires_grad_()
        local_text = text[rank * per_rank:(rank + 1) * per_rank].clone().requires_grad_()
        scale = torch.tensor(9.0, dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
        loss, _ = SigmoidLoss(rank, world)(local_image, local_text, scale, bias)
        loss.backward()
        torch.save({"loss": loss.detach(), "image": local_image.grad, "text": local_text.grad,
                    "scale": scale.grad, "bias": bias.grad}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.e2e
@pytest.mark.parametrize("world", [2, 4])
def test_the_ring_over_gloo_ranks_equals_one_process_on_the_whole_batch(tmp_path, world):
    mp.spawn(_rank_main, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    image, text = _features(8, seed=3)
    image.requires_grad_()
    text.requires_grad_()
    scale = torch.tensor(9.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    whole = sigmoid_loss(image, text, scale, bias)
    whole.backward()
    # DDP averages the ranks' losses and gradients: the mean must be the single-process value.
    assert torch.stack([r["loss"] for r in ranks]).mean().item() == pytest.approx(whole.item(), rel=1e-10)
    assert torch.allclose(torch.cat([r["image"] for r in ranks]) / world, image.grad, atol=1e-10)
    assert torch.allclose(torch.cat([r["text"] for r in ranks]) / world, text.grad, atol=1e-10)
    assert sum(r["scale"] for r in ranks).item() / world == pytest.approx(scale.grad.item(), rel=1e-9)
    assert sum(r["bias"] for r in ranks).item() / world == pytest.approx(bias.grad.item(), rel=1e-9)
