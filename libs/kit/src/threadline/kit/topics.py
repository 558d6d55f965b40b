"""Topic provisioning: every topic exists with the configured partition count before a
service produces or consumes.

Left to broker auto-creation, a topic gets the broker's default (one partition), so one
consumer per group does all the work and per-key order is never tested against several
partitions. Every service therefore creates the catalogue's topics and its dead-letter
topic at start-up (idempotent: concurrent replicas race harmlessly) and raises the
partition count of an existing topic that has fewer. Kafka cannot reduce a count, so a
topic with more partitions is left alone.

Adding partitions moves keys: events of one key published before the increase sit in its
old partition, later ones may land in another, so a consumer can see them out of order
while it drains the old partition. Raise the count when producers are quiet (a deploy
with the new setting), or not at all (``KAFKA_PROVISION_TOPICS=false`` leaves topics to
the platform team).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

__all__ = ["TopicChanges", "provision_topics"]

_log = structlog.get_logger(__name__)

DEFAULT_MAX_REPLICATION = 3


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    # All topics' metadata: asking for named topics could auto-create them with one.
    return {topic["topic"]: len(topic["partitions"]) for topic in await admin.describe_topics()}


async def _until_visible(
    admin: AIOKafkaAdminClient, names: list[str], partitions: int, *, within: float = 30.0
) -> None:
    """Wait until the metadata shows every partition: a consumer group assigned from stale
    metadata would leave the new partitions unread until its next refresh (minutes)."""
    async with asyncio.timeout(within):
        while True:
            counts = await _partition_counts(admin)
            if all(counts.get(name, 0) >= partitions for name in names):
                return
            await asyncio.sleep(0.1)


@dataclass
class TopicChanges:
    """What one provisioning run did."""

    created: list[str] = field(default_factory=list)
    grown: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Topic → (partitions before, after)."""


async def provision_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    partitions: int,
    replication_factor: int | None = None,
    request_timeout_ms: int = 10_000,
) -> TopicChanges:
    """Create missing ``topics`` with ``partitions`` partitions and grow smaller ones to it.

    ``replication_factor`` defaults to the number of brokers, at most three.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=request_timeout_ms
    )
    await admin.start()
    try:
        changes = TopicChanges()
        existing = await _partition_counts(admin)
        missing = [name for name in dict.fromkeys(topics) if name not in existing]
        if missing:
            if replication_factor is None:
                brokers = (await admin.describe_cluster())["brokers"]
                replication_factor = min(DEFAULT_MAX_REPLICATION, len(brokers))
            response = await admin.create_topics(
                [NewTopic(name, partitions, replication_factor) for name in missing]
            )
            for name, code, *_ in response.topic_errors:
                if code == TopicAlreadyExistsError.errno:  # another replica was quicker
                    continue
                if code:
                    raise for_code(code)(f"could not create topic {name}")
                changes.created.append(name)
        smaller = {name: count for name, count in existing.items() if name in topics}
        smaller = {name: count for name, count in smaller.items() if count < partitions}
        if smaller:
            await admin.create_partitions(
                {name: NewPartitions(total_count=partitions) for name in smaller}
            )
            changes.grown = {name: (count, partitions) for name, count in smaller.items()}
        if changes.created or changes.grown:
            await _until_visible(admin, [*changes.created, *changes.grown], partitions)
    finally:
        await admin.close()
    if changes.created or changes.grown:
        _log.info("topics provisioned", created=changes.created, grown=changes.grown)
    return changes
