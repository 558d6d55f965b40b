"""Kafka wiring through FastStream: a broker that publishes records safely.

Producer settings: ``acks=all`` with idempotence (no duplicates from producer retries),
key = the ordering aggregate id, envelope metadata copied into headers so routers and
dead-letter tools can read an event without decoding it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol, TypedDict

from faststream.kafka import KafkaBroker

from threadline.contracts import Envelope, topic_for
from threadline.kit.bounded import finish_within

__all__ = [
    "KafkaRecordPublisher",
    "PublishTimedOut",
    "Record",
    "RecordPublisher",
    "envelope_record",
    "make_broker",
    "publish_in_key_order",
]


class Record(TypedDict):
    """A Kafka record as published: topic, key (aggregate id), JSON value, headers."""

    topic: str
    key: str
    value: bytes
    headers: dict[str, str]


def envelope_record(envelope: Envelope[Any]) -> Record:
    return {
        "topic": str(topic_for(envelope.type)),
        "key": envelope.key,
        "value": envelope.to_bytes(),
        "headers": envelope.kafka_headers(),
    }


def make_broker(bootstrap_servers: str, *, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10_000,
        log_level=logging.DEBUG,
        # A plain logger that propagates to the root's JSON handler (FastStream would make
        # one with a text handler of its own that does not propagate).
        logger=logging.getLogger("threadline.kafka"),
    )


class RecordPublisher(Protocol):
    """Port the outbox and the dead-letter path publish through (faked in unit tests)."""

    async def publish_record(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> None: ...


class KafkaRecordPublisher:
    """Publishes through a FastStream broker and waits for the broker's acknowledgement.

    Records name the catalogue's topics; ``topic_prefix`` (the installation's
    ``KAFKA_TOPIC_PREFIX``) is put before them here, at the edge to Kafka."""

    def __init__(self, broker: KafkaBroker, *, topic_prefix: str = "") -> None:
        self._broker = broker
        self._topic_prefix = topic_prefix

    async def publish_record(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> None:
        await self._broker.publish(
            value,
            self._topic_prefix + topic,
            key=key.encode(),
            headers=headers,
            correlation_id=headers.get("correlation-id"),
        )

    async def publish_envelope(self, envelope: Envelope[Any]) -> None:
        """Publish directly, bypassing the outbox: for tools and tests, not for services."""
        await self.publish_record(**envelope_record(envelope))


class PublishTimedOut(Exception):
    """The broker did not acknowledge every record in time."""


async def publish_in_key_order(
    publisher: RecordPublisher, envelopes: Sequence[Envelope[Any]], *, timeout_seconds: float
) -> None:
    """Publish ``envelopes`` and wait for every acknowledgement: one key's events one after
    another in the given order (Kafka orders per key only), different keys at once. Raises
    the first failure, or ``PublishTimedOut``; some records may then be out already, so a
    caller retries with the same event ids and consumers deduplicate."""
    by_key: dict[str, list[Record]] = {}
    for envelope in envelopes:
        by_key.setdefault(envelope.key, []).append(envelope_record(envelope))

    async def in_order(records: list[Record]) -> None:
        for record in records:
            await publisher.publish_record(**record)

    async def everything() -> None:
        await asyncio.gather(*(in_order(records) for records in by_key.values()))

    if by_key and not await finish_within(
        everything(), timeout_seconds, name="publish in key order"
    ):
        raise PublishTimedOut(f"{len(envelopes)} events not acknowledged in {timeout_seconds} s")
