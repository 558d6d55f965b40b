"""Request-model building blocks every service uses, so each input is bounded and typed.

- ``RequestModel``: unknown fields refused, no coercion (``"internal": "yes"`` or ``1`` is
  not a boolean, ``true`` is not a number).
- ``SingleLine`` / ``Multiline``: plain-text fields without NUL or other control
  characters. Plain text is stored and returned as text: ``<`` and ``>`` stay as they are,
  and whatever renders it (e-mail, a web page) escapes it.
- ``Int64Query``: integer query parameters within a signed 64-bit range (storage's), so
  an oversized cursor is a 422 and never an overflow.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "MAX_INT64",
    "Identifier",
    "Multiline",
    "NonNegativeInt64Query",
    "RequestModel",
    "SingleLine",
    "has_control_characters",
]

MAX_INT64 = 2**63 - 1
_ALLOWED_IN_MULTILINE = frozenset("\n\t")


class RequestModel(BaseModel):
    """Base of every JSON request body: strict types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


def has_control_characters(text: str, *, allowed: frozenset[str] = frozenset()) -> bool:
    """True when ``text`` holds a control (Cc) or format-control (Cf, e.g. bidi override)
    character outside ``allowed``."""
    return any(unicodedata.category(char) in {"Cc", "Cf"} and char not in allowed for char in text)


def _single_line(text: str) -> str:
    if has_control_characters(text):
        raise ValueError("must not contain control characters (NUL, line breaks, …)")
    return text


def _multiline(text: str) -> str:
    if has_control_characters(text, allowed=_ALLOWED_IN_MULTILINE):
        raise ValueError("must not contain control characters other than line breaks and tabs")
    return text


SingleLine = AfterValidator(_single_line)
"""One line of plain text: ``Annotated[str, Field(max_length=…), SingleLine]``."""
Multiline = AfterValidator(_multiline)
"""Marks a text field as plain text that may hold line breaks and tabs (task text, notes)."""
Identifier = Annotated[str, Field(min_length=1, max_length=200), SingleLine]
"""An id in a request body (thread, message, contact, staff, job…)."""
NonNegativeInt64Query = Annotated[int | None, Query(ge=0, le=MAX_INT64)]
