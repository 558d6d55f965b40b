"""The publisher puts the installation's topic prefix before the catalogue's topic names;
``publish_in_key_order`` keeps one key's order and waits for every acknowledgement."""

import asyncio
from typing import Any

import pytest

from threadline.contracts import new_event
from threadline.contracts.events.directory import AccountRemoved
from threadline.kit.kafka import KafkaRecordPublisher, PublishTimedOut, publish_in_key_order


class RecordingBroker:
    def __init__(self) -> None:
        self.topics: list[str] = []

    async def publish(self, value: bytes, topic: str, **_: Any) -> None:
        self.topics.append(topic)


async def test_records_go_to_the_prefixed_topic() -> None:
    broker = RecordingBroker()
    publisher = KafkaRecordPublisher(broker, topic_prefix="staging.")  # type: ignore[arg-type]
    event = new_event(AccountRemoved(account_id="a1"), firm="f", producer="test")
    await publisher.publish_envelope(event)
    await publisher.publish_record(topic="threadline.unit.dlq.v1", key="k", value=b"", headers={})
    assert broker.topics == ["staging.threadline.directory.v1", "staging.threadline.unit.dlq.v1"]


class GatedPublisher:
    """Records publishes in the order they finish; a key in ``held`` waits for ``release``."""

    def __init__(self, *, held: str = "", failing: str = "") -> None:
        self.finished: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self._held = held
        self._failing = failing

    async def publish_record(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> None:
        if key == self._failing:
            raise ConnectionError("broker unavailable")
        if key == self._held:
            await self.release.wait()
        await asyncio.sleep(0)
        self.finished.append((key, headers["event-id"]))


def removed(account_id: str) -> Any:
    return new_event(AccountRemoved(account_id=account_id), firm="f", producer="test")


async def test_one_keys_events_go_out_in_order_and_other_keys_do_not_wait_for_it() -> None:
    publisher = GatedPublisher(held="a1")
    events = [removed("a1"), removed("a2"), removed("a1"), removed("a2")]
    publishing = asyncio.create_task(publish_in_key_order(publisher, events, timeout_seconds=5))
    for _ in range(20):
        await asyncio.sleep(0)
    assert publisher.finished == [("a2", str(events[1].id)), ("a2", str(events[3].id))]
    publisher.release.set()
    await publishing
    assert publisher.finished[2:] == [("a1", str(events[0].id)), ("a1", str(events[2].id))]


async def test_a_failed_publish_is_raised() -> None:
    publisher = GatedPublisher(failing="a2")
    with pytest.raises(ConnectionError):
        await publish_in_key_order(publisher, [removed("a1"), removed("a2")], timeout_seconds=5)


async def test_a_publish_that_is_not_acknowledged_in_time_is_raised() -> None:
    publisher = GatedPublisher(held="a1")
    with pytest.raises(PublishTimedOut):
        await publish_in_key_order(publisher, [removed("a1")], timeout_seconds=0.05)
