"""Image-text retrieval: Recall@K in both directions and their mean (MR), and a whole run
(`evaluate_retrieval`: embed a benchmark, score it block by block, report with chance levels).

Conventions of `retrieval_metrics` (importable as `training.evaluate.retrieval_metrics`;
docs/design.md, "Contracts that must not drift"):

- `similarity` is `[n_images, n_texts]`; `image_of_text[j]` is the index of text j's image, or a
  list of indices when a text has several images (MUGE).
- Image->text is a hit at K when any of the image's texts is in its top K; text->image when any
  of the text's images is.
- Results are percentages under `i2t_R@1`, `i2t_R@5`, `i2t_R@10`, `t2i_R@1`, `t2i_R@5`,
  `t2i_R@10` and `MR`, the mean of the recalls of the directions asked for.

Ties are broken against the query, deterministically: a query's rank is one plus the number of
non-matching candidates whose score is *greater than or equal to* the best score among its
matches. A model that gives every pair the same score therefore gets R@K = 0 (not 100%, which
an optimistic rule would give, nor a value that depends on the order of the gallery).

Large galleries never need the whole matrix: scores are consumed block by block, and for each
query we keep only the best score among its matches and the `max(ks)` best scores among its
non-matches, which is all that Recall@K for K <= max(ks) depends on. Token-wise (FILIP) scores are
computed block by block with `training.loss`'s definition (`token_wise_similarity`, or one of its
two directions when only one is evaluated), so a 30K-image gallery never builds a
30K x 30K x tokens tensor. The bookkeeping runs on the device of the scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from filters.contract.flags import flag
from training.evaluation.datasets.retrieval_set import RetrievalSet
from training.evaluation.embeddings import EmbeddingCache, cache_key, embed_images, embed_texts
from training.evaluation.progress import ThrottledLog, log

DIRECTIONS = ("i2t", "t2i")
RECALL_KS = (1, 5, 10)
TIE_RULE = (
    "pessimistic: a non-matching candidate whose score equals the best matching score ranks "
    "ahead of it"
)

ImageOfText = Sequence[int | Sequence[int]]
#: (image rows, text columns) -> (i2t scores [rows, columns], t2i scores [columns, rows]); a
#: scorer may return None for a direction that is not evaluated.
BlockScorer = Callable[[slice, slice], tuple[torch.Tensor | None, torch.Tensor | None]]


def normalise_image_of_text(image_of_text: ImageOfText, n_images: int) -> list[tuple[int, ...]]:
    """Each text's images as a sorted tuple of distinct indices, checked against `n_images`."""
    normalised: list[tuple[int, ...]] = []
    if isinstance(image_of_text, (torch.Tensor, np.ndarray)):
        image_of_text = image_of_text.tolist()
    for text_index, images in enumerate(image_of_text):
        if isinstance(images, (torch.Tensor, np.ndarray)):
            images = images.tolist()
        if isinstance(images, (int, np.integer)):
            indices = (int(images),)
        else:
            indices = tuple(sorted({int(i) for i in images}))
        if not indices:
            raise ValueError(f"text {text_index} has no image")
        for image_index in indices:
            if not 0 <= image_index < n_images:
                raise ValueError(
                    f"text {text_index} refers to image {image_index}, outside 0..{n_images - 1}"
                )
        normalised.append(indices)
    return normalised


def texts_of_images(images_of_text: list[tuple[int, ...]], n_images: int) -> list[tuple[int, ...]]:
    """The inverse map: for each image, the sorted indices of its texts."""
    texts: list[list[int]] = [[] for _ in range(n_images)]
    for text_index, images in enumerate(images_of_text):
        for image_index in images:
            texts[image_index].append(text_index)
    return [tuple(t) for t in texts]


def _check_directions(directions: Sequence[str]) -> tuple[str, ...]:
    directions = tuple(directions)
    if not directions or any(d not in DIRECTIONS for d in directions) or len(set(directions)) != len(directions):
        raise ValueError(f"directions must be a non-empty subset of {DIRECTIONS}, got {directions}")
    return tuple(d for d in DIRECTIONS if d in directions)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"recall cut-offs must be positive integers, got {ks}")
    return ks


class _RankTracker:
    """Per query: the best score among its matches and the top `depth` scores of non-matches.

    `rank = 1 + #(kept non-match scores >= best match score)` is exact for every rank up to
    `depth` and says "beyond depth" otherwise, which is all Recall@K for K <= depth needs.
    Scores are kept in the dtype they come in (float64 stays float64), so no rounding can make
    two different scores tie.
    """

    def __init__(self, positives: list[tuple[int, ...]], depth: int):
        self.n_queries = len(positives)
        self.depth = depth
        self.best_match: torch.Tensor | None = None  # [n_queries], allocated with the first block
        self.top_non_match: torch.Tensor | None = None  # [n_queries, depth]
        # The matching pairs, sorted by query, so a block finds its own pairs by binary search.
        query_of_pair = [q for q, cands in enumerate(positives) for _ in cands]
        candidate_of_pair = [c for cands in positives for c in cands]
        self._pair_query = np.asarray(query_of_pair, dtype=np.int64)
        self._pair_candidate = np.asarray(candidate_of_pair, dtype=np.int64)

    def update(self, query_start: int, candidate_start: int, scores: torch.Tensor) -> None:
        """Fold in the scores of queries `query_start...` against candidates `candidate_start...`."""
        n_q, n_c = scores.shape
        dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
        # Tracking stays on the scores' device (a GPU keeps its blocks; only ranks come back).
        scores = scores.detach().to(dtype=dtype)
        # One reduction instead of an elementwise isfinite: NaN or +-inf anywhere make the sum non-finite.
        if not torch.isfinite(scores.sum()):
            raise ValueError("similarity scores contain NaN or infinity")
        if self.best_match is None:
            self.best_match = torch.full((self.n_queries,), -math.inf, dtype=dtype, device=scores.device)
            self.top_non_match = torch.full((self.n_queries, self.depth), -math.inf, dtype=dtype, device=scores.device)
        lo, hi = np.searchsorted(self._pair_query, [query_start, query_start + n_q])
        pair_q = self._pair_query[lo:hi] - query_start
        pair_c = self._pair_candidate[lo:hi] - candidate_start
        inside = (pair_c >= 0) & (pair_c < n_c)
        rows = slice(query_start, query_start + n_q)
        non_match = scores
        if inside.any():
            q_index = torch.from_numpy(pair_q[inside]).to(scores.device)
            c_index = torch.from_numpy(pair_c[inside]).to(scores.device)
            best = self.best_match[rows]  # a view: the in-place reduction updates best_match
            best.scatter_reduce_(0, q_index, scores[q_index, c_index].to(best.dtype), reduce="amax")
            non_match = scores.clone(memory_format=torch.contiguous_format)
            non_match[q_index, c_index] = -math.inf
        block_top = non_match.topk(min(self.depth, n_c), dim=1).values.to(self.top_non_match)
        merged = torch.cat([self.top_non_match[rows], block_top], dim=1)
        self.top_non_match[rows] = merged.topk(self.depth, dim=1).values

    def ranks(self) -> torch.Tensor:
        """1-based rank of each query's best match; `depth + 1` means "beyond depth"."""
        if self.best_match is None or torch.isinf(self.best_match).any():
            missing = 0 if self.best_match is None else int(torch.isinf(self.best_match).nonzero()[0])
            raise RuntimeError(f"query {missing} never saw its matching candidate")
        ahead = (self.top_non_match >= self.best_match[:, None]).sum(dim=1)
        return (ahead + 1).cpu()


@dataclass(frozen=True)
class RetrievalResult:
    """Metrics (percentages, docs/design.md keys) and, per direction, the rank of every query."""

    metrics: dict[str, float]
    ranks: dict[str, torch.Tensor]  # "i2t"/"t2i" -> 1-based ranks, max(ks) + 1 = beyond


def recall_from_ranks(ranks: torch.Tensor, k: int) -> float:
    """Percentage of queries whose best match ranks in the top k."""
    if ranks.numel() == 0:
        raise ValueError("no queries")
    return 100.0 * float((ranks <= k).double().mean())


def streaming_retrieval(
    score_block: BlockScorer,
    n_images: int,
    n_texts: int,
    image_of_text: ImageOfText,
    directions: Sequence[str] = DIRECTIONS,
    ks: Sequence[int] = RECALL_KS,
    image_chunk: int = 1024,
    text_chunk: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> RetrievalResult:
    """Recall@K from scores computed block by block, never holding the full matrix.

    `score_block(image_rows, text_columns)` returns the image->text scores `[rows, columns]` and
    the text->image scores `[columns, rows]` of that block (for a single similarity matrix the
    second is the transpose of the first; token-wise similarity has two different ones).
    `progress(done_blocks, total_blocks)` is called after each block.
    """
    directions = _check_directions(directions)
    ks = _check_ks(ks)
    if n_images == 0:
        raise ValueError("the image gallery is empty")
    if n_texts == 0:
        raise ValueError("there are no texts")
    if len(image_of_text) != n_texts:
        raise ValueError(f"image_of_text has {len(image_of_text)} entries for {n_texts} texts")
    if image_chunk < 1 or text_chunk < 1:
        raise ValueError("chunk sizes must be positive")
    images_of_text = normalise_image_of_text(image_of_text, n_images)
    trackers: dict[str, _RankTracker] = {}
    if "i2t" in directions:
        texts_of_image = texts_of_images(images_of_text, n_images)
        without = [i for i, texts in enumerate(texts_of_image) if not texts]
        if without:
            raise ValueError(
                f"{len(without)} image(s) have no text (first: {without[0]}), so image->text "
                "recall is undefined; evaluate text->image only (directions=('t2i',)) or drop them"
            )
        trackers["i2t"] = _RankTracker(texts_of_image, depth=ks[-1])
    if "t2i" in directions:
        trackers["t2i"] = _RankTracker(images_of_text, depth=ks[-1])

    image_starts = range(0, n_images, image_chunk)
    text_starts = range(0, n_texts, text_chunk)
    total, done = len(image_starts) * len(text_starts), 0
    for i0 in image_starts:
        rows = slice(i0, min(i0 + image_chunk, n_images))
        for t0 in text_starts:
            columns = slice(t0, min(t0 + text_chunk, n_texts))
            sim_i2t, sim_t2i = score_block(rows, columns)
            expected = {"i2t": (rows.stop - rows.start, columns.stop - columns.start)}
            expected["t2i"] = expected["i2t"][::-1]
            for direction, block in (("i2t", sim_i2t), ("t2i", sim_t2i)):
                if direction in trackers and (block is None or tuple(block.shape) != expected[direction]):
                    shape = None if block is None else tuple(block.shape)
                    raise ValueError(f"block scorer returned {shape} {direction} scores for a "
                                     f"{expected[direction]} block")
            if "i2t" in trackers:
                trackers["i2t"].update(rows.start, columns.start, sim_i2t)
            if "t2i" in trackers:
                trackers["t2i"].update(columns.start, rows.start, sim_t2i)
            done += 1
            if progress is not None:
                progress(done, total)

    metrics: dict[str, float] = {}
    ranks: dict[str, torch.Tensor] = {}
    for direction in directions:
        ranks[direction] = trackers[direction].ranks()
        for k in ks:
            metrics[f"{direction}_R@{k}"] = recall_from_ranks(ranks[direction], k)
    metrics["MR"] = float(np.mean(list(metrics.values())))
    return RetrievalResult(metrics=metrics, ranks=ranks)


def retrieval_metrics(
    similarity: torch.Tensor | np.ndarray,
    image_of_text: ImageOfText,
    directions: Sequence[str] = DIRECTIONS,
    *,
    similarity_t2i: torch.Tensor | np.ndarray | None = None,
    ks: Sequence[int] = RECALL_KS,
) -> dict[str, float]:
    """Recall@1/5/10 (percent) per direction and their mean `MR` (docs/design.md contract).

    `similarity` is `[n_images, n_texts]`. `image_of_text[j]` is text j's image index, or a list
    of indices (MUGE). For a text->image-only set pass `directions=("t2i",)`; `MR` is then the
    mean of those three. Token-wise similarity is not symmetric: pass its text->image matrix
    `[n_texts, n_images]` as `similarity_t2i` (otherwise `similarity.T` is used). Ties count
    against the query (see the module docstring).
    """
    similarity = torch.as_tensor(similarity)
    if similarity.ndim != 2:
        raise ValueError(f"similarity must be [n_images, n_texts], got shape {tuple(similarity.shape)}")
    t2i = similarity.T if similarity_t2i is None else torch.as_tensor(similarity_t2i)
    if tuple(t2i.shape) != tuple(similarity.shape)[::-1]:
        raise ValueError(f"similarity_t2i must be [n_texts, n_images], got {tuple(t2i.shape)}")

    def score_block(rows: slice, columns: slice) -> tuple[torch.Tensor, torch.Tensor]:
        return similarity[rows, columns], t2i[columns, rows]

    n_images, n_texts = similarity.shape
    return streaming_retrieval(
        score_block, n_images, n_texts, image_of_text, directions, ks
    ).metrics


def _hit_probability(n_candidates: int, n_matches: int, k: int) -> float:
    """P(at least one of `n_matches` is in the top k of a uniformly random ranking)."""
    if k >= n_candidates:
        return 1.0
    miss = 1.0
    # P(no match in top k) = C(n - m, k) / C(n, k) = prod_{i<k} (n - m - i) / (n - i)
    for i in range(k):
        miss *= max(n_candidates - n_matches - i, 0) / (n_candidates - i)
    return 1.0 - miss


def retrieval_chance(
    n_images: int,
    image_of_text: ImageOfText,
    directions: Sequence[str] = DIRECTIONS,
    ks: Sequence[int] = RECALL_KS,
) -> dict[str, float]:
    """Expected metrics (percent) of a model that ranks candidates uniformly at random.

    Exact for each query (hypergeometric: with m matches among n candidates, a random top K
    misses them all with probability C(n-m, K)/C(n, K)), averaged over queries; same keys as
    `retrieval_metrics`.
    """
    directions = _check_directions(directions)
    ks = _check_ks(ks)
    images_of_text = normalise_image_of_text(image_of_text, n_images)
    n_texts = len(images_of_text)
    chance: dict[str, float] = {}
    for direction in directions:
        if direction == "i2t":
            match_counts = [len(t) for t in texts_of_images(images_of_text, n_images)]
            n_candidates = n_texts
        else:
            match_counts = [len(images) for images in images_of_text]
            n_candidates = n_images
        for k in ks:
            chance[f"{direction}_R@{k}"] = 100.0 * float(
                np.mean([_hit_probability(n_candidates, m, k) for m in match_counts])
            )
    chance["MR"] = float(np.mean(list(chance.values())))
    return chance


# --------------------------------------------------------------------------------------------
# Block scorers over precomputed embeddings
# --------------------------------------------------------------------------------------------


def _to_tensor(array: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """A float32 tensor on `device` (embedding caches may be float16 numpy memmaps)."""
    if not isinstance(array, torch.Tensor):
        # A copy of just this block: cache memmaps are read-only, and torch wants writable memory.
        array = torch.tensor(np.asarray(array))
    return array.to(device=device, dtype=torch.float32)


def global_block_scorer(
    image_features: torch.Tensor | np.ndarray,
    text_features: torch.Tensor | np.ndarray,
    device: str | torch.device = "cpu",
) -> BlockScorer:
    """Cosine scores of L2-normalised global features; text->image is the transpose.

    Global features are small (150K texts x 256 floats is 150 MB), so both sides are moved to
    `device` once.
    """
    device = torch.device(device)
    images, texts = _to_tensor(image_features, device), _to_tensor(text_features, device)

    def score_block(rows: slice, columns: slice) -> tuple[torch.Tensor, torch.Tensor]:
        scores = images[rows] @ texts[columns].T
        return scores, scores.T

    return score_block


def token_wise_block_scorer(
    image_tokens: torch.Tensor | np.ndarray,
    text_tokens: torch.Tensor | np.ndarray,
    text_mask: torch.Tensor | np.ndarray,
    device: str | torch.device = "cpu",
    directions: Sequence[str] = DIRECTIONS,
    preload_bytes: int = 4 << 30,
) -> BlockScorer:
    """FILIP token-wise scores for one block at a time, with `training.loss`'s definition.

    The inputs may be numpy memmaps of the embedding cache: only the rows of the current block
    are read and moved to `device`, so memory is bounded by the block, not the gallery. Only the
    directions asked for are computed (each costs a full token-by-token product).
    """
    from training.loss import token_wise_i2t, token_wise_similarity, token_wise_t2i

    directions = _check_directions(directions)
    device = torch.device(device)
    # Blocks run images-outer, texts-inner, so every text block is read once per image block:
    # when the text side fits the budget it is moved to the device once, in its stored dtype.
    if int(np.prod(text_tokens.shape)) * text_tokens.dtype.itemsize <= preload_bytes:
        text_tokens = torch.tensor(np.asarray(text_tokens)) if not isinstance(text_tokens, torch.Tensor) else text_tokens
        text_tokens = text_tokens.to(device)

    def score_block(rows: slice, columns: slice) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        mask = torch.tensor(np.asarray(text_mask[columns])).to(device=device, dtype=torch.bool)
        images, texts = _to_tensor(image_tokens[rows], device), _to_tensor(text_tokens[columns], device)
        with torch.no_grad():
            if directions == DIRECTIONS:
                return token_wise_similarity(images, texts, mask)
            if directions == ("i2t",):
                return token_wise_i2t(images, texts, mask), None
            return None, token_wise_t2i(images, texts, mask)

    return score_block


# --------------------------------------------------------------------------------------------
# A retrieval run: embed, score block by block, report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrievalConfig:
    """Batching and chunking of a retrieval run; none of it changes the numbers."""

    image_batch_size: int = field(default=64, metadata=flag("images per forward pass", name="--batch-size",
                                                                             metavar="BATCH_SIZE"))
    text_batch_size: int = 256
    num_workers: int = field(default=0, metadata=flag("DataLoader processes that decode images",
                                                                       name="--workers", metavar="WORKERS"))
    image_chunk: int = 1024  # gallery rows scored at once (global)
    text_chunk: int = 8192  # text columns scored at once (global)
    token_image_chunk: int = 128  # the same for token-wise scoring, whose blocks cost T x L more
    token_text_chunk: int = 1024
    rerank_top_k: int = field(default=0, metadata=flag(
        "re-rank each query's top K with the checkpoint's ranking head (R2D2: 64 to 128); 0: off"))
    rerank_batch_size: int = 256  # (image, text) pairs per ranking-head forward

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value < (0 if name in ("num_workers", "rerank_top_k") else 1):
                raise ValueError(f"{name} must be positive, got {value}")


def evaluate_retrieval(loaded, dataset: RetrievalSet, directions: Sequence[str] | None = None,
                       config: RetrievalConfig = RetrievalConfig(), cache: EmbeddingCache = EmbeddingCache(None),
                       model_key: str = "") -> dict:
    """Embed (or read from the cache), score block by block, and return the results dict.

    `loaded` is a `training.api.LoadedModel`. Token-wise models are scored with FILIP's
    image->text similarity for image->text and its text->image similarity for text->image.
    """
    started = time.perf_counter()
    model, device = loaded.model, loaded.device
    directions = tuple(directions) if directions else dataset.directions
    token_wise = model.similarity == "token_wise"
    image_key = cache_key(model_key, "images", dataset.gallery.fingerprint(), repr(loaded.transform))
    text_key = cache_key(model_key, "texts", dataset.texts_fingerprint(), str(loaded.tokenizer.context_length),
                         getattr(loaded.tokenizer, "source", ""))

    log(f"{dataset.name}: {len(dataset.gallery)} images, {len(dataset.texts)} texts, directions {directions}")
    image_features = embed_images(model, loaded.transform, dataset.gallery, token_wise, device,
                                  config.image_batch_size, config.num_workers, cache, image_key, ThrottledLog())
    text_features, text_mask = embed_texts(model, loaded.tokenizer, dataset.texts, token_wise, device,
                                           config.text_batch_size, cache, text_key, ThrottledLog())
    if token_wise:
        scorer = token_wise_block_scorer(image_features, text_features, text_mask, device, directions)
        chunks = (config.token_image_chunk, config.token_text_chunk)
    else:
        scorer = global_block_scorer(image_features, text_features, device)
        chunks = (config.image_chunk, config.text_chunk)
    scoring_log = ThrottledLog()
    result = streaming_retrieval(scorer, len(dataset.gallery), len(dataset.texts), dataset.image_of_text,
                                 directions, RECALL_KS, chunks[0], chunks[1],
                                 lambda done, total: scoring_log("scoring blocks", done, total))
    reranked = None
    if config.rerank_top_k:
        reranked = rerank_with_head(loaded, dataset, directions, config, image_features, text_features)
    return {
        "task": "retrieval",
        "dataset": dataset.name,
        "similarity": model.similarity,
        "directions": list(directions),
        "n_images": len(dataset.gallery),
        "n_texts": len(dataset.texts),
        "skipped": dataset.skipped,
        "metrics": result.metrics,
        "chance": retrieval_chance(len(dataset.gallery), dataset.image_of_text, directions, RECALL_KS),
        "tie_rule": TIE_RULE,
        **({"reranked": reranked} if reranked is not None else {}),
        "seconds": round(time.perf_counter() - started, 3),
    }


def rerank_with_head(loaded, dataset: RetrievalSet, directions: Sequence[str], config: RetrievalConfig,
                     image_features, text_features) -> dict:
    """R2D2's re-ranking of the dual encoder's top-k (`training.evaluation.rerank`)."""
    from training.evaluation.rerank import gallery_tower_tokens, rerank_retrieval  # noqa: PLC0415

    model, device = loaded.model, loaded.device
    if model.ranking_head is None or model.similarity != "global":
        raise ValueError("--rerank-top-k needs a global-similarity checkpoint trained with --ranking-head")
    started = time.perf_counter()
    log(f"re-ranking the top {config.rerank_top_k} with the ranking head")
    image_tokens = gallery_tower_tokens(model, loaded.transform, dataset.gallery, device, config.image_batch_size,
                                        config.num_workers)
    input_ids, attention_mask = loaded.tokenizer(list(dataset.texts))
    similarity = _to_tensor(image_features, torch.device("cpu")) @ _to_tensor(text_features, torch.device("cpu")).T
    with torch.no_grad():
        result = rerank_retrieval(model.match_probability, similarity, image_tokens, input_ids, attention_mask,
                                  dataset.image_of_text, directions, config.rerank_top_k, device,
                                  config.rerank_batch_size)
    # The extra cost of re-ranking: the tower's tokens of the gallery and the cross-encoder's pairs.
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
