"""The LiT dual encoder: a locked timm image tower and a trained Chinese BERT text tower.

    image -> timm tower (locked: no gradients, eval mode, BatchNorm statistics frozen)
          -> [optional token reducer] -> linear projection to 256 -> L2 normalisation
    text  -> BertModel (12 layers, 768 wide, 12 heads; random init as in the paper)
          -> linear projection to 256 -> L2 normalisation

Global features: the tower's pooled output (the [CLS] of a ViT, the mean of patch tokens for Swin
and ResNets) and the text [CLS]. Token features: the tower's patch tokens without [CLS] (or the
reducer's few tokens), and the text tokens with [CLS] and padding masked out.

A tiny model for tests and notebooks builds in a second:

    LiTConfig.tiny()   # resnet18 (random weights) at 64 px, a 2-layer 64-wide BERT
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training.ranking import RankingHead

SIMILARITIES = ("global", "token_wise")


@dataclasses.dataclass(frozen=True)
class LiTConfig:
    """The model's shape. Defaults follow the paper's Wukong ViT-L (section 4, 5.1)."""

    image_tower: str = "vit_large_patch14_clip_224.openai"  # any timm name
    image_pretrained: bool = True  # timm's weights (online); False for random weights
    image_weights: str | None = None  # a local weights file for the tower (offline)
    image_size: int | None = None  # None: the tower's own resolution (224 for the paper's towers)
    image_token_pool: int = 0  # 0: all patch tokens; k: the patch grid average-pooled to <= k tokens
    text_layers: int = 12
    text_width: int = 768
    text_heads: int = 12
    text_dropout: float = 0.1  # BERT's default dropout (attention and hidden)
    text_init_std: float = 0.02  # BERT's initializer_range for a randomly initialised text tower
    text_checkpoint: str | None = None  # a local BertModel directory; None: random init (the paper)
    vocab_size: int = 21128
    context_length: int = 32
    embed_dim: int = 256
    similarity: str = "global"  # or "token_wise" (FILIP)
    token_reducer_tokens: int = 0  # 0: off; else the TokenLearner-style reducer's output tokens
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0  # 1/temperature is clamped to at most this (CLIP)
    logit_bias: float | None = None  # initial value of a learned logit bias (SigLIP: -10); None: no bias
    ranking_layers: int = 0  # blocks of R2D2's cross-encoder ranking head; 0: no head
    grad_checkpointing: bool = False  # of the text tower

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        for name in ("text_layers", "text_width", "text_heads", "vocab_size", "context_length", "embed_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.text_width % self.text_heads:
            raise ValueError(f"text_width {self.text_width} is not divisible by text_heads {self.text_heads}")
        if self.context_length > 512:
            raise ValueError("context_length is at most 512 (BERT's position table)")
        if self.text_init_std <= 0:
            raise ValueError(f"text_init_std must be positive, got {self.text_init_std}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ValueError(f"text_dropout must be in [0, 1), got {self.text_dropout}")
        if self.token_reducer_tokens < 0 or self.image_token_pool < 0:
            raise ValueError("token_reducer_tokens and image_token_pool must be >= 0")
        if self.image_token_pool and math.isqrt(self.image_token_pool) ** 2 != self.image_token_pool:
            raise ValueError(f"image_token_pool must be a square (a k x k grid), got {self.image_token_pool}")
        if not 0.0 < self.init_temperature < 1.0:
            raise ValueError(f"init_temperature must be in (0, 1), got {self.init_temperature}")
        if self.max_logit_scale < 1.0:
            raise ValueError(f"max_logit_scale must be at least 1, got {self.max_logit_scale}")
        if self.token_reducer_tokens and self.similarity != "token_wise":
            raise ValueError("the token reducer serves token-wise similarity; set similarity='token_wise'")
        if self.ranking_layers < 0:
            raise ValueError(f"ranking_layers must be >= 0, got {self.ranking_layers}")
        if self.image_size is not None and self.image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {self.image_size}")

    @classmethod
    def tiny(cls, **overrides: Any) -> "LiTConfig":
        """A model that builds and trains in seconds on a CPU (tests, smoke runs)."""
        values = dict(image_tower="resnet18", image_pretrained=False, image_size=64, text_layers=2,
                      text_width=64, text_heads=2, text_dropout=0.0, embed_dim=32,
                      # a narrow random BERT gives every caption nearly the same [CLS] at std 0.02 and
                      # needs hundreds of steps to break the tie; a wider init learns in tens
                      text_init_std=0.05)
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "LiTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**values)


class ModelConfigError(ValueError):
    """The model cannot be built from its config (unknown timm name, missing weights...)."""


def check_timm_name(name: str) -> None:
    """Raise ModelConfigError, with close names, unless timm knows `name`."""
    import timm  # noqa: PLC0415

    if timm.is_model(name):
        return
    stem = name.split(".")[0]
    close = timm.list_models(f"*{stem.split('_')[0]}*")[:8]
    raise ModelConfigError(f"timm has no model named {name!r}" + (f"; similar: {', '.join(close)}" if close else ""))


def build_image_tower(config: LiTConfig) -> nn.Module:
    """The timm tower with its classifier removed, locked (see `lock`)."""
    import timm  # noqa: PLC0415

    check_timm_name(config.image_tower)
    kwargs: dict[str, Any] = {"num_classes": 0}
    pretrained = config.image_pretrained or config.image_weights is not None
    if config.image_weights is not None:
        import os  # noqa: PLC0415

        if not os.path.isfile(config.image_weights):
            raise ModelConfigError(f"image tower weights not found: {config.image_weights}")
        kwargs["pretrained_cfg_overlay"] = {"file": config.image_weights}
    if config.image_size is not None:
        kwargs["img_size"] = config.image_size
    try:
        tower = timm.create_model(config.image_tower, pretrained=pretrained, **kwargs)
    except TypeError:
        # convolutional towers take any input size and have no img_size argument
        kwargs.pop("img_size", None)
        tower = timm.create_model(config.image_tower, pretrained=pretrained, **kwargs)
    return lock(tower)


def lock(module: nn.Module) -> nn.Module:
    """No gradients, eval mode (so BatchNorm statistics and dropout are frozen)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def build_text_tower(config: LiTConfig) -> nn.Module:
    """A transformers BertModel without the pooler: random init, or a local checkpoint."""
    from transformers import BertConfig, BertModel  # noqa: PLC0415

    if config.text_checkpoint is not None:
        model = BertModel.from_pretrained(config.text_checkpoint, add_pooling_layer=False)
        if model.config.vocab_size != config.vocab_size:
            raise ModelConfigError(f"text checkpoint has a vocabulary of {model.config.vocab_size}, "
                                   f"expected {config.vocab_size}")
    else:
        bert = BertConfig(vocab_size=config.vocab_size, hidden_size=config.text_width,
                          num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
                          intermediate_size=4 * config.text_width, max_position_embeddings=max(64, config.context_length),
                          hidden_dropout_prob=config.text_dropout, attention_probs_dropout_prob=config.text_dropout,
                          initializer_range=config.text_init_std)
        model = BertModel(bert, add_pooling_layer=False)
    if config.grad_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


class TokenReducer(nn.Module):
    """TokenLearner-style attention pooling: N tower tokens -> S learned mixtures of them.

    Each output token is a softmax-weighted average of the input tokens, with weights from a linear
    map of the LayerNorm-ed tokens, so the token-wise loss runs on S (e.g. 12 or 24) tokens.
    """

    def __init__(self, width: int, tokens: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attention = nn.Linear(width, tokens)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        weights = self.attention(self.norm(tokens)).transpose(1, 2).softmax(dim=-1)  # [B, S, N]
        return weights @ tokens


def tower_tokens(tower: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The patch tokens [B, T, C] of timm's forward_features output, without prefix ([CLS]) tokens."""
    if features.ndim == 3:  # ViT-like: [B, prefix + patches, C]
        return features[:, getattr(tower, "num_prefix_tokens", 0):]
    if features.ndim == 4:
        if getattr(tower, "output_fmt", "NCHW") == "NHWC":  # Swin
            return features.flatten(1, 2)
        return features.flatten(2).transpose(1, 2)  # convnets: NCHW
    raise ModelConfigError(f"cannot read tokens from tower output of shape {tuple(features.shape)}")


def pool_tokens(tokens: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """Average-pool a square patch grid to at most `max_tokens` (a square) tokens; 0 keeps all."""
    if not max_tokens or tokens.shape[1] <= max_tokens:
        return tokens
    side = math.isqrt(tokens.shape[1])
    if side * side != tokens.shape[1]:
        raise ModelConfigError(f"cannot pool {tokens.shape[1]} tokens: not a square grid")
    grid = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)
    out = math.isqrt(max_tokens)
    return F.adaptive_avg_pool2d(grid, out).flatten(2).transpose(1, 2)


def tower_forward(tower: nn.Module, pixels: torch.Tensor, token_pool: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A locked tower's (pooled [B, C], patch tokens [B, T, C]) for `pixels`, without gradients."""
    with torch.no_grad():
        features = tower.forward_features(pixels)
        pooled = tower.forward_head(features, pre_logits=True)
        return pooled, pool_tokens(tower_tokens(tower, features), token_pool)


class LiTModel(nn.Module):
    """The dual encoder; see the module docstring. `logit_scale` is log(1/temperature)."""

    def __init__(self, config: LiTConfig):
        super().__init__()
        self.config = config
        self.similarity: str = config.similarity
        self.image_tower = build_image_tower(config)
        width = self.image_tower.num_features
        self.token_reducer = TokenReducer(width, config.token_reducer_tokens) if config.token_reducer_tokens else None
        self.image_proj = nn.Linear(width, config.embed_dim, bias=False)
        self.text_tower = build_text_tower(config)
        self.text_proj = nn.Linear(self.text_tower.config.hidden_size, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))
        nn.init.normal_(self.image_proj.weight, std=width ** -0.5)
        nn.init.normal_(self.text_proj.weight, std=self.text_tower.config.hidden_size ** -0.5)
        # Built after everything above, so that a model without them starts from the same weights.
        self.logit_bias = nn.Parameter(torch.tensor(float(config.logit_bias))) if config.logit_bias is not None else None
        self.ranking_head = (RankingHead(self.text_tower.config.hidden_size, width, config.ranking_layers,
                                         heads=self.text_tower.config.num_attention_heads)
                             if config.ranking_layers else None)

    @property
    def image_width(self) -> int:
        return self.image_tower.num_features

    def train(self, mode: bool = True) -> "LiTModel":
        super().train(mode)
        self.image_tower.eval()  # locked: BatchNorm statistics and dropout stay frozen
        return self

    def scale(self) -> torch.Tensor:
        """1/temperature, clamped to [1, max_logit_scale]."""
        return self.logit_scale.clamp(0.0, math.log(self.config.max_logit_scale)).exp()

    def logit_parameters(self) -> torch.Tensor:
        """The scale, or [scale, bias] stacked for a model with a logit bias (SigLIP)."""
        if self.logit_bias is None:
            return self.scale()
        return torch.stack([self.scale(), self.logit_bias])

    def forward(self, pooled: torch.Tensor, tokens: torch.Tensor | None, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, with_hidden: bool = False) -> tuple:
        """The trainable part, from the locked tower's outputs (or a feature cache) and the tokens:
        (image embedding, text embedding, text mask or None, `logit_parameters()`), and with
        `with_hidden` the text tower's last hidden states (global similarity) for the ranking head.
        The text rows may outnumber the image rows (extra texts, such as masked copies). The trainer
        calls this through DDP, which needs one forward() to synchronise gradients."""
        if with_hidden:
            if self.similarity != "global":
                raise ValueError("with_hidden serves global similarity")
            hidden = self.text_hidden(input_ids, attention_mask)
            text = F.normalize(self.text_proj(hidden[:, 0]), dim=-1)
            return self.image_embedding(pooled, tokens), text, None, self.logit_parameters(), hidden
        text, mask = self.text_embedding(input_ids, attention_mask)
        return self.image_embedding(pooled, tokens), text, mask, self.logit_parameters()

    def match_probability(self, image_tokens: torch.Tensor, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor) -> torch.Tensor:
        """The ranking head's match probability of each (locked tower tokens [B, T, C], text) pair."""
        if self.ranking_head is None:
            raise ValueError("this model has no ranking head (train with --ranking-head)")
        hidden = self.text_hidden(input_ids, attention_mask)
        return self.ranking_head.match_probability(image_tokens, hidden, attention_mask)

    # ---- image side -------------------------------------------------------------------------

    def image_tower_outputs(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The locked tower's (pooled [B, C], patch tokens [B, T, C]); never carries gradients."""
        return tower_forward(self.image_tower, pixels, self.config.image_token_pool)

    def project_image(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(pooled), dim=-1)

    def project_image_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.token_reducer is not None:
            tokens = self.token_reducer(tokens)
        return F.normalize(self.image_proj(tokens), dim=-1)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """L2-normalised global image features [B, D]."""
        return self.project_image(self.image_tower_outputs(pixels)[0])

    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """L2-normalised image tokens [B, T, D]: patch tokens (no [CLS]) or the reducer's tokens."""
        return self.project_image_tokens(self.image_tower_outputs(pixels)[1])

    def image_embedding(self, pooled: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        """What the loss compares on the image side, from tower outputs (global or token-wise)."""
        return self.project_image(pooled) if self.similarity == "global" else self.project_image_tokens(tokens)

    # ---- text side --------------------------------------------------------------------------

    def text_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text_tower(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised global text features [B, D] (from the text [CLS])."""
        return F.normalize(self.text_proj(self.text_hidden(input_ids, attention_mask)[:, 0]), dim=-1)

    def encode_text_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L2-normalised tokens [B, L, D], mask [B, L]); the mask is False on [CLS] and padding."""
        tokens = F.normalize(self.text_proj(self.text_hidden(input_ids, attention_mask)), dim=-1)
        mask = attention_mask.bool().clone()
        mask[:, 0] = False
        return tokens, mask

    def text_embedding(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the loss compares on the text side: (features, None) or (tokens, mask)."""
        if self.similarity == "global":
            return self.encode_text(input_ids, attention_mask), None
        return self.encode_text_tokens(input_ids, attention_mask)

