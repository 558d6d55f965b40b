"""Kafka killed with -9 while a consumer group is active and its member dies with it (the
chaos run's "kill -9 messaging + kafka"): once the stack says Kafka is healthy again, the
group can be joined — the stack's check joins a throwaway group, and restarts a broker whose
group coordinator stays failed (NOT_COORDINATOR after a racing __consumer_offsets load)."""

import asyncio
import sys
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

pytestmark = [pytest.mark.integration, pytest.mark.restarts_servers]

# Commits each record it reads and says so; killed with -9 mid-flight by the test.
_MEMBER = """
import asyncio, sys
from aiokafka import AIOKafkaConsumer

async def main() -> None:
    bootstrap, topic, group = sys.argv[1:4]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    while True:
        batch = await consumer.getmany(timeout_ms=500)
        if batch:
            await consumer.commit()
            print("committed", sum(len(records) for records in batch.values()), flush=True)

asyncio.run(main())
"""


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def test_a_group_joins_once_kafka_is_healthy_after_kill_9_with_its_member(
    endpoints: dict[str, str], kafka_control: Any, run_id: str
) -> None:
    bootstrap = endpoints["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
    topic, group = f"test.recovery.{run_id}", f"test-recovery-{run_id}"
    await _produce(bootstrap, topic, [f"before {number}".encode() for number in range(5)])
    member = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _MEMBER, bootstrap, topic, group, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert member.stdout is not None
        line = await asyncio.wait_for(member.stdout.readline(), timeout=60)
        assert line.startswith(b"committed"), "the member joined the group and committed"
        await asyncio.to_thread(kafka_control.kill, "kafka")
    finally:
        member.kill()
        await member.wait()
    await kafka_control.astart("kafka")  # returns once its check joined a throwaway group

    after = [f"after {number}".encode() for number in range(3)]
    await _produce(bootstrap, topic, after)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        received: list[bytes] = []
        async with asyncio.timeout(60):  # the dead member's session (10 s) must expire first
            while received[-3:] != after:
                batch = await consumer.getmany(timeout_ms=500)
                received += [record.value for records in batch.values() for record in records]
    finally:
        await consumer.stop()
