"""The trainer's settings and `python -m training.train`'s parser, generated from them.

Every default lives in one dataclass: `TrainConfig` here, `OptimConfig` in `training.trainer.optim`
and the library's `LiTConfig`. The parser takes them from there (`filters.contract.flags`), so a
default changed in a dataclass changes the command line too. `LiTConfig` belongs to the library,
which knows nothing of command lines, so its flags are given here (`MODEL_FLAGS`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from filters.contract.flags import Flag, add_flags, config_values, flag
from training.model import SIMILARITIES, LiTConfig
from training.momentum import DEFAULT_MOMENTUM, DEFAULT_QUEUE_SIZE
from training.sigmoid_loss import INIT_BIAS, INIT_LOG_SCALE
from training.trainer.optim import OptimConfig

PRECISIONS = ("fp32", "bf16", "fp16")
#: clip: symmetric InfoNCE (Wukong); siglip: pairwise sigmoid (SigLIP); moco: BriVL's momentum queues.
LOSSES = ("clip", "siglip", "moco")
#: R2D2's two-way distillation: target-guided (EMA teacher, queues, soft targets), feature-guided
#: (masked-text features regress to the teacher's), or both.
DISTILLATIONS = ("none", "target", "feature", "both")


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Which training method: the loss, R2D2's ranking head and distillation (docs/train.md, "Methods")."""

    loss: str = dataclasses.field(default="clip", metadata=flag(
        "clip (InfoNCE), siglip (pairwise sigmoid, ring exchange over ranks) or moco (BriVL's momentum queues)",
        choices=LOSSES))
    queue_size: int = dataclasses.field(default=DEFAULT_QUEUE_SIZE, metadata=flag(
        "keys per modality in the queues of moco and of the distillation teacher (a multiple of --global-batch)"))
    momentum: float = dataclasses.field(default=DEFAULT_MOMENTUM, metadata=flag(
        "EMA momentum of the momentum encoders (moco) and of the distillation teacher"))
    ranking_head: bool = dataclasses.field(default=False, metadata=flag(
        "train R2D2's cross-encoder ranking head with the dual encoder (hard negatives, 1:2 weighted loss)"))
    ranking_layers: int = dataclasses.field(default=2, metadata=flag(
        "cross-attention blocks of the ranking head (R2D2: 6)"))
    distill: str = dataclasses.field(default="none", metadata=flag(
        "R2D2's distillation from an EMA teacher: target (soft targets over the teacher's queues), feature "
        "(masked-text features regress to the teacher's), both, or none", choices=DISTILLATIONS))
    hard_negative_temperature: float = 1.0  # softmax(similarity / T) draws the ranking head's negatives
    distill_alpha: float = 0.4  # the teacher's share of the soft targets (ALBEF's value; R2D2 gives none)
    mask_rate: float = 0.15  # share of caption tokens the feature-distilled student sees as [MASK] (BERT's)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.distill not in DISTILLATIONS:
            raise ValueError(f"distill must be one of {DISTILLATIONS}, got {self.distill!r}")
        if self.queue_size <= 0 or not 0.0 <= self.momentum < 1.0:
            raise ValueError("queue_size must be positive and momentum in [0, 1)")
        if self.ranking_layers <= 0:
            raise ValueError("ranking_layers must be positive")
        if self.loss != "clip" and (self.ranking_head or self.distill != "none"):
            raise ValueError("--ranking-head and --distill build on R2D2's pre-ranking, the clip loss")
        if self.hard_negative_temperature <= 0 or not 0.0 <= self.distill_alpha <= 1.0 or not 0.0 < self.mask_rate < 1.0:
            raise ValueError("hard_negative_temperature > 0, distill_alpha in [0, 1], mask_rate in (0, 1)")

    @property
    def is_default(self) -> bool:
        """Wukong's method: InfoNCE, no ranking head, no distillation."""
        return self.loss == "clip" and not self.ranking_head and self.distill == "none"

    @property
    def uses_teacher(self) -> bool:
        return self.loss == "moco" or self.distill != "none"

    def model_config(self, model: LiTConfig) -> LiTConfig:
        """The model this method trains: SigLIP's temperature and bias, the ranking head."""
        if not self.is_default and model.similarity != "global":
            raise ValueError("--loss siglip/moco, --ranking-head and --distill need --similarity global")
        changes: dict = {}
        if self.loss == "siglip":
            changes.update(init_temperature=math.exp(-INIT_LOG_SCALE), logit_bias=INIT_BIAS)
        if self.ranking_head:
            changes.update(ranking_layers=self.ranking_layers)
        return dataclasses.replace(model, **changes) if changes else model


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The run's settings other than the model's and the optimiser's (README "Train" explains them)."""

    data: str | None = dataclasses.field(metadata=flag(
        "directory of clean shards (the filter stage's output); not needed with --cache"))
    output: str = dataclasses.field(metadata=flag("directory for config.json, checkpoints/, tensorboard/"))
    cache: str | None = dataclasses.field(default=None, metadata=flag(
        "train from a locked-tower feature cache (python -m training.cache_features)"))
    steps: int | None = dataclasses.field(default=None, metadata=flag(
        "optimiser steps (default: --epochs over the data)"))
    epochs: float = dataclasses.field(default=20.0, metadata=flag("passes over the data (the paper: 20)"))
    global_batch: int = dataclasses.field(default=4096, metadata=flag(
        "pairs per step over all ranks and accumulation micro-batches"))
    accum_freq: int = dataclasses.field(default=1, metadata=flag(
        "micro-batches per step (GradCache: same negatives)"))
    workers: int = dataclasses.field(default=4, metadata=flag("DataLoader workers per rank"))
    shuffle_buffer: int = dataclasses.field(default=2048, metadata=flag("rows in each reader's shuffle buffer"))
    seed: int = dataclasses.field(default=0, metadata=flag("seeds the initial weights, data order and augmentation"))
    precision: str = dataclasses.field(default="bf16", metadata=flag(
        "bf16 autocast (CPU/GPU), fp16 autocast with a grad scaler (GPU), or fp32", choices=PRECISIONS))
    device: str = dataclasses.field(default="auto", metadata=flag(
        "auto (cuda:LOCAL_RANK when there is a GPU, else cpu), cpu, cuda, cuda:N"))
    auto_augment: str | None = "original"  # the paper's AutoAugment; None (--no-augment): no augmentation
    crop_scale_min: float = dataclasses.field(default=0.5, metadata=flag("smallest RandomResizedCrop area share"))
    tokenizer: str | None = dataclasses.field(default=None, metadata=flag(
        "vocab.txt, tokenizer directory or hub name (default: cn-clip's vocab)"))
    log_every: int = dataclasses.field(default=50, metadata=flag("steps between progress lines"))
    save_every: int = dataclasses.field(default=1000, metadata=flag("steps between checkpoints"))
    keep_checkpoints: int = dataclasses.field(default=3, metadata=flag("step checkpoints kept (0: all)"))
    resume: str | None = dataclasses.field(default=None, metadata=flag(
        "'latest' (the newest checkpoint in --output) or a checkpoint path"))
    stop_at: int | None = dataclasses.field(default=None, metadata=flag(
        "save and stop at this step, as a time-sliced or preempted job would (resume later)"))
    val_dir: str | None = dataclasses.field(default=None, metadata=flag(
        "zero-shot validation images, one sub-folder per class (see training.evaluation.zeroshot)"))
    val_classnames: str | None = dataclasses.field(default=None, metadata=flag(
        "class-name file for zero-shot validation"))
    val_every: int = dataclasses.field(default=0, metadata=flag(
        "validate every N steps (0: never); keeps best.pt"))
    method: MethodConfig = MethodConfig()  # its flags: the "method" group


    def __post_init__(self) -> None:
        if not self.data and not self.cache:
            raise ValueError("give --data (clean shards) or --cache (a feature cache)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.steps is not None and self.steps <= 0:
            raise ValueError("steps must be positive")
        if self.epochs <= 0 or self.global_batch <= 0 or self.accum_freq <= 0:
            raise ValueError("epochs, global_batch and accum_freq must be positive")
        if self.workers < 0 or self.shuffle_buffer < 1 or self.log_every < 1 or self.save_every < 1:
            raise ValueError("workers >= 0, shuffle_buffer >= 1, log_every >= 1, save_every >= 1")
        if not 0.0 < self.crop_scale_min <= 1.0:
            raise ValueError("crop_scale_min must lie in (0, 1]")
        if self.stop_at is not None and self.stop_at <= 0:
            raise ValueError("stop_at must be positive")
        if self.val_every and not (self.val_dir and self.val_classnames):
            raise ValueError("--val-every needs --val-dir and --val-classnames")
        if self.accum_freq > 1 and (self.method.uses_teacher or self.method.ranking_head):
            raise ValueError("--accum-freq > 1 serves --loss clip and siglip without --ranking-head or --distill")
        if self.method.uses_teacher and self.method.queue_size % self.global_batch:
            raise ValueError(f"--queue-size {self.method.queue_size} is not a multiple of --global-batch "
                             f"{self.global_batch} (whole global batches are enqueued)")

    def micro_batch(self, world_size: int) -> int:
        """Rows per micro-batch and rank; the global batch must split evenly."""
        parts = world_size * self.accum_freq
        if self.global_batch % parts:
            raise ValueError(f"global batch {self.global_batch} does not split over {world_size} ranks x "
                             f"{self.accum_freq} micro-batches")
        return self.global_batch // parts


#: The model's flags; the defaults are LiTConfig's (the paper's Wukong ViT-L).
MODEL_FLAGS = {
    "image_tower": Flag("any timm model name"),
    "image_weights": Flag("local weights file for the image tower (offline)"),
    "image_pretrained": Flag("random image tower (tests, smoke runs)", negative="--no-pretrained"),
    "image_size": Flag("input resolution (default: the tower's own)"),
    "image_token_pool": Flag("pool patch tokens to <= N (a square); 0: all"),
    "text_layers": Flag("BERT layers of the text tower"),
    "text_width": Flag("BERT hidden width"),
    "text_heads": Flag("BERT attention heads"),
    "text_dropout": Flag("BERT dropout (attention and hidden)"),
    "text_checkpoint": Flag("local BertModel directory to start the text tower from"),
    "embed_dim": Flag("width of the shared embedding space"),
    "similarity": Flag("global (CLIP) or token_wise (FILIP) similarity", choices=SIMILARITIES),
    "token_reducer_tokens": Flag("reduce image tokens to N (token-wise); 0: off", name="--token-reducer",
                                 metavar="N"),
    "grad_checkpointing": Flag("checkpoint the text tower's activations"),
}
#: What `--tiny` leaves to the command line: the similarity and the token options.
TINY_KEEPS = ("similarity", "token_reducer_tokens", "grad_checkpointing", "image_token_pool")

_DATA_FIELDS = ("data", "output", "cache", "workers", "shuffle_buffer", "tokenizer", "crop_scale_min")
_OPTIMISATION_FIELDS = ("steps", "epochs", "global_batch", "accum_freq", "precision", "seed", "device")
_LOGGING_FIELDS = ("log_every", "save_every", "keep_checkpoints", "resume", "stop_at", "val_dir", "val_classnames",
                   "val_every")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.train",
        description="LiT training: a Chinese BERT text tower learns to read a locked timm image tower "
                    "(global CLIP or token-wise FILIP loss), single process or torchrun DDP.")
    g = p.add_argument_group("data and output")
    add_flags(g, TrainConfig, only=_DATA_FIELDS, required=("output",))
    g.add_argument("--no-augment", action="store_true", help="no AutoAugment (the paper uses it)")
    g = p.add_argument_group("model")
    add_flags(g, LiTConfig, specs=MODEL_FLAGS)
    g.add_argument("--tiny", action="store_true",
                   help="a tiny model for smoke runs: random resnet18 at 64 px, 2-layer 64-wide BERT, dim 32 "
                        "(overrides the model flags but --image-tower, --image-size, --similarity and the token options)")
    g = p.add_argument_group("optimisation")
    add_flags(g, TrainConfig, only=_OPTIMISATION_FIELDS)
    add_flags(g, OptimConfig)
    g = p.add_argument_group("method (docs/train.md, \"Methods\")")
    add_flags(g, MethodConfig)
    g = p.add_argument_group("logging, checkpoints, validation")
    add_flags(g, TrainConfig, only=_LOGGING_FIELDS)
    return p


def model_config_from_args(args: argparse.Namespace) -> LiTConfig:
    """The model flags, or `LiTConfig.tiny()` with what `--tiny` leaves to the command line."""
    values = config_values(args, LiTConfig, specs=MODEL_FLAGS)
    if not args.tiny:
        return LiTConfig(**values)
    keep = {name: values[name] for name in TINY_KEEPS}
    if values["image_tower"] != LiTConfig.image_tower:  # an explicitly chosen tower wins over the tiny one
        keep["image_tower"] = values["image_tower"]
    if values["image_size"] is not None:  # so does an explicit resolution
        keep["image_size"] = values["image_size"]
    return LiTConfig.tiny(**keep)


def configs_from_args(args: argparse.Namespace) -> tuple[TrainConfig, LiTConfig, OptimConfig]:
    """The three configs of a parsed command line; ValueError names a bad combination."""
    optim_values = config_values(args, OptimConfig)
    if not optim_values["max_grad_norm"]:  # the command line's 0: no clip
        optim_values["max_grad_norm"] = None
    train_values = config_values(args, TrainConfig)
    if args.no_augment:
        train_values["auto_augment"] = None
    method = MethodConfig(**config_values(args, MethodConfig))
    model = method.model_config(model_config_from_args(args))
    return TrainConfig(**train_values, method=method), model, OptimConfig(**optim_values)
