"""The small public API for notebooks: load a trained model and score images against texts.

    from training.api import load_model
    m = load_model("runs/train")                 # best.pt if validated, else the newest checkpoint
    sims = m.similarity(images, ["一只猫", "两个红色圆形"])   # [N_img, N_txt]

`similarity` uses the model's own similarity: cosine of global features, or FILIP's token-wise
image->text score for token-wise models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from PIL import Image

from training import checkpoint as ckpt
from training.loss import token_wise_i2t
from training.model import LiTConfig, LiTModel
from training.tokenizer import ChineseTokenizer, load_tokenizer
from training.transforms import image_transform, to_rgb


@dataclasses.dataclass
class LoadedModel:
    """A model in eval mode with its tokenizer and eval image transform."""

    model: LiTModel
    tokenizer: ChineseTokenizer
    transform: Callable[[Image.Image], torch.Tensor]
    config: dict
    device: torch.device

    def _pixels(self, images: list[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(to_rgb(im)) for im in images]).to(self.device)

    def _tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenizer(list(texts))
        return ids.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def encode_image(self, images: list[Image.Image]) -> torch.Tensor:
        """L2-normalised global image features [N, D]."""
        return self.model.encode_image(self._pixels(images))

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised global text features [N, D]."""
        return self.model.encode_text(*self._tokens(texts))

    @torch.no_grad()
    def similarity(self, images: list[Image.Image], texts: list[str]) -> torch.Tensor:
        """[N_img, N_txt] scores: cosine (global) or token-wise image->text (token-wise models)."""
        if self.model.similarity == "global":
            return self.encode_image(images) @ self.encode_text(texts).t()
        image_tokens = self.model.encode_image_tokens(self._pixels(images))
        text_tokens, mask = self.model.encode_text_tokens(*self._tokens(texts))
        return token_wise_i2t(image_tokens, text_tokens, mask)


def model_from_checkpoint(state: dict, device: str | torch.device = "cpu") -> LiTModel:
    """Rebuild the model of a loaded checkpoint dict. The tower's weights come from the checkpoint,
    so nothing is downloaded."""
    values = dict(state["model_config"])
    values.update(image_pretrained=False, image_weights=None)
    model = LiTModel(LiTConfig.from_dict(values))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def load_model(checkpoint: str, device: str = "cpu") -> LoadedModel:
    """Load a checkpoint file, or a training output dir (its best checkpoint if any, else the latest)."""
    path = ckpt.resolve_checkpoint(checkpoint)
    state = ckpt.load(path)
    model = model_from_checkpoint(state, device)
    config = {"model": dict(state["model_config"]), "train": dict(state.get("train_config", {})),
              "checkpoint": path, "step": state.get("step")}
    tokenizer = load_tokenizer(state.get("tokenizer"), model.config.context_length)
    transform = image_transform(model.image_tower, training=False, image_size=model.config.image_size)
    return LoadedModel(model=model, tokenizer=tokenizer, transform=transform, config=config,
                       device=torch.device(device))
