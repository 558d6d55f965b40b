"""Links inside plain text (K1 task texts): found once, here, for every service.

Plain text stays plain: the raw text is always kept and returned as typed. Links are only
*recognised* — ``http``/``https`` URLs with a host and ``mailto:`` addresses — and handed
out as separate segments (the tasks API) or rendered as escaped ``<a>`` elements (messaging's
task messages). Anything else that looks like a scheme (``javascript:``, ``data:``, ``file:``)
stays text, so a link can never run code when clicked.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["LINK_SCHEMES", "TextSegment", "link_segments", "text_to_html"]

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_CANDIDATE = re.compile(r"(?:https?://|mailto:)[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\""
_MAX_LINK_CHARS = 2048


@dataclass(frozen=True)
class TextSegment:
    """A run of the text; ``href`` is set when the run is a safe link."""

    text: str
    href: str | None = None


def _trim(candidate: str) -> str:
    """Drop trailing punctuation and a closing bracket the link did not open ("(see x)")."""
    while candidate:
        last = candidate[-1]
        unopened = last == ")" and candidate.count("(") < candidate.count(")")
        if last not in _TRAILING and not unopened:
            break
        candidate = candidate[:-1]
    return candidate


def _safe_href(candidate: str) -> str | None:
    if len(candidate) > _MAX_LINK_CHARS:
        return None
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in LINK_SCHEMES:
        return None
    if scheme in {"http", "https"} and not parts.hostname:
        return None
    if scheme == "mailto" and "@" not in parts.path:
        return None
    return candidate


def link_segments(text: str) -> list[TextSegment]:
    """``text`` cut into plain runs and safe links; joining the runs gives ``text`` back."""
    segments: list[TextSegment] = []
    position = 0
    for match in _CANDIDATE.finditer(text):
        candidate = _trim(match.group(0))
        href = _safe_href(candidate)
        if href is None:
            continue
        start, end = match.start(), match.start() + len(candidate)
        if start > position:
            segments.append(TextSegment(text[position:start]))
        segments.append(TextSegment(candidate, href))
        position = end
    if position < len(text):
        segments.append(TextSegment(text[position:]))
    return segments


def text_to_html(text: str) -> str:
    """Escaped HTML of ``text`` with its safe links as ``<a href>`` (no other markup)."""
    return "".join(
        f'<a href="{html.escape(segment.href, quote=True)}">{html.escape(segment.text)}</a>'
        if segment.href
        else html.escape(segment.text)
        for segment in link_segments(text)
    )
