"""Caption text as the shards store it."""

from __future__ import annotations

import html
import re
import unicodedata

_TAG = re.compile(r"<[^>]*>")


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace (any Unicode space) become one space; ends stripped."""
    return " ".join(text.split())


def normalise_caption(text: str) -> str:
    """DESIGN.md's normalised caption: Unicode NFKC, whitespace runs collapsed, stripped."""
    return collapse_whitespace(unicodedata.normalize("NFKC", text))


def strip_markup(text: str) -> str:
    """Remove HTML tags (Baidu marks the query with <strong>) and decode HTML entities."""
    return html.unescape(_TAG.sub("", text))
