"""Which stored files a browser may show inline: one rule for every producer and consumer.

A file is shown inline (M6) only when its media type is a raster image format that cannot
run script. Everything else — SVG, HTML, XHTML, XML, PDF (which can carry JavaScript), text,
archives, unknown types — is downloaded as an attachment, so no uploaded file ever runs in
the portal's origin.
"""

from __future__ import annotations

__all__ = ["INLINE_SAFE_TYPES", "is_inline_safe"]

INLINE_SAFE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}
)


def is_inline_safe(content_type: str) -> bool:
    """True when a file of ``content_type`` may be displayed inline (parameters ignored)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in INLINE_SAFE_TYPES
