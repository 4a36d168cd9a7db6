"""R2D2's ranking stage (Xie et al., 2022): a cross-encoder that re-scores the dual encoder's top-k.

- `RankingHead`: text tokens attend to the locked tower's image tokens through `layers` blocks
  (self-attention over the text, cross-attention to the image, a feed-forward), and a binary head on
  the text's first token says whether the pair matches. The paper uses 6 blocks; 2 by default here.
- `sample_hard_negatives`: for every row of a similarity matrix over the global batch, one column
  drawn with probability softmax(similarity / T), positives excluded.
- `ranking_loss`: the positive pairs and one hard negative per sample and direction, with the
  classes weighted negative:positive = 1:2 (our reading of the paper's 1:2: each positive has two
  negatives, so the weights balance the classes).
- `rerank`: within each query's top-k by the dual encoder, the score becomes the mean match
  probability plus the similarity; everything outside the top-k ranks last (below every re-scored
  candidate, in the dual encoder's order, with finite scores that retrieval_metrics accepts).

Only R2D2's inference and fine-tuning code is public; these are implemented from the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Class weights of the match loss: (no match, match).
CLASS_WEIGHTS = (1.0, 2.0)


class _CrossBlock(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.self_attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.feed_forward = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.norms = nn.ModuleList([nn.LayerNorm(width) for _ in range(3)])

    def forward(self, text: torch.Tensor, text_padding: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = self.norms[0](text)
        text = text + self.self_attention(x, x, x, key_padding_mask=text_padding, need_weights=False)[0]
        x = self.norms[1](text)
        text = text + self.cross_attention(x, image, image, need_weights=False)[0]
        return text + self.feed_forward(self.norms[2](text))


class RankingHead(nn.Module):
    """Match logits [B, 2] of (image tokens [B, T, image_width], text tokens [B, L, width], mask)."""

    def __init__(self, width: int, image_width: int, layers: int = 2, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        if layers <= 0:
            raise ValueError("the ranking head needs at least one layer")
        self.image_projection = nn.Linear(image_width, width)
        self.blocks = nn.ModuleList([_CrossBlock(width, heads, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, 2)

    def forward(self, image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        image = self.image_projection(image_tokens)
        text, padding = text_tokens, ~text_mask.bool()
        for block in self.blocks:
            text = block(text, padding, image)
        return self.classifier(self.norm(text[:, 0]))

    def match_probability(self, image_tokens: torch.Tensor, text_tokens: torch.Tensor,
                          text_mask: torch.Tensor) -> torch.Tensor:
        return self.forward(image_tokens, text_tokens, text_mask).softmax(dim=-1)[:, 1]


def sample_hard_negatives(similarity: torch.Tensor, temperature: float, positives: torch.Tensor | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """One column per row of `similarity` [B, C], drawn from softmax(similarity / temperature) over
    the columns that are not positives of that row (`positives` [B, C] bool; default: the diagonal)."""
    if positives is None:
        positives = torch.eye(*similarity.shape, dtype=torch.bool, device=similarity.device)
    if bool(positives.all(dim=1).any()):
        raise ValueError("a row has no negative column to draw")
    logits = (similarity.detach().float() / temperature).masked_fill(positives, float("-inf"))
    return torch.multinomial(logits.softmax(dim=1), 1, generator=generator).squeeze(1)


def ranking_loss(head: RankingHead, image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor,
                 similarity: torch.Tensor, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The weighted match loss on the B positive pairs, B (image, hard negative text) pairs and B
    (hard negative image, text) pairs. `similarity` [B, B] is image->text over the batch."""
    batch = image_tokens.shape[0]
    negative_texts = sample_hard_negatives(similarity, temperature, generator=generator)
    negative_images = sample_hard_negatives(similarity.t(), temperature, generator=generator)
    images = torch.cat([image_tokens, image_tokens, image_tokens[negative_images]])
    texts = torch.cat([text_tokens, text_tokens[negative_texts], text_tokens])
    masks = torch.cat([text_mask, text_mask[negative_texts], text_mask])
    labels = torch.cat([torch.ones(batch), torch.zeros(2 * batch)]).long().to(image_tokens.device)
    weights = torch.tensor(CLASS_WEIGHTS, device=image_tokens.device)
    return F.cross_entropy(head(images, texts, masks).float(), labels, weight=weights)


def rerank(similarity: torch.Tensor, match_probability: Sequence[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
           k: int) -> tuple[torch.Tensor, int]:
    """Re-score each row's top-k columns of `similarity` [n_queries, n_candidates] by the mean of
    the `match_probability` functions plus the similarity; every other column is moved below them.

    Each function takes (query indices, candidate indices) of equal length and returns their match
    probabilities. Returns the new scores and how many pairs were scored.
    """
    if k <= 0:
        raise ValueError("k must be positive")
    k = min(k, similarity.shape[1])
    top = similarity.topk(k, dim=1).indices  # [n, k]
    queries = torch.arange(similarity.shape[0], device=similarity.device).repeat_interleave(k)
    candidates = top.reshape(-1)
    probability = torch.stack([fn(queries, candidates).float() for fn in match_probability]).mean(dim=0)
    similarity = similarity.float()
    # Probabilities lie in [0, 1]: shifting the rest by the similarity's range plus 2 puts them last.
    scores = similarity - (similarity.max() - similarity.min() + 2.0)
    scores[queries, candidates] = probability + similarity[queries, candidates]
    return scores, int(candidates.numel())
