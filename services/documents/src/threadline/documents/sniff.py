"""Content type from the bytes (M4), never from the client's ``Content-Type``.

``puremagic`` matches signatures; several formats share one (a ``.docx`` is a zip), so the
file name's extension only picks among the types the bytes already allow (a name can never
turn a PDF into an image), and without a matching name a zip is a plain zip. Bytes that no
signature matches are ``text/plain`` when they are UTF-8 without NULs,
``application/octet-stream`` otherwise.
"""

from __future__ import annotations

import codecs
import os

import puremagic

__all__ = ["SNIFF_BYTES", "ZIP", "sniff_content_type"]

SNIFF_BYTES = 8192
ZIP = "application/zip"
_OCTET_STREAM = "application/octet-stream"
_TEXT = "text/plain; charset=utf-8"


def sniff_content_type(head: bytes, filename: str) -> str:
    """The media type of a file whose first bytes (up to ``SNIFF_BYTES``) are ``head``."""
    if not head:
        return _OCTET_STREAM
    try:
        candidates = [match for match in puremagic.magic_string(head) if match.mime_type]
    except (puremagic.PureError, ValueError):
        candidates = []
    if candidates:
        extension = os.path.splitext(filename)[1].lower()
        named = next((m for m in candidates if m.extension.lower() == extension), None)
        generic = next((m for m in candidates if m.mime_type == ZIP), None)
        return str((named or generic or candidates[0]).mime_type)
    return _TEXT if _looks_like_text(head) else _OCTET_STREAM


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)  # a multi-byte character may be cut at the end
    except UnicodeDecodeError:
        return False
    return True
