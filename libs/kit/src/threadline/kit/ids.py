"""Small shared pieces every service uses: the stored-document alias, time and ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

import uuid_utils

__all__ = [
    "Document",
    "derived_event_id",
    "derived_id",
    "new_id",
    "stored_precision",
    "utc_now",
]

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


_MS_MASK = (1 << 48) - 1
_HASH_BITS = 42


def derived_event_id(at: datetime, sequence: int, namespace: UUID, *parts: str) -> UUID:
    """A UUIDv7 derived, not drawn: its time is ``at`` (to the millisecond), the next 32
    bits are ``sequence`` and the last 42 a hash of ``parts`` in ``namespace``. Doing the
    same work again (a redone bulk batch) derives the same event ids, which consumers
    deduplicate; and ids of one piece of work sort by ``sequence`` as UUIDv7 ids sort by
    creation (the order events are sorted in wherever they are ordered by id)."""
    if not 0 <= sequence < 1 << 32:
        raise ValueError("sequence must fit in 32 bits")
    digest = uuid5(namespace, "\x1f".join(parts)).int & ((1 << _HASH_BITS) - 1)
    milliseconds = int(at.timestamp() * 1000) & _MS_MASK
    value = (
        milliseconds << 80
        | 0x7 << 76  # version 7
        | (sequence >> 20) << 64
        | 0b10 << 62  # RFC 9562 variant
        | (sequence & 0xFFFFF) << _HASH_BITS
        | digest
    )
    return UUID(int=value)
