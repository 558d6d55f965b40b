"""The publisher puts the installation's topic prefix before the catalogue's topic names."""

from typing import Any

from threadline.contracts import new_event
from threadline.contracts.events.directory import AccountRemoved
from threadline.kit.kafka import KafkaRecordPublisher


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
