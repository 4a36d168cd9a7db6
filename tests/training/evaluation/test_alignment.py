"""Word-patch alignment maps: the argmax per patch over the text tokens that take part, drawn as PNG."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from training.evaluation.alignment import (
    AlignmentMap,
    displayed_image,
    draw_alignment,
    find_cjk_font,
    patch_grid,
    save_alignment,
    word_patch_alignment,
)
from training.model import LiTConfig, LiTModel
from training.tokenizer import default_tokenizer


class FixedTokenizer:
    def __call__(self, texts):
        return torch.tensor([[101, 7, 8, 9, 102, 0]]), torch.tensor([[1, 1, 1, 1, 1, 0]])

    def tokens(self, text):
        return ["[CLS]", "红", "色", "猫", "[SEP]"]


class FixedModel(torch.nn.Module):
    """Four patches (2 x 2) and six text positions with chosen unit vectors."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        e = torch.eye(4)
        self.patches = torch.stack([e[0], e[1], e[2], 0.6 * e[0] + 0.8 * e[3]])
        # Positions 0 ([CLS]) and 5 (padding) are masked, yet each equals a patch exactly (score 1).
        self.text = torch.stack([e[2], e[0], e[1], 0.6 * e[2] + 0.8 * e[1], e[3], 0.6 * e[0] + 0.8 * e[3]])

    def encode_image_tokens(self, pixels):
        return self.patches[None].repeat(len(pixels), 1, 1)

    def encode_text_tokens(self, ids, attention):
        mask = attention.bool().clone()
        mask[:, 0] = False
        return self.text[None].repeat(len(ids), 1, 1), mask


def test_each_patch_takes_its_best_participating_token():
    alignment = word_patch_alignment(FixedModel(), FixedTokenizer(), torch.zeros(3, 8, 8), "红色猫")
    # patch 0 -> 红 (1); patch 1 -> 色 (2: 1.0, ahead of 猫's 0.8); patch 2 -> 猫 (3: 0.6, [CLS] would
    # give 1.0 but takes no part); patch 3 -> [SEP] (4: 0.8, ahead of 红's 0.6; padding would give 1.0).
    assert alignment.token_of_patch.tolist() == [[1, 2], [3, 4]]
    assert alignment.positions == [1, 2, 3, 4]
    assert np.allclose(alignment.score_of_patch, [[1.0, 1.0], [0.6, 0.8]], atol=1e-6)
    assert alignment.as_dict()["tokens"] == {"1": "红", "2": "色", "3": "猫", "4": "[SEP]"}


def test_patch_grid():
    assert patch_grid(49) == (7, 7)
    assert patch_grid(12, (3, 4)) == (3, 4)
    with pytest.raises(ValueError, match="not a square"):
        patch_grid(12)
    with pytest.raises(ValueError, match="does not hold"):
        patch_grid(12, (3, 3))


def test_displayed_image_undoes_the_normalisation():
    from torchvision import transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))])
    shown = displayed_image(transform, transform(Image.new("RGB", (10, 8), (200, 30, 90))))
    assert shown.size == (10, 8)
    assert all(abs(a - b) <= 1 for a, b in zip(shown.getpixel((4, 4)), (200, 30, 90)))


def test_draw_alignment_png(tmp_path):
    alignment = AlignmentMap(text="红色猫", tokens=["[CLS]", "红", "色", "猫", "[SEP]"], positions=[1, 2, 3, 4],
                             token_of_patch=np.array([[1, 2, 2], [3, 3, 4]]),
                             score_of_patch=np.zeros((2, 3)))
    path = draw_alignment(Image.new("RGB", (60, 40), "white"), alignment, str(tmp_path / "maps" / "a.png"))
    with Image.open(path) as drawn:
        assert drawn.format == "PNG"
        assert drawn.width == 360 and drawn.height > 240  # the image (scaled to 360 x 240) + legend
        # The cell of token 1 (top left) is tinted with token 1's colour, unlike token 4's (bottom right).
        assert drawn.getpixel((3, 3)) != drawn.getpixel((357, 237))


def test_a_cjk_font_is_found_when_installed():
    font = find_cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei)")
    from PIL import ImageFont

    assert ImageFont.truetype(font, 20).getbbox("猫")[2] > 10


def test_token_reducer_models_are_refused():
    model = LiTModel(LiTConfig.tiny(similarity="token_wise", token_reducer_tokens=3))
    with pytest.raises(ValueError, match="no place in the image"):
        word_patch_alignment(model, default_tokenizer(), torch.zeros(3, 64, 64), "猫")


def test_save_alignment_writes_the_png_and_its_json_sidecar(tmp_path):
    alignment = AlignmentMap(text="红色猫", tokens=["[CLS]", "红", "色", "猫", "[SEP]"], positions=[1, 2, 3, 4],
                             token_of_patch=np.array([[1, 2], [3, 4]]), score_of_patch=np.full((2, 2), 0.5))
    png, sidecar = save_alignment(Image.new("RGB", (32, 32), "white"), alignment, str(tmp_path / "maps" / "m.png"))
    assert sorted(os.listdir(tmp_path / "maps")) == ["m.json", "m.png"]  # no temporaries left
    assert json.loads(open(sidecar, encoding="utf-8").read())["tokens"] == {"1": "红", "2": "色", "3": "猫", "4": "[SEP]"}
    with Image.open(png) as drawn:
        assert drawn.format == "PNG"
