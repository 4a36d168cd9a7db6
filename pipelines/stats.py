"""The dataset's statistics (the paper's Table 2) and its word cloud.

Table 2: the number of pairs, the number of unique tokens, and tokens per caption (mean, std,
median), with jieba's tokens (rjieba computes them). Punctuation and whitespace are not tokens;
a masked name `<人名>` is one token. The accumulator is mergeable, so the Beam job computes it
with a combiner over the clean shards; the word cloud is drawn from its most frequent words.
"""

from __future__ import annotations

import collections
import math
import shutil
import subprocess
import unicodedata
from collections.abc import Iterable, Sequence

from filters import contract
from filters.contract import NAME_MASK
from filters.text import has_han, segment

TOP_WORDS = 300  # words kept for the word cloud


def caption_tokens(caption: str) -> list[str]:
    """jieba's tokens of a clean caption, without punctuation/whitespace; `<人名>` is one token."""
    tokens: list[str] = []
    for i, piece in enumerate((caption or "").split(NAME_MASK)):
        if i:
            tokens.append(NAME_MASK)
        tokens += [t for t in segment(piece) if _is_word(t)] if piece else []
    return tokens


def _is_word(token: str) -> bool:
    return any(unicodedata.category(c)[0] not in "PZSC" for c in token)


class CaptionStats:
    """Mergeable counts behind Table 2: captions, a histogram of tokens per caption, and the
    frequency of every token."""

    def __init__(self) -> None:
        self.pairs = 0
        self.names_masked = 0
        self.length_histogram: collections.Counter[int] = collections.Counter()
        self.token_counts: collections.Counter[str] = collections.Counter()

    def add(self, caption: str) -> "CaptionStats":
        tokens = caption_tokens(caption)
        self.pairs += 1
        self.names_masked += NAME_MASK in (caption or "")
        self.length_histogram[len(tokens)] += 1
        self.token_counts.update(tokens)
        return self

    def merge(self, other: "CaptionStats") -> "CaptionStats":
        self.pairs += other.pairs
        self.names_masked += other.names_masked
        self.length_histogram.update(other.length_histogram)
        self.token_counts.update(other.token_counts)
        return self

    @classmethod
    def of(cls, captions: Iterable[str]) -> "CaptionStats":
        stats = cls()
        for caption in captions:
            stats.add(caption)
        return stats

    def table(self) -> dict:
        """Table 2 as a dict, plus the top words for the word cloud."""
        n = self.pairs
        total = sum(k * v for k, v in self.length_histogram.items())
        mean = total / n if n else 0.0
        var = sum(v * (k - mean) ** 2 for k, v in self.length_histogram.items()) / n if n else 0.0
        words = collections.Counter({t: c for t, c in self.token_counts.items()
                                     if t != NAME_MASK and has_han(t) and len(t) >= 2})
        return {
            "pairs": n,
            "unique_tokens": len(self.token_counts),
            "tokens_per_caption": {"mean": round(mean, 4), "std": round(math.sqrt(var), 4),
                                   "median": _histogram_median(self.length_histogram, n)},
            "captions_with_masked_names": self.names_masked,
            # {tokens per caption: captions}, as [[n, count], ...] so that it survives JSON
            "length_histogram": sorted([n, c] for n, c in self.length_histogram.items()),
            "top_words": words.most_common(TOP_WORDS),
        }


def _histogram_median(histogram: collections.Counter[int], n: int) -> float:
    """The median of n values given as {value: count} (the mean of the middle two when n is even)."""
    if not n:
        return 0.0
    middle = [(n - 1) // 2, n // 2]
    values, seen = [], 0
    for value in sorted(histogram):
        count = histogram[value]
        for index in middle:
            if seen <= index < seen + count:
                values.append(value)
        seen += count
    return float(sum(values) / len(values))


# --------------------------------------------------------------------------------------------
# Word cloud
# --------------------------------------------------------------------------------------------


class FontNotFound(RuntimeError):
    """No font that can draw Chinese was given or found."""


def find_cjk_font() -> str | None:
    """A font file that covers Chinese, from fontconfig (`fc-list :lang=zh`), or None."""
    if shutil.which("fc-list") is None:
        return None
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
                                 timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    paths = sorted(line.split(":", 1)[0].strip() for line in listing.splitlines() if line.strip())
    # Prefer the fonts CI installs, then any TrueType/OpenType file.
    for preferred in ("wqy-microhei", "wqy-zenhei", "noto", "droid"):
        for path in paths:
            if preferred in path.lower():
                return path
    return paths[0] if paths else None


def draw_word_cloud(word_counts: Sequence[tuple[str, int]], path: str, font: str | None = None,
                    width: int = 1200, height: int = 800) -> str:
    """Draw the words as a PNG at `path` (written atomically) and return the font used.

    `font` is a font file; without it a CJK font is looked up with fontconfig. Raises
    FontNotFound (with what to do) when there is none, and ValueError when there are no words.
    """
    from wordcloud import WordCloud  # heavy (matplotlib); only the job's last step needs it

    font = font or find_cjk_font()
    if not font:
        raise FontNotFound("no font that can draw Chinese: pass --font PATH, or install one "
                           "(Debian/Ubuntu: apt-get install fonts-wqy-microhei)")
    frequencies = {word: count for word, count in word_counts if count > 0}
    if not frequencies:
        raise ValueError("no words to draw")
    cloud = WordCloud(font_path=font, width=width, height=height, background_color="white",
                      max_words=len(frequencies), prefer_horizontal=0.95, random_state=0)
    image = cloud.generate_from_frequencies(frequencies).to_image()
    with contract.atomic_output(path) as out:
        image.save(out, format="PNG")
    return font
