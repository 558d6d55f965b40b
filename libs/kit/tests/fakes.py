"""Fakes at the I/O boundary for kit unit tests."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar


class RecordingPublisher:
    """Collects published records; can be told to fail like a broker that is down."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.failing = False

    async def publish_record(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> None:
        if self.failing:
            raise ConnectionError("broker unavailable")
        self.records.append({"topic": topic, "key": key, "value": value, "headers": headers})


class InMemoryProcessedEvents:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def seen(self, event_id: str) -> bool:
        return event_id in self.ids

    async def mark(self, event_id: str, event_type: str) -> None:
        if event_id not in self.ids:
            self.ids.append(event_id)


class InMemoryOutboxCollection:
    """The slice of an AsyncCollection the outbox uses: insert, find by created_ms, and
    ``$pull`` / ``$pullAll`` of exact elements (by ``_id``, or by an equality filter)."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.documents: dict[Any, dict[str, Any]] = {}

    async def insert_one(self, document: dict[str, Any]) -> None:
        self.documents[document["_id"]] = document

    async def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> None:
        document = self.documents[query["_id"]]
        for field, element in update.get("$pull", {}).items():
            document[field] = [item for item in document.get(field, []) if item != element]
        for field, elements in update.get("$pullAll", {}).items():
            document[field] = [item for item in document.get(field, []) if item not in elements]

    def find(self, query: dict[str, Any], projection: dict[str, Any]) -> Any:
        cutoff = float("inf") if "_outbox.0" in query else query["_outbox.created_ms"]["$lt"]
        matching = [
            doc
            for doc in self.documents.values()
            if any(entry["created_ms"] < cutoff for entry in doc.get("_outbox", []))
        ]

        async def iterate() -> Any:
            for doc in matching:
                yield doc

        return iterate()


class FlatFilterCollection:
    """An in-memory collection for work items that accepts only what FerretDB pushes down
    and the kit's per-item claims use: flat filters (top-level fields, equality or one of
    ``$lte`` ``$gt`` ``$in``), ``$set``/``$inc`` updates, sorted and limited finds."""

    _OPERATORS: ClassVar[dict[str, Callable[[Any, Any], bool]]] = {
        "$lte": lambda value, bound: value is not None and value <= bound,
        "$gt": lambda value, bound: value is not None and value > bound,
        "$in": lambda value, options: value in options,
    }

    def __init__(self) -> None:
        self.documents: dict[Any, dict[str, Any]] = {}

    def _matches(self, document: dict[str, Any], query: dict[str, Any]) -> bool:
        for field, condition in query.items():
            assert not field.startswith("$"), f"not a flat filter: {query}"
            value = document.get(field)
            if isinstance(condition, dict):
                for operator, operand in condition.items():
                    if not self._OPERATORS[operator](value, operand):
                        return False
            elif value != condition:
                return False
        return True

    def _apply(self, document: dict[str, Any], update: dict[str, Any]) -> None:
        assert set(update) <= {"$set", "$inc"}, f"unexpected update: {update}"
        document.update(update.get("$set", {}))
        for field, step in update.get("$inc", {}).items():
            document[field] = document.get(field, 0) + step

    async def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> Any:
        found = [d for d in self.documents.values() if self._matches(d, query)][:1]
        for document in found:
            self._apply(document, update)
        return SimpleNamespace(matched_count=len(found), modified_count=len(found))

    async def update_many(self, query: dict[str, Any], update: dict[str, Any]) -> Any:
        found = [d for d in self.documents.values() if self._matches(d, query)]
        for document in found:
            self._apply(document, update)
        return SimpleNamespace(matched_count=len(found), modified_count=len(found))

    async def delete_one(self, query: dict[str, Any]) -> Any:
        found = [d for d in self.documents.values() if self._matches(d, query)][:1]
        for document in found:
            del self.documents[document["_id"]]
        return SimpleNamespace(deleted_count=len(found))

    def find(self, query: dict[str, Any], projection: dict[str, Any] | None = None) -> Any:
        found = [
            {k: v for k, v in d.items() if projection is None or k in projection}
            for d in self.documents.values()
            if self._matches(d, query)
        ]
        return _Cursor(found)


class _Cursor:
    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self._documents = documents

    def sort(self, field: str, direction: int) -> _Cursor:
        self._documents.sort(key=lambda d: d[field], reverse=direction < 0)
        return self

    def limit(self, count: int) -> _Cursor:
        self._documents = self._documents[:count]
        return self

    async def to_list(self) -> list[dict[str, Any]]:
        return self._documents
