"""clip_loss, token_wise_similarity and ContrastiveLoss against naive loop implementations."""

import math

import pytest
import torch
import torch.nn.functional as F

from training.loss import ContrastiveLoss, clip_loss, gather_features, token_wise_similarity


def reference_clip_loss(image, text, scale):
    n = image.shape[0]
    i2t = t2i = 0.0
    for i in range(n):
        logits = torch.stack([scale * (image[i] * text[j]).sum() for j in range(n)])
        i2t = i2t - torch.log_softmax(logits, 0)[i]
        logits = torch.stack([scale * (text[i] * image[j]).sum() for j in range(n)])
        t2i = t2i - torch.log_softmax(logits, 0)[i]
    return (i2t + t2i) / (2 * n)


def reference_token_wise(image_tokens, text_tokens, mask):
    n_img, n_txt = image_tokens.shape[0], text_tokens.shape[0]
    i2t = torch.zeros(n_img, n_txt, dtype=image_tokens.dtype)
    t2i = torch.zeros(n_txt, n_img, dtype=image_tokens.dtype)
    for i in range(n_img):
        for j in range(n_txt):
            valid = [l for l in range(text_tokens.shape[1]) if mask[j, l]]
            per_image_token = [max((image_tokens[i, t] * text_tokens[j, l]).sum() for l in valid)
                               for t in range(image_tokens.shape[1])]
            i2t[i, j] = sum(per_image_token) / len(per_image_token)
            per_text_token = [max((image_tokens[i, t] * text_tokens[j, l]).sum() for t in range(image_tokens.shape[1]))
                              for l in valid]
            t2i[j, i] = sum(per_text_token) / len(per_text_token)
    return i2t, t2i


def _features(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)


def _tokens(n, t, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, t, d, generator=g, dtype=torch.float64), dim=-1)


def _mask(n, length, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (n,), generator=g)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    mask[:, 0] = False  # [CLS] takes no part
    return mask


def test_clip_loss_matches_the_loop_reference_in_value_and_gradient():
    image = _features(6, 8, 0).requires_grad_()
    text = _features(6, 8, 1).requires_grad_()
    scale = torch.tensor(14.0, dtype=torch.float64, requires_grad=True)
    ours = clip_loss(image, text, scale)
    ours.backward()
    grads = image.grad.clone(), text.grad.clone(), scale.grad.clone()
    image.grad = text.grad = scale.grad = None
    ref = reference_clip_loss(image, text, scale)
    ref.backward()
    assert torch.allclose(ours.double(), ref, atol=1e-10)
    for a, b in zip(grads, (image.grad, text.grad, scale.grad)):
        assert torch.allclose(a, b, atol=1e-10)


def test_clip_loss_is_low_for_matching_pairs_and_chance_for_identical_features():
    x = _features(5, 8, 2)
    assert clip_loss(x, x, 100.0) < 0.01
    same = x[:1].expand(5, 8)
    assert math.isclose(clip_loss(same, same, 10.0).item(), math.log(5), rel_tol=1e-6)


def test_token_wise_similarity_matches_the_loop_reference():
    image = _tokens(3, 5, 4, 3).requires_grad_()
    text = _tokens(4, 6, 4, 4).requires_grad_()
    mask = _mask(4, 6, 5)
    i2t, t2i = token_wise_similarity(image, text, mask)
    (i2t.sum() * 2 + (t2i * torch.arange(12, dtype=t2i.dtype).reshape(4, 3)).sum()).backward()
    grads = image.grad.clone(), text.grad.clone()
    image.grad = text.grad = None
    ref_i2t, ref_t2i = reference_token_wise(image, text, mask)
    (ref_i2t.sum() * 2 + (ref_t2i * torch.arange(12, dtype=t2i.dtype).reshape(4, 3)).sum()).backward()
    assert i2t.shape == (3, 4) and t2i.shape == (4, 3)
    assert torch.allclose(i2t, ref_i2t, atol=1e-10)
    assert torch.allclose(t2i, ref_t2i, atol=1e-10)
    assert torch.allclose(grads[0], image.grad, atol=1e-10)
    assert torch.allclose(grads[1], text.grad, atol=1e-10)


def test_masked_text_tokens_take_no_part_in_either_direction():
    image, text, mask = _tokens(3, 5, 4, 6), _tokens(4, 6, 4, 7), _mask(4, 6, 8)
    before = token_wise_similarity(image, text, mask)
    # what sits under the mask (CLS, padding) is replaced with a token that would win every max
    changed = text.clone()
    changed[~mask] = image[0, 0]
    after = token_wise_similarity(image, changed, mask)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_non_finite_masked_tokens_reach_neither_scores_nor_gradients(poison):
    image, text, mask = _tokens(3, 5, 4, 6), _tokens(4, 6, 4, 7), _mask(4, 6, 8)
    before = token_wise_similarity(image, text, mask)
    poisoned = text.clone()
    poisoned[~mask] = poison
    image = image.clone().requires_grad_(True)
    poisoned.requires_grad_(True)
    after = token_wise_similarity(image, poisoned, mask)
    assert torch.allclose(before[0], after[0]) and torch.allclose(before[1], after[1])
    (after[0].sum() + after[1].sum()).backward()
    assert torch.isfinite(image.grad).all() and torch.isfinite(poisoned.grad).all()


def test_chunked_token_wise_equals_one_block():
    image, text, mask = _tokens(5, 7, 4, 9), _tokens(6, 5, 4, 10), _mask(6, 5, 11)
    whole = token_wise_similarity(image, text, mask, chunk_elements=10**9)
    chunked = token_wise_similarity(image, text, mask, chunk_elements=1)  # one row at a time
    assert torch.allclose(whole[0], chunked[0]) and torch.allclose(whole[1], chunked[1])


def test_contrastive_loss_of_one_rank_is_clip_loss_and_token_wise_infonce():
    image, text = _features(6, 8, 12), _features(6, 8, 13)
    loss, logits = ContrastiveLoss("global")(image, text, torch.tensor(10.0, dtype=torch.float64))
    assert torch.allclose(loss.double(), clip_loss(image, text, 10.0).double())
    assert logits.shape == (6, 6)
    it, tt, mask = _tokens(4, 5, 8, 14), _tokens(4, 6, 8, 15), _mask(4, 6, 16)
    loss, _ = ContrastiveLoss("token_wise")(it, tt, torch.tensor(10.0, dtype=torch.float64), mask)
    i2t, t2i = token_wise_similarity(it, tt, mask)
    labels = torch.arange(4)
    expected = (F.cross_entropy(10 * i2t, labels) + F.cross_entropy(10 * t2i, labels)) / 2
    assert torch.allclose(loss.double(), expected.double())


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        clip_loss(torch.zeros(3, 4), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="text_mask"):
        token_wise_similarity(torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="similarity"):
        ContrastiveLoss("cosine")


def test_gather_is_the_identity_on_one_rank():
    x = torch.randn(3, 4)
    assert gather_features(x, 1) is x
