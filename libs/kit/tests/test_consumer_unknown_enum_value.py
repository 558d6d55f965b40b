"""A consumer on an older contracts model handles an event whose enum gained a value."""

import json
from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.documents import DocumentDeleted
from threadline.contracts.examples import example_event
from threadline.kit.consumer import EventRouter

from .fakes import InMemoryProcessedEvents, RecordingPublisher


async def test_unknown_reason_is_handled_not_dead_lettered() -> None:
    processed, dead = InMemoryProcessedEvents(), RecordingPublisher()
    router = EventRouter(
        service="unit", processed=processed, dead_letters=dead, max_attempts=1, backoff_seconds=0
    )
    reasons: list[str] = []

    async def handle(event: Envelope[Any]) -> None:
        reasons.append(event.data.reason)

    router.on(DocumentDeleted, handle)
    record = example_event(DocumentDeleted).model_dump(mode="json")
    record["data"]["reason"] = "retention_expired"

    await router.process(json.dumps(record).encode(), headers={}, source="t/0/1")

    assert reasons == ["retention_expired"]
    assert dead.records == []
    assert processed.ids == [record["id"]]
