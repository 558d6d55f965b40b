"""EventRouter: decode, deduplicate, retry with backoff, dead-letter, then mark processed."""

from typing import Any

import httpx
import pytest
from pymongo.errors import AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError

from threadline.contracts import Envelope, new_event
from threadline.contracts.events.directory import AccountRemoved, StaffMemberRemoved
from threadline.kit.consumer import EventRouter, TransientFailureOutlasted, dead_letter_topic
from threadline.kit.failures import PermanentError, TransientError, classify
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


async def test_failing_handler_is_retried_then_dead_lettered_and_left_replayable(parts) -> None:
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
    assert processed.ids == [], "not marked processed: a replay from the DLQ is handled"


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


class FakeTime:
    """A clock that only moves when the router sleeps (no real waiting)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def router_with(
    time: FakeTime, dead: RecordingPublisher, processed: InMemoryProcessedEvents
) -> EventRouter:
    return EventRouter(
        service="unit",
        processed=processed,
        dead_letters=dead,
        max_attempts=3,
        backoff_seconds=1,
        max_backoff_seconds=8,
        transient_retry_seconds=60,
        sleep=time.sleep,
        clock=time.clock,
    )


async def test_transient_failure_is_retried_with_capped_backoff_until_it_recovers() -> None:
    time, dead, processed = FakeTime(), RecordingPublisher(), InMemoryProcessedEvents()
    router = router_with(time, dead, processed)
    attempts: list[int] = []

    async def smtp_down_for_a_while(event: Envelope[Any]) -> None:
        attempts.append(1)
        if len(attempts) <= 6:
            raise ConnectionRefusedError("smtp down")

    router.on(AccountRemoved, smtp_down_for_a_while)
    event = account_removed()
    await router.process(event.to_bytes(), headers={}, source=SOURCE)
    assert time.sleeps == [1, 2, 4, 8, 8, 8], "exponential, capped at max_backoff_seconds"
    assert dead.records == [] and processed.ids == [str(event.id)]
    assert router.stats["retried"] == 6


async def test_transient_failure_outlasting_the_window_is_redelivered_never_dead_lettered() -> None:
    time, dead, processed = FakeTime(), RecordingPublisher(), InMemoryProcessedEvents()
    router = router_with(time, dead, processed)

    async def database_down(event: Envelope[Any]) -> None:
        raise TransientError("mongodb unreachable")

    router.on(AccountRemoved, database_down)
    with pytest.raises(TransientFailureOutlasted):
        await router.process(account_removed().to_bytes(), headers={}, source=SOURCE)
    assert time.now >= 60 and dead.records == [] and processed.ids == []


async def test_permanent_error_is_dead_lettered_at_once_without_retries() -> None:
    time, dead, processed = FakeTime(), RecordingPublisher(), InMemoryProcessedEvents()
    router = router_with(time, dead, processed)

    async def refuses(event: Envelope[Any]) -> None:
        raise PermanentError("account unknown to the ledger")

    router.on(AccountRemoved, refuses)
    await router.process(account_removed().to_bytes(), headers={}, source=SOURCE, key=b"acc_1")
    [record] = dead.records
    assert time.sleeps == []
    assert record["headers"]["dlq-reason"].startswith("poison: PermanentError")
    assert record["headers"]["dlq-source-key"] == "acc_1"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConnectionResetError(), "transient"),
        (TimeoutError(), "transient"),
        (AutoReconnect("x"), "transient"),
        (NetworkTimeout("x"), "transient"),
        (ServerSelectionTimeoutError("x"), "transient"),
        (PermanentError("x"), "poison"),
        (KeyError("x"), "unknown"),
        (RuntimeError("wrapped"), "unknown"),
    ],
)
def test_failures_are_classified(error: BaseException, kind: str) -> None:
    assert classify(error) == kind


def test_http_5xx_from_a_dependency_is_transient_and_4xx_is_not() -> None:
    request = httpx.Request("GET", "http://dependency/x")
    for status, kind in ((503, "transient"), (404, "unknown")):
        response = httpx.Response(status, request=request)
        error = httpx.HTTPStatusError("x", request=request, response=response)
        assert classify(error) == kind
