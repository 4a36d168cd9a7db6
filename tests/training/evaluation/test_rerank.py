"""R2D2's re-ranked retrieval: a head that knows the true pairs lifts R@1 to 100 within the top-k,
and never reaches beyond it."""

import pytest
import torch

from training.evaluation.rerank import rerank_retrieval

N = 6


def _case():
    """Image i holds the value i in its tokens and text j the id 100 + j; text j belongs to image j.
    The dual encoder ranks every true pair second (its neighbour first)."""
    image_tokens = torch.arange(N, dtype=torch.float32)[:, None, None].expand(N, 2, 3).clone()
    input_ids = (100 + torch.arange(N))[:, None].expand(N, 4).clone()
    attention_mask = torch.ones(N, 4, dtype=torch.long)
    similarity = torch.zeros(N, N)
    for i in range(N):
        similarity[i, i] = 0.8
        similarity[i, (i + 1) % N] = 0.9  # and so text i + 1's best image is image i
    return similarity, image_tokens, input_ids, attention_mask


def _oracle(seen: list):
    def match_probability(image_tokens, input_ids, attention_mask):
        seen.append(len(image_tokens))
        return (image_tokens[:, 0, 0].long() == input_ids[:, 0] - 100).float()

    return match_probability


def test_a_head_that_knows_the_pairs_gives_r1_of_100_and_scores_queries_times_k_pairs():
    similarity, *inputs = _case()
    seen = []
    result = rerank_retrieval(_oracle(seen), similarity, *inputs, list(range(N)), ("i2t", "t2i"), top_k=2,
                              batch_size=5)
    assert result["metrics"]["i2t_R@1"] == 100.0 and result["metrics"]["t2i_R@1"] == 100.0
    assert result["pairs_scored"] == 2 * N * 2 == sum(seen) and max(seen) <= 5
    assert result["top_k"] == 2 and result["seconds"] >= 0


def test_a_true_pair_outside_the_top_k_stays_below_every_re_ranked_candidate():
    similarity, *inputs = _case()
    similarity[0, 0] = -0.5  # image 0's text now ranks last for the dual encoder: outside a top 2
    result = rerank_retrieval(_oracle([]), similarity, *inputs, list(range(N)), ("i2t",), top_k=2)
    # the five other images are lifted to rank 1; image 0's text is not looked at and ranks past 2
    assert result["metrics"]["i2t_R@1"] == pytest.approx(100.0 * (N - 1) / N)
    assert result["metrics"]["i2t_R@5"] == pytest.approx(100.0 * (N - 1) / N)
    assert result["pairs_scored"] == N * 2
    # with every candidate re-ranked, its probability lifts it to second place (0.9 similarity stays ahead)
    whole = rerank_retrieval(_oracle([]), similarity, *inputs, list(range(N)), ("i2t",), top_k=N)
    assert whole["metrics"]["i2t_R@5"] == 100.0 and whole["pairs_scored"] == N * N
