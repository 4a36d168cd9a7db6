"""Retrieval metrics against hand-computed cases (docs/design.md: training.evaluate.retrieval_metrics),
and a retrieval run whose blocks and batches do not change the numbers."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from tests.support import evaluation_sets as layouts
from training.evaluate import retrieval_metrics
from training.evaluation.datasets import load_retrieval_set
from training.evaluation.retrieval import (
    RetrievalConfig,
    evaluate_retrieval,
    global_block_scorer,
    retrieval_chance,
    streaming_retrieval,
    token_wise_block_scorer,
)

ALL_KEYS = ["i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "MR"]


def staircase(n: int) -> torch.Tensor:
    """Matches score 0.5 on the diagonal; S[i, j] = 1 for j < i, else 0.

    Image i has i non-matching texts above its match (rank i + 1); text j has n - 1 - j
    non-matching images above its match (rank n - j). Both directions see ranks 1..n once.
    """
    s = torch.tril(torch.ones(n, n), diagonal=-1)
    s.fill_diagonal_(0.5)
    return s


def test_keys_are_exactly_the_contract():
    assert list(retrieval_metrics(torch.eye(3), [0, 1, 2])) == ALL_KEYS
    assert list(retrieval_metrics(torch.eye(3), [0, 1, 2], directions=("t2i",))) == ["t2i_R@1", "t2i_R@5", "t2i_R@10", "MR"]


def test_perfect_ranking_scores_100():
    metrics = retrieval_metrics(torch.eye(12) + 0.01 * torch.rand(12, 12), list(range(12)))
    assert metrics == {key: 100.0 for key in ALL_KEYS}


def test_reversed_ranking_scores_0():
    # S[i, j] = (j - i) mod n: every match scores 0, below all n - 1 non-matches.
    n = 12
    s = torch.tensor([[(j - i) % n for j in range(n)] for i in range(n)], dtype=torch.float32)
    assert retrieval_metrics(s, list(range(n))) == {key: 0.0 for key in ALL_KEYS}


def test_staircase_recall_is_k_over_n():
    metrics = retrieval_metrics(staircase(12), list(range(12)))
    for direction in ("i2t", "t2i"):
        assert metrics[f"{direction}_R@1"] == pytest.approx(100 / 12)
        assert metrics[f"{direction}_R@5"] == pytest.approx(500 / 12)
        assert metrics[f"{direction}_R@10"] == pytest.approx(1000 / 12)
    assert metrics["MR"] == pytest.approx((100 + 500 + 1000) / 36)


def test_ties_count_against_the_query():
    # All scores equal: each match has n - 1 tied non-matches ahead of it, rank n.
    metrics = retrieval_metrics(torch.zeros(12, 12), list(range(12)))
    assert metrics == {key: 0.0 for key in ALL_KEYS}
    metrics = retrieval_metrics(torch.zeros(5, 5), list(range(5)))
    assert metrics["i2t_R@1"] == 0.0 and metrics["i2t_R@5"] == 100.0
    # One non-match tied with the match: rank 2, whatever the order of the gallery.
    s = torch.tensor([[0.5, 0.5, 0.1], [0.0, 0.9, 0.2], [0.1, 0.2, 0.8]])
    assert retrieval_metrics(s, [0, 1, 2])["i2t_R@1"] == pytest.approx(200 / 3)
    swapped = s[:, [1, 0, 2]]  # text 0 and text 1 trade places
    assert retrieval_metrics(swapped, [1, 0, 2])["i2t_R@1"] == pytest.approx(200 / 3)


def test_ties_between_matches_do_not_hurt():
    # Image 0 has texts 0 and 1, both scoring exactly its best; no non-match above.
    s = torch.tensor([[0.7, 0.7, 0.1], [0.1, 0.2, 0.9]])
    metrics = retrieval_metrics(s, [0, 0, 1])
    assert metrics["i2t_R@1"] == 100.0


def test_several_captions_per_image():
    # Texts 0, 1 describe image 0; texts 2, 3 describe image 1.
    s = torch.tensor([[0.1, 0.8, 0.9, 0.0],
                      [0.5, 0.6, 0.7, 0.2]])
    metrics = retrieval_metrics(s, [0, 0, 1, 1])
    # image 0: best own caption (text 1, 0.8) behind text 2 (0.9) -> rank 2; image 1: text 2 first -> rank 1
    assert metrics["i2t_R@1"] == 50.0 and metrics["i2t_R@5"] == 100.0
    # text 0: 0.1 vs 0.5 -> rank 2; text 1: 0.8 first; text 2: 0.7 behind 0.9 -> rank 2; text 3: 0.2 first
    assert metrics["t2i_R@1"] == 50.0 and metrics["t2i_R@5"] == 100.0
    assert metrics["MR"] == pytest.approx((50 + 100 + 100) / 3)


def test_muge_several_images_per_text_t2i_only():
    # Text 0 matches images 0 and 2; text 1 matches images 1, 2 and 3 (given as lists).
    t2i = torch.tensor([[0.2, 0.9, 0.5, 0.1],   # best match 0.5 (image 2) behind image 1 -> rank 2
                        [0.1, 0.1, 0.8, 0.3]])  # best match image 2 first -> rank 1
    metrics = retrieval_metrics(t2i.T, [[0, 2], [1, 2, 3]], directions=("t2i",))
    assert metrics == {"t2i_R@1": 50.0, "t2i_R@5": 100.0, "t2i_R@10": 100.0,
                       "MR": pytest.approx(250 / 3)}
    # Image 0 and 3 have one text each, but images without a text make i2t undefined:
    with pytest.raises(ValueError, match="no text"):
        retrieval_metrics(torch.rand(5, 2), [[0, 2], [1, 2, 3]])


def test_token_wise_uses_its_own_text_to_image_matrix():
    i2t = torch.eye(3)
    t2i = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # text 0 prefers image 1
    metrics = retrieval_metrics(i2t, [0, 1, 2], similarity_t2i=t2i)
    assert metrics["i2t_R@1"] == 100.0
    assert metrics["t2i_R@1"] == pytest.approx(200 / 3)


def _reference_recalls(similarity: np.ndarray, image_of_text: list[list[int]], ks=(1, 5, 10)) -> dict:
    """Brute force: sort every row, find the first match, count ties against the query."""
    n_images, n_texts = similarity.shape
    texts_of = [[j for j in range(n_texts) if i in image_of_text[j]] for i in range(n_images)]
    out = {}
    for direction, matrix, matches in (("i2t", similarity, texts_of), ("t2i", similarity.T, image_of_text)):
        ranks = []
        for q, row in enumerate(matrix):
            best = max(row[c] for c in matches[q])
            ranks.append(1 + sum(1 for c, v in enumerate(row) if c not in matches[q] and v >= best))
        for k in ks:
            out[f"{direction}_R@{k}"] = 100.0 * np.mean([r <= k for r in ranks])
    return out


@pytest.mark.parametrize("chunks", [(1, 1), (7, 11), (1000, 1000)])
def test_streaming_blocks_equal_brute_force(chunks):
    rng = np.random.default_rng(0)
    n_images, n_texts = 23, 57
    image_of_text = [[int(rng.integers(n_images))] for _ in range(n_texts)]
    for i in range(n_images):  # every image needs a text for i2t
        image_of_text[i] = [i]
    image_of_text[30] = [3, 4]
    # Coarse values make ties frequent, which is where block merging could go wrong.
    similarity = rng.integers(0, 6, size=(n_images, n_texts)).astype(np.float32)
    expected = _reference_recalls(similarity, image_of_text)
    result = streaming_retrieval(global_block_scorer(torch.eye(n_images), torch.from_numpy(similarity).T),
                                 n_images, n_texts, image_of_text, image_chunk=chunks[0], text_chunk=chunks[1])
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value), key


def test_token_wise_block_scorer_matches_whole_matrix():
    from training.loss import token_wise_similarity

    torch.manual_seed(0)
    image_tokens = torch.nn.functional.normalize(torch.randn(9, 4, 8), dim=-1)
    text_tokens = torch.nn.functional.normalize(torch.randn(13, 5, 8), dim=-1)
    mask = torch.rand(13, 5) > 0.3
    mask[:, 1] = True
    full_i2t, full_t2i = token_wise_similarity(image_tokens, text_tokens, mask)
    scorer = token_wise_block_scorer(image_tokens.numpy().astype(np.float16), text_tokens.numpy(), mask.numpy())
    block_i2t, block_t2i = scorer(slice(2, 7), slice(3, 13))
    assert torch.allclose(block_i2t, full_i2t[2:7, 3:13], atol=2e-3)
    assert torch.allclose(block_t2i, full_t2i[3:13, 2:7], atol=2e-3)
    only_t2i = token_wise_block_scorer(image_tokens, text_tokens, mask, directions=("t2i",))(slice(2, 7), slice(3, 13))
    assert only_t2i[0] is None and torch.allclose(only_t2i[1], full_t2i[3:13, 2:7], atol=1e-5)
    image_of_text = [j % 9 for j in range(13)]
    streamed = streaming_retrieval(token_wise_block_scorer(image_tokens, text_tokens, mask), 9, 13,
                                   image_of_text, image_chunk=4, text_chunk=5).metrics
    assert streamed == retrieval_metrics(full_i2t, image_of_text, similarity_t2i=full_t2i)


def test_chance_levels_by_hand():
    chance = retrieval_chance(10, list(range(10)))
    assert chance["i2t_R@1"] == pytest.approx(10.0) and chance["t2i_R@5"] == pytest.approx(50.0)
    assert chance["t2i_R@10"] == pytest.approx(100.0)
    # 4 images x 5 captions: image->text hits at K=5 unless all 5 picks avoid its 5 captions.
    chance = retrieval_chance(4, [i // 5 for i in range(20)])
    assert chance["i2t_R@1"] == pytest.approx(25.0)
    assert chance["i2t_R@5"] == pytest.approx(100 * (1 - 3003 / 15504))  # C(15,5)/C(20,5)
    assert chance["t2i_R@1"] == pytest.approx(25.0)


def test_chance_matches_random_scores_on_average():
    rng = np.random.default_rng(1)
    image_of_text = [[i % 6] for i in range(14)] + [[0, 1, 2]]
    trials = [retrieval_metrics(rng.random((6, 15)), image_of_text) for _ in range(1500)]
    chance = retrieval_chance(6, image_of_text)
    for key in ALL_KEYS:
        assert np.mean([t[key] for t in trials]) == pytest.approx(chance[key], abs=1.5), key


@pytest.mark.parametrize(
    "similarity, image_of_text, message",
    [
        (torch.eye(3), [0, 1], "2 entries for 3 texts"),
        (torch.eye(3), [0, 1, 3], "outside"),
        (torch.zeros(0, 3), [0, 1, 2], "gallery is empty"),
        (torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), [0, 1], "NaN"),
        (torch.eye(2), [[], 1], "no image"),
    ],
)
def test_bad_input_is_a_clear_error(similarity, image_of_text, message):
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(similarity, image_of_text)


def test_bad_directions():
    for directions in [(), ("x2y",), ("t2i", "t2i")]:
        with pytest.raises(ValueError, match="directions"):
            retrieval_metrics(torch.eye(2), [0, 1], directions=directions)


def test_permuting_the_gallery_does_not_change_metrics():
    rng = np.random.default_rng(2)
    s = rng.integers(0, 3, size=(8, 16)).astype(np.float32)
    image_of_text = [j % 8 for j in range(16)]
    base = retrieval_metrics(s, image_of_text)
    for perm in itertools.islice(itertools.permutations(range(8)), 0, 200, 37):
        inverse = np.argsort(perm)
        permuted = retrieval_metrics(s[list(perm)], [int(inverse[i]) for i in image_of_text])
        assert permuted == pytest.approx(base)


def _write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def test_agrees_with_chinese_clip_official_scorer(tmp_path):
    """Side by side with cn-clip's eval/evaluation.py (text->image) and evaluation_tr.py
    (image->text), which score top-10 prediction files; continuous scores, so no ties."""
    from cn_clip.eval import evaluation, evaluation_tr

    rng = np.random.default_rng(3)
    n_images, n_texts = 40, 90
    image_of_text = [[j % n_images] for j in range(n_texts)]  # 2-3 captions per image
    for j in range(0, n_texts, 7):  # and some texts with several images, as in MUGE
        image_of_text[j] = sorted({j % n_images, int(rng.integers(n_images))})
    base = rng.normal(size=(n_images, n_texts))
    for j, images in enumerate(image_of_text):
        base[images, j] += 1.5  # better than chance, so R@1 is not near 0
    ours = retrieval_metrics(base, image_of_text)

    _write_jsonl(tmp_path / "t2i_gold.jsonl", [{"text_id": j, "image_ids": images} for j, images in enumerate(image_of_text)])
    _write_jsonl(tmp_path / "t2i_pred.jsonl", [{"text_id": j, "image_ids": [int(i) for i in np.argsort(-base[:, j])[:10]]}
                                               for j in range(n_texts)])
    mean, r1, r5, r10 = evaluation.compute_score(str(tmp_path / "t2i_gold.jsonl"), str(tmp_path / "t2i_pred.jsonl"))
    assert (ours["t2i_R@1"], ours["t2i_R@5"], ours["t2i_R@10"]) == pytest.approx((r1, r5, r10))

    texts_of = {i: [j for j, images in enumerate(image_of_text) if i in images] for i in range(n_images)}
    _write_jsonl(tmp_path / "i2t_gold.jsonl", [{"image_id": i, "text_ids": t} for i, t in texts_of.items()])
    _write_jsonl(tmp_path / "i2t_pred.jsonl", [{"image_id": i, "text_ids": [int(j) for j in np.argsort(-base[i])[:10]]}
                                               for i in range(n_images)])
    mean, r1, r5, r10 = evaluation_tr.compute_score(str(tmp_path / "i2t_gold.jsonl"), str(tmp_path / "i2t_pred.jsonl"))
    assert (ours["i2t_R@1"], ours["i2t_R@5"], ours["i2t_R@10"]) == pytest.approx((r1, r5, r10))
    assert 0 < ours["t2i_R@1"] < 100 and 0 < ours["i2t_R@1"] < 100


def test_image_of_text_may_be_a_tensor_or_an_array():
    similarity = torch.tensor([[0.9, 0.1, 0.8], [0.2, 0.7, 0.1]])
    as_list = retrieval_metrics(similarity, [0, 1, 0])
    assert retrieval_metrics(similarity, torch.tensor([0, 1, 0])) == as_list
    assert retrieval_metrics(similarity, np.array([0, 1, 0])) == as_list
    assert retrieval_metrics(similarity, [torch.tensor(0), torch.tensor(1), np.int64(0)]) == as_list


@pytest.mark.parametrize("similarity", ["global", "token_wise"])
def test_small_blocks_give_the_same_numbers(tmp_path, loaded, similarity):
    layouts.write_tsv_jsonl(str(tmp_path / "data"), n_images=7, captions_per_image=2)
    dataset = load_retrieval_set("tsv", str(tmp_path / "data"))
    tiny_blocks = RetrievalConfig(image_batch_size=3, text_batch_size=4, image_chunk=2, text_chunk=3,
                                  token_image_chunk=2, token_text_chunk=3)
    small = evaluate_retrieval(loaded[similarity], dataset, config=tiny_blocks)
    whole = evaluate_retrieval(loaded[similarity], dataset)
    assert small["metrics"] == pytest.approx(whole["metrics"])
