"""Small shared pieces every service uses: the stored-document alias, time and ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

import uuid_utils

__all__ = ["Document", "derived_id", "new_id", "stored_precision", "utc_now"]

Document = dict[str, Any]
"""A MongoDB document as PyMongo reads and writes it."""


def utc_now() -> datetime:
    """Timezone-aware now in UTC (what the Mongo client stores and returns)."""
    return datetime.now(UTC)


def stored_precision(moment: datetime) -> datetime:
    """``moment`` cut to milliseconds, what MongoDB stores: a value answered from memory
    then equals the same value read back (e.g. a replayed request's answer)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def new_id() -> str:
    """A time-ordered UUIDv7 string: ids sort by creation time."""
    return str(UUID(bytes=uuid_utils.uuid7().bytes))


def derived_id(namespace: UUID, *parts: str) -> str:
    """A UUIDv5 string of ``parts`` in ``namespace``: doing the same thing again (a retried
    request, a resumed job) derives the same id, and the store's unique ``_id`` finds what
    the first try stored. A namespace must never change once ids were derived in it."""
    return str(uuid5(namespace, "\x1f".join(parts)))
