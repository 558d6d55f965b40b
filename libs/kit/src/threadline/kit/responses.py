"""Pieces the services' typed response models share.

Response shapes are ``TypedDict``s (the views build plain dicts; a key that is absent for
some callers is ``NotRequired``) checked by mypy where they are built and by FastAPI, which
renders them as response schemas in each service's OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, PlainSerializer, WithJsonSchema

__all__ = ["RESPONSE_CONFIG", "Timestamp"]

#: A response carrying a key its model does not declare is a bug, not something to drop.
RESPONSE_CONFIG = ConfigDict(extra="forbid")

Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A point in time rendered as ``datetime.isoformat()`` (``+00:00``, as the API always has)."""
