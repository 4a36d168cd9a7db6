"""R2D2's re-ranked retrieval: the dual encoder's top-k of every query, re-scored by the ranking head.

`python -m training.evaluate retrieval --rerank-top-k K` runs this after the dual-encoder metrics:
for each query (an image for image->text, a text for text->image) the K best candidates by cosine
similarity are scored by the cross-encoder, their score becomes match probability + similarity, and
every other candidate ranks below them (`training.ranking.rerank`). It reports the metrics, how
many pairs the cross-encoder scored (queries x K per direction) and the seconds it took.

The head reads the locked tower's patch tokens, so the gallery's tokens are held in memory
([images, tokens, tower width] float32) and the similarity matrix too: fine for benchmark test
sets of a few thousand images, not for a 30K-image gallery against 150K captions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader

from training.evaluation.embeddings import TransformedImages, evaluation_mode
from training.evaluation.retrieval import ImageOfText, retrieval_metrics
from training.ranking import rerank

#: (image tokens [n, T, C], input ids [n, L], attention mask [n, L]) -> match probabilities [n]
MatchProbability = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def gallery_tower_tokens(model, transform: Callable, gallery, device: torch.device, batch_size: int = 64,
                         num_workers: int = 0) -> torch.Tensor:
    """The locked tower's patch tokens of every gallery image, [N, T, C] float32 on the CPU."""
    loader = DataLoader(TransformedImages(gallery, transform), batch_size=batch_size, num_workers=num_workers,
                        shuffle=False)
    parts = []
    with evaluation_mode(model):
        for pixels in loader:
            parts.append(model.image_tower_outputs(pixels.to(device))[1].float().cpu())
    return torch.cat(parts)


def _pairs(match_probability: MatchProbability, image_tokens: torch.Tensor, input_ids: torch.Tensor,
           attention_mask: torch.Tensor, images_are_queries: bool, device: torch.device,
           batch_size: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`rerank`'s (query indices, candidate indices) -> probabilities, in batches of pairs."""

    def score(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        images, texts = (queries, candidates) if images_are_queries else (candidates, queries)
        images, texts = images.cpu(), texts.cpu()
        out = []
        for start in range(0, len(images), batch_size):
            i, t = images[start:start + batch_size], texts[start:start + batch_size]
            out.append(match_probability(image_tokens[i].to(device), input_ids[t].to(device),
                                         attention_mask[t].to(device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0)

    return score


def rerank_retrieval(match_probability: MatchProbability, similarity: torch.Tensor, image_tokens: torch.Tensor,
                     input_ids: torch.Tensor, attention_mask: torch.Tensor, image_of_text: ImageOfText,
                     directions: Sequence[str], top_k: int, device: str | torch.device = "cpu",
                     batch_size: int = 256) -> dict:
    """Re-rank both directions' top-k of `similarity` [n_images, n_texts] and return
    {"top_k", "metrics", "pairs_scored", "seconds"}."""
    started = time.perf_counter()
    device = torch.device(device)
    similarity = similarity.float().cpu()
    scored, scores = 0, {}
    for direction in directions:
        images_are_queries = direction == "i2t"
        matrix = similarity if images_are_queries else similarity.t()
        pairs = _pairs(match_probability, image_tokens, input_ids, attention_mask, images_are_queries, device,
                       batch_size)
        scores[direction], n = rerank(matrix, [pairs], top_k)
        scored += n
    i2t = scores["i2t"] if "i2t" in scores else scores["t2i"].t()
    metrics = retrieval_metrics(i2t, image_of_text, tuple(directions), similarity_t2i=scores.get("t2i"))
    return {"top_k": top_k, "metrics": metrics, "pairs_scored": scored, "seconds": round(time.perf_counter() - started, 3)}
