"""Word-patch alignment maps (the paper's Figure 4).

For an image and a Chinese prompt (e.g. `一张{类名}的照片。`), each image patch token is matched to
the text token it is most similar to (the argmax of the token-wise similarity over the text tokens
that take part in it: [CLS] and padding excluded, exactly the model's text mask). The result is a
grid of token positions, drawn over the image the model saw (after the eval transform) and saved as
a PNG, with a legend from position to token.

Positions count from [CLS] = 0, so the first character of the prompt is 1, as in the paper.
Drawing Chinese needs a CJK font: we look for one (WenQuanYi, Noto CJK, Source Han...; on
Debian/Ubuntu `apt-get install fonts-wqy-microhei`) and fall back to Pillow's default font, which
draws the position numbers but shows the Chinese tokens as boxes; the JSON beside the PNG always
has the tokens as text.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from filters import contract
from training.evaluation.embeddings import evaluation_mode

#: Fonts with CJK glyphs, tried in order when fontconfig is not available.
CJK_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/source-han-sans/SourceHanSansCN-Regular.otf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)
_PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
]


@dataclass(frozen=True)
class AlignmentMap:
    """Which text token each image patch matches best."""

    text: str
    tokens: list[str]  # the prompt's tokens by position, [CLS] = 0 ... [SEP]
    positions: list[int]  # the positions that take part (the model's text mask)
    token_of_patch: np.ndarray  # [rows, cols] int: the best-matching token position per patch
    score_of_patch: np.ndarray  # [rows, cols] float: that token's cosine similarity

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "tokens": {str(p): self.tokens[p] for p in self.positions},
            "grid": list(self.token_of_patch.shape),
            "token_of_patch": self.token_of_patch.tolist(),
            "score_of_patch": np.round(self.score_of_patch, 4).tolist(),
        }


def patch_grid(n_tokens: int, grid: tuple[int, int] | None = None) -> tuple[int, int]:
    """The (rows, cols) of the image's token grid: given, or the square that holds `n_tokens`."""
    if grid is not None:
        if grid[0] * grid[1] != n_tokens:
            raise ValueError(f"a {grid[0]}x{grid[1]} grid does not hold {n_tokens} image tokens")
        return grid
    side = math.isqrt(n_tokens)
    if side * side != n_tokens:
        raise ValueError(
            f"{n_tokens} image tokens are not a square grid (a token reducer's tokens have no "
            "position); pass the grid explicitly"
        )
    return side, side


def word_patch_alignment(model, tokenizer, pixels: torch.Tensor, text: str,
                         grid: tuple[int, int] | None = None) -> AlignmentMap:
    """Align the patches of one transformed image `[3, H, W]` with the tokens of `text`."""
    if getattr(getattr(model, "config", None), "token_reducer_tokens", 0):
        raise ValueError("the model reduces its image tokens to a few learned mixtures, which have "
                         "no place in the image; alignment maps need patch tokens")
    device = next(model.parameters()).device
    ids, attention = tokenizer([text])
    with evaluation_mode(model):
        image_tokens = model.encode_image_tokens(pixels[None].to(device))[0].float()  # [P, D]
        text_tokens, mask = model.encode_text_tokens(ids.to(device), attention.to(device))
    text_tokens, mask = text_tokens[0].float(), mask[0].bool()
    positions = mask.nonzero().flatten().tolist()
    if not positions:
        raise ValueError(f"the text {text!r} has no token to align with")
    similarity = image_tokens @ text_tokens.T  # [P, L]
    similarity[:, ~mask] = -math.inf
    best = similarity.max(dim=1)
    rows, cols = patch_grid(image_tokens.shape[0], grid)
    # ChineseTokenizer.tokens gives the tokens of the attended positions, [CLS] first.
    names = tokenizer.tokens(text) if hasattr(tokenizer, "tokens") else [str(int(i)) for i in ids[0]]
    return AlignmentMap(
        text=text,
        tokens=names,
        positions=positions,
        token_of_patch=best.indices.view(rows, cols).cpu().numpy(),
        score_of_patch=best.values.view(rows, cols).cpu().numpy(),
    )


def _normalisation(transform: Callable) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The mean and std of the transform's Normalize step, if it has one."""
    for step in getattr(transform, "transforms", [transform]):
        if hasattr(step, "mean") and hasattr(step, "std"):
            return torch.as_tensor(step.mean).float(), torch.as_tensor(step.std).float()
    return None


def displayed_image(transform: Callable, pixels: torch.Tensor) -> Image.Image:
    """The picture the model saw: the transformed tensor with the normalisation undone."""
    pixels = pixels.detach().float().cpu()
    normalisation = _normalisation(transform)
    if normalisation is not None:
        mean, std = normalisation
        pixels = pixels * std.view(-1, 1, 1) + mean.view(-1, 1, 1)
    else:  # unknown normalisation: stretch to the visible range
        pixels = (pixels - pixels.min()) / (pixels.max() - pixels.min() + 1e-8)
    array = (pixels.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def find_cjk_font() -> str | None:
    """A font file with CJK glyphs, or None."""
    if shutil.which("fc-match"):
        try:
            found = subprocess.run(["fc-match", "-f", "%{file}", ":lang=zh"], capture_output=True,
                                   text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            found = ""
        if found and os.path.isfile(found) and "DejaVu" not in found:
            return found
    return next((p for p in CJK_FONT_CANDIDATES if os.path.isfile(p)), None)


def _font(size: int) -> ImageFont.ImageFont:
    path = find_cjk_font()
    if path is not None:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def draw_alignment(image: Image.Image, alignment: AlignmentMap, path: str, cell_pixels: int = 56) -> str:
    """Draw the token position of every patch over `image` and save a PNG at `path`."""
    rows, cols = alignment.token_of_patch.shape
    # At least 360 px wide, so that the legend under a small (e.g. 64 px) image stays readable.
    width = max(image.width, cols * cell_pixels, 360)
    height = round(width * image.height / image.width)
    canvas_image = image.convert("RGB").resize((width, height), Image.BICUBIC)
    font = _font(max(12, min(width // cols, height // rows) // 3))
    legend_font = _font(18)
    legend_lines = [alignment.text] + [f"{p}: {alignment.tokens[p]}" for p in alignment.positions]
    line_height = 26
    columns_of_legend = max(1, width // 140)
    legend_rows = 1 + math.ceil((len(legend_lines) - 1) / columns_of_legend)
    canvas = Image.new("RGB", (width, height + 10 + legend_rows * line_height), "white")
    canvas.paste(canvas_image, (0, 0))
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    colour_of = {p: _PALETTE[i % len(_PALETTE)] for i, p in enumerate(alignment.positions)}
    for r in range(rows):
        for c in range(cols):
            box = (c * width / cols, r * height / rows, (c + 1) * width / cols, (r + 1) * height / rows)
            position = int(alignment.token_of_patch[r, c])
            draw.rectangle(box, fill=(*colour_of[position], 70), outline=(255, 255, 255, 200))
            label = str(position)
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            draw.text(centre, label, font=font, fill=(255, 255, 255, 255), anchor="mm",
                      stroke_width=2, stroke_fill=(*colour_of[position], 255))
    canvas = Image.alpha_composite(canvas.convert("RGBA"), overlay)
    draw = ImageDraw.Draw(canvas)
    y = height + 5
    draw.text((5, y), legend_lines[0], font=legend_font, fill=(0, 0, 0, 255))
    for i, position in enumerate(alignment.positions):
        x = 5 + (i % columns_of_legend) * 140
        line_y = y + line_height * (1 + i // columns_of_legend)
        draw.text((x, line_y), f"{position}: {alignment.tokens[position]}", font=legend_font,
                  fill=(*colour_of[position], 255))
    with contract.atomic_output(path) as out:
        canvas.convert("RGB").save(out, format="PNG")
    return path


def save_alignment(image: Image.Image, alignment: AlignmentMap, png_path: str) -> tuple[str, str]:
    """The PNG and, beside it, a JSON of the same map (tokens as text, grid, scores)."""
    draw_alignment(image, alignment, png_path)
    json_path = os.path.splitext(png_path)[0] + ".json"
    contract.write_json(json_path, alignment.as_dict(), indent=1)
    return png_path, json_path
