"""Topics are provisioned with several partitions, a consumer group spreads them over its
instances, and each key's events still arrive in order."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from threadline.contracts import Envelope, Topic
from threadline.kit.topics import provision_topics
from threadline.reminders.store import MongoFirmSettingsProjection

from .conftest import ServiceFactory, eventually, run_topic, token_for

pytestmark = pytest.mark.integration


async def _partition_counts(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {
            topic["topic"]: len(topic["partitions"])
            for topic in await admin.describe_topics()
            if topic["topic"] in names
        }
    finally:
        await admin.close()


async def _delete(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def test_provisioning_creates_grows_and_is_idempotent(endpoints: dict[str, str]) -> None:
    bootstrap = endpoints["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
    fresh, small = (f"it-provision-{uuid.uuid4().hex[:8]}-{n}" for n in ("fresh", "small"))
    try:
        await provision_topics(bootstrap, [small], partitions=1)

        changes = await provision_topics(bootstrap, [fresh, small], partitions=4)

        assert changes.created == [fresh] and changes.grown == {small: (1, 4)}
        assert await _partition_counts(bootstrap, [fresh, small]) == {fresh: 4, small: 4}
        again = await provision_topics(bootstrap, [fresh, small], partitions=4)
        assert again.created == [] and again.grown == {}
        fewer = await provision_topics(bootstrap, [fresh], partitions=2)
        assert fewer.grown == {} and await _partition_counts(bootstrap, [fresh]) == {fresh: 4}
    finally:
        await _delete(bootstrap, [fresh, small])


async def test_services_start_with_every_topic_at_the_configured_partition_count(
    start_service: ServiceFactory, endpoints: dict[str, str]
) -> None:
    await start_service("reminders")
    names = [run_topic(topic) for topic in Topic]
    counts = await _partition_counts(endpoints["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"], names)
    assert set(counts) == set(names)
    assert min(counts.values()) >= 6


def _partition_of(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), as the services' producer uses it."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _one_key_per_partition(prefix: str, partitions: int) -> list[str]:
    keys: dict[int, str] = {}
    candidate = 0
    while len(keys) < partitions:
        key = f"{prefix}_{candidate}"
        keys.setdefault(_partition_of(key, partitions), key)
        candidate += 1
    return [keys[p] for p in range(partitions)]


async def test_a_consumer_group_spreads_partitions_and_keeps_each_keys_order(
    start_service: ServiceFactory, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied: list[tuple[int, str, int]] = []  # (instance, firm, revision) in handling order
    original = MongoFirmSettingsProjection.apply

    async def recording(self: MongoFirmSettingsProjection, event: Envelope[Any]) -> None:
        applied.append((id(self), event.firm, event.data.revision))
        await original(self, event)

    monkeypatch.setattr(MongoFirmSettingsProjection, "apply", recording)
    _, messaging = await start_service("messaging")
    first, _ = await start_service("reminders")
    second, _ = await start_service("reminders")  # same run: same group and database

    async def assignments() -> list[set[Any]]:
        return [
            set(app.state.runtime.events._subscriber.consumer.assignment())
            for app in (first, second)
        ]

    owned = await eventually(
        assignments,
        until=lambda sets: all(sets) and not (sets[0] & sets[1]),
    )
    messaging_partitions = {
        tp.partition for tp in owned[0] | owned[1] if tp.topic == run_topic(Topic.MESSAGING)
    }
    count = len(messaging_partitions)
    assert count >= 2, "the messaging topic has several partitions"
    assert messaging_partitions == set(range(count)), "together the instances own them all"

    firms = _one_key_per_partition(f"firm_{run_id}", count)
    revisions = 3
    for revision in range(1, revisions + 1):
        for firm in firms:
            response = await messaging.patch(
                "/v1/firm/chat-settings",
                json={"clients_can_create_threads": revision % 2 == 0},
                headers={"Authorization": f"Bearer {token_for(firm, role='admin')}"},
            )
            assert response.status_code == 200, response.text

    async def latest() -> dict[str, int]:
        return {firm: max((r for _, f, r in applied if f == firm), default=0) for firm in firms}

    await eventually(latest, until=lambda seen: set(seen.values()) == {revisions})
    for firm in firms:
        seen = [revision for _, f, revision in applied if f == firm]
        assert seen == sorted(seen), f"{firm}'s events were handled out of order: {seen}"
    handlers = {instance for instance, _, _ in applied}
    assert len(handlers) == 2, "both instances of the group handled events"
