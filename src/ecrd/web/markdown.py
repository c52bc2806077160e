"""Catalog text (about, usage) as HTML that cannot carry script.

markdown-it with raw HTML off escapes any tag in the text, and its link check refuses
`javascript:`, `vbscript:`, `file:` and non-image `data:` URLs, leaving them as plain text.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

_RENDERER = MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")


def render(text: str | None) -> Markup:
    return Markup(_RENDERER.render(text or ""))  # noqa: S704 - escaped by the renderer
