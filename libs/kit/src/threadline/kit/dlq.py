"""``threadline-dlq``: list a service's dead-lettered events and replay chosen ones.

    threadline-dlq list --service documents
    threadline-dlq replay --service documents <event-id> [<event-id> ...]

``list`` reads the service's dead-letter topic from its start to its current end (no
consumer group, nothing committed) and prints one JSON line per parked record. ``replay``
publishes the chosen events, byte for byte with their original key and headers, back to
the topic they came from; every consumer group of that topic sees them again and
deduplicates on the event id, and the service that parked them (which did not mark them
processed) handles them now. Fix the cause first: a replayed poison event is parked again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from threadline.kit.consumer import dead_letter_topic

__all__ = ["DeadLetter", "main", "read_dead_letters", "replay"]

_DLQ_PREFIX = "dlq-"
_ASSIGNMENT_TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class DeadLetter:
    """One parked record: the original value and headers plus where it came from and why."""

    event_id: str | None
    event_type: str | None
    source_topic: str
    source_key: str | None
    reason: str
    value: bytes
    headers: dict[str, str]

    def summary(self) -> dict[str, str | None]:
        return {
            "event_id": self.event_id,
            "type": self.event_type,
            "source_topic": self.source_topic,
            "reason": self.reason,
        }


async def read_dead_letters(
    bootstrap: str, service: str, *, topic_prefix: str = ""
) -> list[DeadLetter]:
    """Every record on the service's dead-letter topic, oldest first."""
    topic = topic_prefix + dead_letter_topic(service)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(_ASSIGNMENT_TIMEOUT_SECONDS):
            while not consumer.assignment():  # noqa: ASYNC110 - aiokafka has no event for it
                await asyncio.sleep(0.1)
        partitions = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[DeadLetter] = []
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            batches = await consumer.getmany(*partitions, timeout_ms=1000)
            for records in batches.values():
                found.extend(
                    _dead_letter(record.value, record.headers)
                    for record in records
                    if record.value is not None
                )
        return found
    finally:
        await consumer.stop()


def _dead_letter(value: bytes, raw_headers: Sequence[tuple[str, bytes]]) -> DeadLetter:
    headers = {key: data.decode(errors="replace") for key, data in raw_headers}
    return DeadLetter(
        event_id=headers.get("event-id"),
        event_type=headers.get("event-type"),
        source_topic=headers.get("dlq-source-topic", ""),
        source_key=headers.get("dlq-source-key"),
        reason=headers.get("dlq-reason", ""),
        value=value,
        headers=headers,
    )


async def replay(
    bootstrap: str, service: str, event_ids: Sequence[str], *, topic_prefix: str = ""
) -> list[str]:
    """Publish the chosen dead-lettered events to their source topics (the names they were
    read from, prefix included); returns the ids replayed (each once, even if it was
    parked several times)."""
    wanted = set(event_ids)
    chosen: dict[str, DeadLetter] = {}
    for letter in await read_dead_letters(bootstrap, service, topic_prefix=topic_prefix):
        if letter.event_id in wanted and letter.source_topic:
            chosen[letter.event_id] = letter
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for letter in chosen.values():
            original = [
                (key, text.encode())
                for key, text in letter.headers.items()
                if not key.startswith(_DLQ_PREFIX)
            ]
            await producer.send_and_wait(
                letter.source_topic,
                letter.value,
                key=letter.source_key.encode() if letter.source_key else None,
                headers=[*original, ("dlq-replayed-by", b"threadline-dlq")],
            )
    finally:
        await producer.stop()
    return list(chosen)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="threadline-dlq", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("THREADLINE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $THREADLINE_KAFKA_BOOTSTRAP_SERVERS).",
    )
    parser.add_argument(
        "--topic-prefix",
        default=os.environ.get("THREADLINE_KAFKA_TOPIC_PREFIX", ""),
        help="The installation's topic prefix (default: $THREADLINE_KAFKA_TOPIC_PREFIX).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="print the service's dead-lettered events")
    listing.add_argument("--service", required=True)
    replaying = commands.add_parser("replay", help="republish events to their source topic")
    replaying.add_argument("--service", required=True)
    replaying.add_argument("event_ids", nargs="+", metavar="EVENT_ID")
    args = parser.parse_args(argv)
    if args.command == "list":
        found = read_dead_letters(args.bootstrap, args.service, topic_prefix=args.topic_prefix)
        for letter in asyncio.run(found):
            print(json.dumps(letter.summary()))
        return 0
    replayed = asyncio.run(
        replay(args.bootstrap, args.service, args.event_ids, topic_prefix=args.topic_prefix)
    )
    missing = sorted(set(args.event_ids) - set(replayed))
    print(json.dumps({"replayed": replayed, "not_found": missing}))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
