"""R2D2's ranking stage: the head's shapes, hard negatives, the weighted loss, re-ranked retrieval."""

import pytest
import torch

from training.evaluation.retrieval import retrieval_metrics
from training.ranking import CLASS_WEIGHTS, RankingHead, rerank, sample_hard_negatives


def test_the_head_gives_two_logits_per_pair_and_ignores_padding():
    torch.manual_seed(0)
    head = RankingHead(width=16, image_width=8, layers=2, heads=2).eval()
    image, text = torch.randn(3, 5, 8), torch.randn(3, 4, 16)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    logits = head(image, text, mask)
    assert logits.shape == (3, 2)
    changed = text.clone()
    changed[0, 2:] = 1e3  # padding of pair 0 holds anything: its logits must not move
    assert torch.allclose(head(image, changed, mask)[0], logits[0], atol=1e-5)


def test_hard_negatives_never_draw_a_positive_and_follow_the_similarity():
    similarity = torch.tensor([[5.0, 4.0, -9.0], [0.0, 5.0, 4.0], [4.0, -9.0, 5.0]])
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_hard_negatives(similarity, 1.0, generator=generator) for _ in range(300)])
    assert not (draws == torch.arange(3)).any()
    assert (draws[:, 0] == 1).float().mean() > 0.95  # column 1 is far likelier than column 2
    with pytest.raises(ValueError):
        sample_hard_negatives(similarity, 1.0, positives=torch.ones(3, 3, dtype=torch.bool))


def test_the_classes_are_weighted_one_to_two():
    assert CLASS_WEIGHTS == (1.0, 2.0)


def _scrambled_case():
    # 4 images, 4 texts; the dual encoder ranks text (i + 1) % 4 first for image i, the true text second.
    similarity = torch.full((4, 4), 0.1)
    for i in range(4):
        similarity[i, (i + 1) % 4] = 0.9
        similarity[i, i] = 0.8
    return similarity


def test_reranking_with_a_head_that_knows_the_pairs_lifts_r_at_1_to_100():
    similarity = _scrambled_case()
    before = retrieval_metrics(similarity, list(range(4)))
    assert before["i2t_R@1"] == 0.0

    def oracle(queries, candidates):
        return (queries == candidates).float()

    scores, pairs = rerank(similarity, [oracle], k=2)
    assert pairs == 8
    after = retrieval_metrics(scores, list(range(4)), directions=("i2t",))
    assert after["i2t_R@1"] == 100.0


def test_the_top_k_bound_is_respected():
    similarity = _scrambled_case()
    seen = []

    def spy(queries, candidates):
        seen.append((queries.clone(), candidates.clone()))
        return torch.ones(len(queries))

    scores, pairs = rerank(similarity, [spy, spy], k=1)
    assert pairs == 4 and all(len(q) == 4 for q, _ in seen)
    for i in range(4):
        kept = int(similarity[i].argmax())
        rest = [j for j in range(4) if j != kept]
        assert all(scores[i, kept] > scores[i, j] for j in rest)  # outside the top-1: ranked last ...
        order = sorted(rest, key=lambda j: -float(scores[i, j]))
        assert order == sorted(rest, key=lambda j: -float(similarity[i, j]))  # ... in the encoder's order
    assert torch.equal(scores.argmax(dim=1), torch.tensor([1, 2, 3, 0]))
