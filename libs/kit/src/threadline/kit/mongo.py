"""MongoDB access through PyMongo's async API, portable to MongoDB-protocol servers.

Only the subset FerretDB also supports is used (see LOCAL_STACK.md): no transactions,
change streams, TTL or partial indexes relied upon. ``ensure_indexes`` creates what a
service declares at start-up and skips TTL options where the server refuses them —
expiry is always enforced in queries too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

__all__ = ["DUPLICATE_KEY", "IndexSpec", "connect", "ensure_indexes", "insert_new", "ping"]

DUPLICATE_KEY = 11000

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class IndexSpec:
    """One index a service needs: collection, key pattern and options."""

    collection: str
    keys: Sequence[tuple[str, int]]
    unique: bool = False
    name: str | None = None
    expire_after_seconds: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


def connect(
    url: str,
    *,
    app_name: str,
    timeout_seconds: float = 5.0,
    socket_timeout_seconds: float | None = None,
) -> AsyncMongoClient[dict[str, Any]]:
    """A client with timezone-aware datetimes (stored as UTC) and bounded waits: finding a
    reachable server and connecting take at most ``timeout_seconds``, one answer on an open
    connection at most ``socket_timeout_seconds`` (unbounded when None). An outage then
    surfaces as ``ServerSelectionTimeoutError`` / ``AutoReconnect`` / ``NetworkTimeout``,
    which the problem handlers answer with 503 (``threadline.kit.errors``)."""
    timeout_ms = int(timeout_seconds * 1000)
    socket_ms = None if socket_timeout_seconds is None else int(socket_timeout_seconds * 1000)
    return AsyncMongoClient(
        url,
        tz_aware=True,
        appname=app_name,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=socket_ms,
    )


async def ping(database: AsyncDatabase[dict[str, Any]]) -> bool:
    try:
        await database.command("ping")
    except Exception:  # any failure means "not ready"; the reason is logged
        _log.warning("mongodb ping failed", exc_info=True)
        return False
    return True


async def ensure_indexes(
    database: AsyncDatabase[dict[str, Any]], specs: Sequence[IndexSpec]
) -> None:
    """Create each index (idempotent). TTL is best effort: refused TTL → plain index."""
    for spec in specs:
        options: dict[str, Any] = {"unique": spec.unique, **spec.options}
        if spec.name:
            options["name"] = spec.name
        collection = database[spec.collection]
        if spec.expire_after_seconds is None:
            await collection.create_index(list(spec.keys), **options)
            continue
        try:
            await collection.create_index(
                list(spec.keys), expireAfterSeconds=spec.expire_after_seconds, **options
            )
        except OperationFailure:
            _log.info("server refused a TTL index; expiry is enforced by queries", index=spec)
            await collection.create_index(list(spec.keys), **options)


async def insert_new(
    collection: AsyncCollection[dict[str, Any]], documents: Sequence[dict[str, Any]]
) -> set[Any]:
    """Insert ``documents`` unordered, leaving alone those whose ``_id`` exists (a retried
    batch); returns the ids this call inserted. Any error but a duplicate id is raised."""
    if not documents:
        return set()
    try:
        await collection.insert_many(list(documents), ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        skipped = {error["index"] for error in errors}
        return {doc["_id"] for index, doc in enumerate(documents) if index not in skipped}
    return {document["_id"] for document in documents}
