"""Zero-shot classification with an ensemble of Chinese prompt templates (paper section 5.2).

Each class name is put into every template (`training.evaluation.prompts`: cn-clip's 80 templates) and the
class is scored against the image in one of three ways, named in the results under `ensemble`:

- `mean_embedding` (global similarity; the paper and CLIP): the class weight is the mean of the
  L2-normalised template embeddings, renormalised; the score is its cosine with the image.
- `mean_similarity` (token-wise, the paper's choice): the class score is the mean over templates
  of the token-wise image->text similarity between the image and that prompt.
- `mean_probability` (token-wise, what the authors' released evaluation does): for each template,
  a softmax over classes of `logit_scale x similarity`; the class score is the mean probability.

Top-K accuracy counts an image as correct when its class is among the K best-scored classes.
Ties are broken by class index (the lower index ranks first), i.e. as `argmax` does; they occur
in practice because ImageNet-CN names two classes 太阳镜 (sunglass, sunglasses).

`zero_shot_validate(...)` is what the trainer calls every N steps (the paper validates on
ImageNet-CN); `classify(...)` is the reusable core, and `python -m training.evaluate zeroshot`
the command line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from filters.contract.flags import flag
from training.evaluation.datasets.image_folder import (
    ClassificationSet,
    load_image_folder,
    without_undecodable_images,
)
from training.evaluation.embeddings import TransformedImages, evaluation_mode
from training.evaluation.prompts import chinese_templates, read_classnames, repeated_classnames

ENSEMBLES = ("mean_embedding", "mean_similarity", "mean_probability")
ENSEMBLES_BY_SIMILARITY = {
    "global": ("mean_embedding",),
    "token_wise": ("mean_similarity", "mean_probability"),
}
TIE_RULE = "ties between classes are broken by class index (the lower index ranks first, as argmax)"

Log = Callable[[str], None]


@dataclass(frozen=True)
class ZeroShotConfig:
    """How zero-shot classification runs. Defaults: the paper's protocol (80 templates, top-1/5,
    mean embedding for global models and mean token-wise similarity for token-wise ones)."""

    ensemble: str | None = field(default=None, metadata=flag(
        "how templates are combined (default: the paper's choice for the model)", choices=ENSEMBLES))
    topk: tuple[int, ...] = (1, 5)
    image_batch_size: int = field(default=64, metadata=flag("images per forward pass", name="--batch-size",
                                                                             metavar="BATCH_SIZE"))
    text_batch_size: int = 256
    prompt_chunk: int = 2048  # prompts scored at once against an image batch (token-wise)
    num_workers: int = field(default=0, metadata=flag("DataLoader processes that decode images",
                                                                       name="--workers", metavar="WORKERS"))
    max_images: int | None = field(default=None, metadata=flag(
        "evaluate N images spread evenly over the classes (quick checks)"))

    def __post_init__(self) -> None:
        if self.ensemble is not None and self.ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {self.ensemble!r}")
        if not self.topk or any(k < 1 for k in self.topk):
            raise ValueError(f"topk must be positive integers, got {self.topk}")
        for name in ("image_batch_size", "text_batch_size", "prompt_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError("max_images must be positive")


def resolve_ensemble(similarity: str, ensemble: str | None) -> str:
    """The ensemble to use for a model of `similarity`; a mismatch is an error, not a fallback."""
    if similarity not in ENSEMBLES_BY_SIMILARITY:
        raise ValueError(f"unknown similarity {similarity!r}")
    allowed = ENSEMBLES_BY_SIMILARITY[similarity]
    if ensemble is None:
        return allowed[0]
    if ensemble not in allowed:
        raise ValueError(f"a {similarity} model supports the ensembles {allowed}, not {ensemble!r}")
    return ensemble


def logit_scale_of(model) -> float:
    """1/temperature as the model uses it (clamped), for the softmax ensemble."""
    if hasattr(model, "scale"):
        return float(model.scale().detach())
    return float(model.logit_scale.detach().exp().clamp(max=100.0))


def _prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Class-major: prompt `c * len(templates) + t` is template t filled with class c."""
    return [template.format(name) for name in classnames for template in templates]


def class_weights_global(model, tokenizer, classnames: Sequence[str], templates: Sequence[str],
                         device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """`[C, D]`: per class, the mean of its L2-normalised prompt embeddings, renormalised."""
    prompts = _prompts(classnames, templates)
    chunks = []
    with evaluation_mode(model):
        for start in range(0, len(prompts), batch_size):
            ids, mask = tokenizer(prompts[start:start + batch_size])
            chunks.append(F.normalize(model.encode_text(ids.to(device), mask.to(device)).float(), dim=-1))
    embeddings = torch.cat(chunks).view(len(classnames), len(templates), -1)
    return F.normalize(embeddings.mean(dim=1), dim=-1)


def prompt_tokens(model, tokenizer, classnames: Sequence[str], templates: Sequence[str],
                  device: torch.device, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Token features `[C*T, L, D]` and their masks `[C*T, L]` (False on [CLS] and padding),
    class-major, kept on `device` in float16: 1,000 classes x 80 templates is 1.3 GB at D=256, and
    every image batch is scored against all of them, so they should not cross the bus each time."""
    prompts = _prompts(classnames, templates)
    tokens, masks = [], []
    with evaluation_mode(model):
        for start in range(0, len(prompts), batch_size):
            ids, attention = tokenizer(prompts[start:start + batch_size])
            features, mask = model.encode_text_tokens(ids.to(device), attention.to(device))
            tokens.append(features.to(torch.float16))
            masks.append(mask.bool())
    return torch.cat(tokens), torch.cat(masks)


def token_wise_class_scores(image_tokens: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
                            n_classes: int, ensemble: str, logit_scale: float,
                            prompt_chunk: int = 2048, similarity_fn: Callable | None = None) -> torch.Tensor:
    """`[B, C]` class scores of a batch of image tokens `[B, P, D]` against all prompts."""
    if similarity_fn is None:
        from training.loss import token_wise_i2t as similarity_fn
    n_prompts = tokens.shape[0]
    if n_prompts % n_classes:
        raise ValueError(f"{n_prompts} prompts do not divide into {n_classes} classes")
    device = image_tokens.device
    columns = []
    for start in range(0, n_prompts, prompt_chunk):
        chunk = tokens[start:start + prompt_chunk].to(device=device, dtype=torch.float32)
        columns.append(similarity_fn(image_tokens.float(), chunk, mask[start:start + prompt_chunk].to(device)))
    per_template = torch.cat(columns, dim=1).view(image_tokens.shape[0], n_classes, -1)  # [B, C, T]
    if ensemble == "mean_similarity":
        return per_template.mean(dim=2)
    if ensemble == "mean_probability":
        return (logit_scale * per_template).softmax(dim=1).mean(dim=2)
    raise ValueError(f"{ensemble!r} is not a token-wise ensemble")


def label_ranks(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's true class; ties go to the lower class index (see TIE_RULE)."""
    true = scores.gather(1, labels[:, None])
    index = torch.arange(scores.shape[1], device=scores.device)[None, :]
    ahead = (scores > true) | ((scores == true) & (index < labels[:, None]))
    return ahead.sum(dim=1) + 1


def zero_shot_chance(n_classes: int, topk: Sequence[int]) -> dict[str, float]:
    """Top-K accuracy (percent) of a uniformly random ranking of the classes: K / C."""
    return {f"top{k}": 100.0 * min(k, n_classes) / n_classes for k in topk}


@dataclass
class ZeroShotResult:
    metrics: dict[str, float]  # top1, top5, ... (percent)
    per_class_top1: list[float | None]  # percent, None for a class without images
    n_images: int
    n_classes: int
    ensemble: str
    similarity: str
    n_templates: int
    chance: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: int = 0  # images of the set left out because they do not decode

    def as_dict(self, per_class: bool = True) -> dict:
        result = {
            **self.metrics,
            "n_images": self.n_images,
            "skipped": self.skipped,
            "n_classes": self.n_classes,
            "n_templates": self.n_templates,
            "similarity": self.similarity,
            "ensemble": self.ensemble,
            "tie_rule": TIE_RULE,
            "chance": self.chance,
            "seconds": round(self.seconds, 3),
        }
        if per_class:
            result["per_class_top1"] = self.per_class_top1
        return result


def evenly_spaced(n: int, at_most: int | None) -> list[int]:
    """All of `range(n)`, or `at_most` indices spread evenly over it: a class folder is sorted by
    class, so the first N images would be the first few classes only."""
    if at_most is None or at_most >= n:
        return list(range(n))
    return sorted({round(i * (n - 1) / max(at_most - 1, 1)) for i in range(at_most)})


def classify(model, tokenizer, transform: Callable, dataset: ClassificationSet,
             templates: Sequence[str], device: torch.device | str,
             config: ZeroShotConfig = ZeroShotConfig(), log: Log | None = None) -> ZeroShotResult:
    """Zero-shot top-K accuracy of `model` on `dataset` with `templates` (see module docstring)."""
    started = time.perf_counter()
    device = torch.device(device)
    similarity = getattr(model, "similarity", "global")
    ensemble = resolve_ensemble(similarity, config.ensemble)
    classnames = dataset.classnames
    if log is not None:
        repeated = repeated_classnames(classnames)
        if repeated:
            log(f"zero-shot: class names given to several classes (cannot be told apart): {repeated}")
        log(f"zero-shot: encoding {len(classnames)} classes x {len(templates)} templates ({ensemble})")
    if similarity == "global":
        weights = class_weights_global(model, tokenizer, classnames, templates, device, config.text_batch_size)
    else:
        tokens, mask = prompt_tokens(model, tokenizer, classnames, templates, device, config.text_batch_size)
        scale = logit_scale_of(model)

    selected = evenly_spaced(len(dataset.gallery), config.max_images)
    n_images = len(selected)
    images = torch.utils.data.Subset(TransformedImages(dataset.gallery, transform), selected)
    loader = DataLoader(images, batch_size=config.image_batch_size, num_workers=config.num_workers)
    labels_all = torch.tensor([dataset.labels[i] for i in selected])
    ranks, done, last_log = [], 0, time.perf_counter()
    with evaluation_mode(model):
        for pixels in loader:
            pixels = pixels.to(device)
            if similarity == "global":
                scores = model.encode_image(pixels).float() @ weights.T
            else:
                scores = token_wise_class_scores(model.encode_image_tokens(pixels), tokens, mask,
                                                 len(classnames), ensemble, scale, config.prompt_chunk)
            labels = labels_all[done:done + len(pixels)].to(scores.device)
            ranks.append(label_ranks(scores, labels).cpu())
            done += len(pixels)
            if log is not None and (time.perf_counter() - last_log > 10 or done == n_images):
                log(f"zero-shot: {done}/{n_images} images")
                last_log = time.perf_counter()
    ranks_all = torch.cat(ranks)
    metrics = {f"top{k}": 100.0 * float((ranks_all <= k).double().mean()) for k in config.topk}
    per_class = []
    for label in range(len(classnames)):
        selected = ranks_all[labels_all == label]
        per_class.append(100.0 * float((selected <= 1).double().mean()) if len(selected) else None)
    return ZeroShotResult(metrics=metrics, per_class_top1=per_class, n_images=n_images,
                          n_classes=len(classnames), ensemble=ensemble, similarity=similarity,
                          n_templates=len(templates), chance=zero_shot_chance(len(classnames), config.topk),
                          seconds=time.perf_counter() - started, skipped=dataset.skipped)


def zero_shot_validate(model, tokenizer, transform, image_dir: str, classnames_file: str, device,
                       *, templates: Sequence[str] | None = None,
                       config: ZeroShotConfig = ZeroShotConfig()) -> dict:
    """Zero-shot accuracy on an image folder, for validation during training.

    `image_dir` has one sub-folder per class; `classnames_file` one Chinese name per line, in
    sorted folder order. Returns `{"top1": .., "top5": .., "n_images": .., "ensemble": .., ...}`
    (accuracies in percent). The model's train/eval mode is restored on return.
    """
    dataset = without_undecodable_images(load_image_folder(image_dir, read_classnames(classnames_file)))
    templates = tuple(templates) if templates is not None else chinese_templates()
    return classify(model, tokenizer, transform, dataset, templates, device, config).as_dict(per_class=False)
