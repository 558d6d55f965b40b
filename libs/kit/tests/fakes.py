"""Fakes at the I/O boundary for kit unit tests."""

from __future__ import annotations

from typing import Any


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

    async def update_many(self, query: dict[str, Any], update: dict[str, Any]) -> None:
        """``$pullAll`` from every document whose fields equal the query's."""
        for document in self.documents.values():
            if all(document.get(field) == value for field, value in query.items()):
                for field, elements in update["$pullAll"].items():
                    document[field] = [
                        item for item in document.get(field, []) if item not in elements
                    ]

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
