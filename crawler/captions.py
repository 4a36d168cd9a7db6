"""Caption text as search engines give it: markup stripped, whitespace collapsed.

The normalised form stored in `caption` is `filters.text.normalise_caption` (docs/design.md).
"""

from __future__ import annotations

import html
import re

_TAG = re.compile(r"<[^>]*>")


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace (any Unicode space) become one space; ends stripped."""
    return " ".join(text.split())


def strip_markup(text: str) -> str:
    """Remove HTML tags (Baidu marks the query with <strong>) and decode HTML entities."""
    return html.unescape(_TAG.sub("", text))
