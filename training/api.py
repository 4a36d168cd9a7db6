"""The loading API: find a run's checkpoint, load it, and score images against texts.

    from training.api import load_model
    m = load_model("runs/train")                 # best.pt if validated, else the newest checkpoint
    sims = m.similarity(images, ["一只猫", "两个红色圆形"])   # [N_img, N_txt]

`similarity` uses the model's own similarity: cosine of global features, or FILIP's token-wise
image->text score for token-wise models.

Checkpoints are read here, in the library, because evaluation and notebooks load them without the
trainer; the trainer writes them (`training.trainer.checkpoint`) under the names of
`filters.contract.layout`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from filters.contract.layout import BEST_CHECKPOINT, CHECKPOINT_DIR, checkpoint_step
from training.loss import token_wise_i2t
from training.model import LiTConfig, LiTModel
from training.tokenizer import ChineseTokenizer, load_tokenizer
from training.transforms import image_transform, to_rgb


def step_checkpoints(directory: str) -> list[tuple[int, str]]:
    """(step, path) of the step checkpoints in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        step = checkpoint_step(name)
        if step is not None:
            found.append((step, os.path.join(directory, name)))
    return sorted(found)


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file as is; a training output directory (or its checkpoints/ folder) gives its
    best.pt if any, else its newest step checkpoint. FileNotFoundError when there is none."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint file or training directory at {path}")
    for directory in (os.path.join(path, CHECKPOINT_DIR), path):
        best = os.path.join(directory, BEST_CHECKPOINT)
        if os.path.isfile(best):
            return best
        found = step_checkpoints(directory)
        if found:
            return found[-1][1]
    raise FileNotFoundError(f"{path} holds no checkpoint (looked for {BEST_CHECKPOINT} and step-*.pt)")


#: The key under which a checkpoint holds the digest of its own contents (`content_digest`).
DIGEST_KEY = "digest"


class CheckpointError(ValueError):
    """A checkpoint file that does not load: empty, truncated, corrupt, or not a checkpoint."""


def content_digest(state: Any) -> str:
    """A SHA-256 over every tensor's and array's bytes and every plain value (numbers, strings)
    of a checkpoint dict, without its own digest, in a fixed order.

    torch.save's zip archive has no checksum that torch.load verifies: a flipped byte in a tensor
    loads as a different weight. The digest, saved with the checkpoint, makes that a load error."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, np.ndarray):
            digest.update(f"A{value.dtype}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, dict):
            keys = sorted((k for k in value if not (value is state and k == DIGEST_KEY)), key=repr)
            digest.update(f"D{len(keys)}".encode())
            for key in keys:
                digest.update(repr(key).encode())
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"L{len(value)}".encode())
            for item in value:
                feed(item)
        elif value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
            digest.update(f"V{value!r}".encode())
        else:  # an object whose repr may hold its address: its type is all that is stable
            digest.update(f"O{type(value).__qualname__}".encode())

    feed(state)
    return digest.hexdigest()


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint dict. Ours hold RNG states and plain Python values, hence weights_only=False:
    load only checkpoints you trust.

    CheckpointError, naming the file and the reason, when it does not load: an empty or truncated
    file, bytes that are not a checkpoint, or contents that no longer match the digest they were
    saved with (a checkpoint without a digest, from an older version, is taken as it is).
    """
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - unpickling damaged bytes can raise anything; all mean "unreadable"
        raise CheckpointError(f"{path}: not a readable checkpoint, empty, truncated or corrupt "
                              f"({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(state).__name__}, not a dict)")
    saved = state.get(DIGEST_KEY)
    if saved is not None and saved != content_digest(state):
        raise CheckpointError(f"{path}: corrupt, its contents do not match the digest saved with them")
    return state


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
    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    model = model_from_checkpoint(state, device)
    config = {"model": dict(state["model_config"]), "train": dict(state.get("train_config", {})),
              "checkpoint": path, "step": state.get("step")}
    tokenizer = load_tokenizer(state.get("tokenizer"), model.config.context_length)
    transform = image_transform(model.image_tower, training=False, image_size=model.config.image_size)
    return LoadedModel(model=model, tokenizer=tokenizer, transform=transform, config=config,
                       device=torch.device(device))
