"""DDP equivalence: 2 gloo processes x batch 4 give the loss and gradients of 1 process x batch 8.

The features of both ranks are gathered with the autograd-aware all-gather; each rank scores its
own rows against all columns. The mean of the ranks' losses must equal the single-process loss and
DDP's averaged gradients the single-process gradients. Both ranks run every case in one spawn
(starting processes is the slow part).
"""


import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from tests.support.training import gradients, random_inputs, rows, run_on_gloo_ranks, tiny_model
from training.loss import ContrastiveLoss
from training.trainer.distributed import wrap_ddp
from training.trainer.step import contrastive_backward

CASES = [("global", 1), ("token_wise", 1), ("global", 2), ("token_wise", 2)]


def _ddp_case(rank: int, world: int, similarity: str, accum: int) -> dict:
    model = tiny_model(similarity=similarity)
    local = rows(random_inputs(model, 8), 4 * rank, 4 * rank + 4)
    ddp = wrap_ddp(model, torch.device("cpu"))
    micro = [local] if accum == 1 else [rows(local, 0, 2), rows(local, 2, 4)]
    result = contrastive_backward(ddp, ContrastiveLoss(similarity, rank, world), micro)
    return {"loss": result.loss, "grads": gradients(model)}


def _plain_gather_case(rank: int, world: int) -> dict:
    """The wrong way: a gather that keeps no gradient for the other ranks' features."""
    model = tiny_model()
    local = rows(random_inputs(model, 8), 4 * rank, 4 * rank + 4)
    ddp = wrap_ddp(model, torch.device("cpu"))
    image, text, _, scale = ddp(*local.inputs())
    parts_i = [torch.zeros_like(image) for _ in range(world)]
    parts_t = [torch.zeros_like(text) for _ in range(world)]
    dist.all_gather(parts_i, image.detach())
    dist.all_gather(parts_t, text.detach())
    parts_i[rank], parts_t[rank] = image, text
    labels = torch.arange(4) + 4 * rank
    loss = (F.cross_entropy(scale * image @ torch.cat(parts_t).t(), labels)
            + F.cross_entropy(scale * text @ torch.cat(parts_i).t(), labels)) / 2
    loss.backward()
    return {"loss": loss.detach(), "grads": gradients(model)}


def _rank_results(rank: int, world: int) -> dict:
    results = {case: _ddp_case(rank, world, *case) for case in CASES}
    results["plain_gather"] = _plain_gather_case(rank, world)
    return results


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_on_gloo_ranks(_rank_results, tmp_path_factory.mktemp("ddp"))


def _single_process(similarity):
    model = tiny_model(similarity=similarity)
    result = contrastive_backward(model, ContrastiveLoss(similarity), [random_inputs(model, 8)])
    return result.loss, gradients(model)


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=[f"{s}-accum{a}" for s, a in CASES])
def test_two_gloo_ranks_of_4_equal_one_process_of_8(ranks, case):
    similarity, _ = case
    loss, grads = _single_process(similarity)
    assert torch.allclose((ranks[0][case]["loss"] + ranks[1][case]["loss"]) / 2, loss, atol=1e-6)
    assert grads.keys() == ranks[0][case]["grads"].keys()
    for name, grad in grads.items():
        # DDP has averaged the gradients: both ranks hold the same, equal to one process's
        assert torch.allclose(ranks[0][case]["grads"][name], ranks[1][case]["grads"][name]), name
        assert torch.allclose(ranks[0][case]["grads"][name], grad, atol=1e-6, rtol=1e-4), name


@pytest.mark.e2e
def test_a_gather_without_gradients_gives_a_wrong_gradient(ranks):
    """What the autograd-aware gather is for: the plain gather's gradient is off."""
    _, grads = _single_process("global")
    off = ranks[0]["plain_gather"]["grads"]["text_proj.weight"]
    assert not torch.allclose(off, grads["text_proj.weight"], rtol=0.05)

