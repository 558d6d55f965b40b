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
