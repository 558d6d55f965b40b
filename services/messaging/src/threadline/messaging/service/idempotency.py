"""Ids derived from what a request or job names, so that doing it again finds what the first
try stored instead of storing it twice (bulk jobs, posts with an ``Idempotency-Key``)."""

from __future__ import annotations

import uuid

from threadline.kit.errors import Conflict
from threadline.kit.ids import derived_id as kit_derived_id
from threadline.messaging.domain import MessagingError

__all__ = ["IdempotencyConflict", "derived_id"]

_IDS = uuid.UUID("5c0a3f0e-6d1b-4a8e-9a51-3b7f4d1c2e90")
"""Namespace of derived ids. Never change it: a job resumed, or a request retried, after a
deploy must derive the same ids as before."""


class IdempotencyConflict(MessagingError, Conflict):
    pass


def derived_id(*parts: str) -> str:
    return kit_derived_id(_IDS, *parts)
