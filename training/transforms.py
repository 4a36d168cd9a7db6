"""The image transforms of a tower, from timm's data config for it.

Training: timm's RandomResizedCrop + flip + AutoAugment (policy `original`, as in the paper).
Evaluation: timm's resize + centre crop. Both normalise with the tower's mean and std.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torch import nn

#: The AutoAugment policy the paper names (timm's `original`).
AUTO_AUGMENT = "original"


def data_config(tower: nn.Module, image_size: int | None = None) -> dict:
    """timm's resolved data config (input size, interpolation, mean, std, crop) for the tower."""
    from timm.data import resolve_data_config  # noqa: PLC0415

    args = {"input_size": (3, image_size, image_size)} if image_size else {}
    return resolve_data_config(args, model=tower)


def image_transform(tower: nn.Module, training: bool, image_size: int | None = None,
                    auto_augment: str | None = AUTO_AUGMENT,
                    crop_scale: tuple[float, float] = (0.5, 1.0)) -> Callable:
    """PIL image -> float tensor [3, H, W] for `tower`.

    `crop_scale` is the RandomResizedCrop area range for training. timm's default (0.08, 1) is
    for classification; a caption describes the whole picture, so we keep at least half of it.
    """
    from timm.data import create_transform  # noqa: PLC0415

    cfg = data_config(tower, image_size)
    if not training:
        return create_transform(**cfg, is_training=False)
    return create_transform(input_size=cfg["input_size"], is_training=True, auto_augment=auto_augment,
                            interpolation=cfg["interpolation"], mean=cfg["mean"], std=cfg["std"],
                            scale=crop_scale)


def to_rgb(image: "Image.Image") -> "Image.Image":
    """Towers take RGB; palette, grey, CMYK and alpha images are converted first."""
    return image if image.mode == "RGB" else image.convert("RGB")


def stack(pixels: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(pixels, dim=0)
