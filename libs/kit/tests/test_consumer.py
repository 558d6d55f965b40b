"""EventRouter: decode, deduplicate, retry with backoff, dead-letter, then mark processed."""

from typing import Any

import pytest

from threadline.contracts import Envelope, new_event
from threadline.contracts.events.directory import AccountRemoved, StaffMemberRemoved
from threadline.kit.consumer import EventRouter, dead_letter_topic
from threadline.kit.logs import correlation_id

from .fakes import InMemoryProcessedEvents, RecordingPublisher

SOURCE = "threadline.directory.v1/0/42"


def account_removed() -> Envelope[Any]:
    return new_event(AccountRemoved(account_id="acc_1"), firm="f", key="acc_1", producer="test")


@pytest.fixture
def parts() -> tuple[EventRouter, InMemoryProcessedEvents, RecordingPublisher, list[Any]]:
    processed, dead = InMemoryProcessedEvents(), RecordingPublisher()
    router = EventRouter(
        service="unit", processed=processed, dead_letters=dead, max_attempts=3, backoff_seconds=0
    )
    calls: list[Any] = []

    async def handle(event: Envelope[Any]) -> None:
        calls.append(event)

    router.on(AccountRemoved, handle)
    return router, processed, dead, calls


async def test_event_is_handled_once_even_when_delivered_twice(parts) -> None:
    router, processed, dead, calls = parts
    event = account_removed()
    await router.process(event.to_bytes(), headers={}, source=SOURCE)
    await router.process(event.to_bytes(), headers={}, source=SOURCE)
    assert [c.id for c in calls] == [event.id]
    assert processed.ids == [str(event.id)]
    assert router.stats["duplicates"] == 1
    assert dead.records == []


async def test_malformed_record_goes_to_dead_letter_topic_with_reason(parts) -> None:
    router, processed, dead, calls = parts
    await router.process(b"{not json", headers={"event-type": b"x"}, source=SOURCE)
    assert calls == [] and processed.ids == []
    [record] = dead.records
    assert record["topic"] == dead_letter_topic("unit") == "threadline.unit.dlq.v1"
    assert record["value"] == b"{not json"
    assert record["headers"]["dlq-source-offset"] == "42"
    assert "not valid JSON" in record["headers"]["dlq-reason"]
    assert record["headers"]["event-type"] == "x"


async def test_failing_handler_is_retried_then_dead_lettered_and_not_retried_again(parts) -> None:
    router, processed, dead, _ = parts
    attempts: list[int] = []

    async def broken(event: Envelope[Any]) -> None:
        attempts.append(1)
        raise RuntimeError("boom")

    router.on(AccountRemoved, broken)
    event = account_removed()
    await router.process(event.to_bytes(), headers={}, source=SOURCE)
    assert len(attempts) == 3
    assert len(dead.records) == 1
    assert processed.ids == [str(event.id)]


async def test_handler_that_recovers_within_retries_is_not_dead_lettered(parts) -> None:
    router, _processed, dead, _ = parts
    attempts: list[int] = []

    async def flaky(event: Envelope[Any]) -> None:
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("transient")

    router.on(AccountRemoved, flaky)
    await router.process(account_removed().to_bytes(), headers={}, source=SOURCE)
    assert len(attempts) == 2 and dead.records == []


async def test_events_without_handler_are_ignored_not_dead_lettered(parts) -> None:
    router, _processed, dead, calls = parts
    other = new_event(StaffMemberRemoved(user_id="st_1"), firm="f", key="f", producer="test")
    await router.process(other.to_bytes(), headers={}, source=SOURCE)
    assert calls == [] and dead.records == [] and router.stats["ignored"] == 1


async def test_dead_letter_failure_propagates_so_the_record_is_redelivered(parts) -> None:
    router, _processed, dead, _ = parts
    dead.failing = True
    with pytest.raises(ConnectionError):
        await router.process(b"garbage", headers={}, source=SOURCE)


def test_router_subscribes_only_to_topics_of_its_handlers(parts) -> None:
    router, *_ = parts
    assert router.topics == ["threadline.directory.v1"]


async def test_handler_runs_with_the_events_correlation_id_bound(parts) -> None:
    router, *_ = parts
    seen: list[str | None] = []

    async def remember(event: Envelope[Any]) -> None:
        seen.append(correlation_id())

    router.on(AccountRemoved, remember)
    event = new_event(
        AccountRemoved(account_id="acc_1"), firm="f", producer="test", correlation_id="req-42"
    )
    await router.process(event.to_bytes(), headers={}, source=SOURCE)
    assert seen == ["req-42"]


async def test_several_handlers_of_one_type_all_run_and_none_replaces_another(parts) -> None:
    router, processed, _, calls = parts
    second: list[Any] = []

    async def also(event: Envelope[Any]) -> None:
        second.append(event)

    router.on(AccountRemoved, also)
    event = account_removed()
    await router.process(event.to_bytes(), headers={}, source=SOURCE)
    assert [c.id for c in calls] == [c.id for c in second] == [event.id]
    assert processed.ids == [str(event.id)]


def test_registering_the_same_handler_twice_for_a_type_is_refused(parts) -> None:
    router, *_ = parts

    async def handle(event: Envelope[Any]) -> None:
        return None

    router.on(AccountRemoved, handle)
    with pytest.raises(ValueError, match="already registered"):
        router.on(AccountRemoved, handle)
