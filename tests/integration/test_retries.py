"""Consumer failures on real Kafka: a transient one is retried in place (nothing skipped,
order kept), a poison one is dead-lettered at once and replayed with ``threadline-dlq``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from threadline.contracts import Envelope, new_event
from threadline.contracts.events.directory import AccountRemoved
from threadline.kit import dlq
from threadline.kit.consumer import EventRouter
from threadline.kit.failures import PermanentError
from threadline.kit.kafka import KafkaRecordPublisher, make_broker

from .conftest import eventually, run_topic

pytestmark = pytest.mark.integration


class ListProcessed:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def seen(self, event_id: str) -> bool:
        return event_id in self.ids

    async def mark(self, event_id: str, event_type: str) -> None:
        self.ids.add(event_id)


@pytest.fixture
async def consumer(run_id: str) -> AsyncIterator[tuple[EventRouter, KafkaRecordPublisher, str]]:
    """A router on a real broker (its own group and dead-letter topic), started and
    positioned; yields it with a publisher and the router's service name."""
    bootstrap = os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
    service = f"retrytest{run_id}"
    broker = make_broker(bootstrap, client_id=service)
    publisher = KafkaRecordPublisher(broker, topic_prefix=run_topic(""))
    router = EventRouter(
        service=service,
        processed=ListProcessed(),  # type: ignore[arg-type]
        dead_letters=publisher,
        max_attempts=3,
        backoff_seconds=0.05,
        max_backoff_seconds=0.2,
        transient_retry_seconds=120,
    )
    yield router, publisher, service
    await broker.stop()


async def started(router: EventRouter, publisher: KafkaRecordPublisher, service: str) -> None:
    broker = publisher._broker
    router.subscribe(
        broker, group_id=f"{service}-group", start="latest", topic_prefix=run_topic("")
    )
    await broker.start()
    await eventually(router.positioned, until=bool)


def removal(firm: str, account: str) -> Envelope[Any]:
    return new_event(AccountRemoved(account_id=account), firm=firm, key=firm, producer="test")


async def test_transient_failure_is_retried_in_place_and_later_records_wait(
    consumer: tuple[EventRouter, KafkaRecordPublisher, str], run_id: str
) -> None:
    router, publisher, service = consumer
    firm = f"firm_{run_id}"
    handled: list[str] = []
    failures = {"left": 3}

    async def handle(event: Envelope[Any]) -> None:
        if event.firm != firm:
            return
        if event.data.account_id == "first" and failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionRefusedError("smtp down")
        handled.append(event.data.account_id)

    router.on(AccountRemoved, handle)
    await started(router, publisher, service)
    await publisher.publish_envelope(removal(firm, "first"))
    await publisher.publish_envelope(removal(firm, "second"))
    await eventually(lambda: _value(handled), until=lambda h: len(h) == 2)
    assert handled == ["first", "second"], "nothing skipped, order kept"
    assert router.stats["retried"] >= 3
    assert router.stats["dead_lettered"] == 0


async def test_poison_event_is_dead_lettered_at_once_listed_and_replayed(
    consumer: tuple[EventRouter, KafkaRecordPublisher, str],
    run_id: str,
) -> None:
    router, publisher, service = consumer
    bootstrap = os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
    firm = f"firm_{run_id}"
    handled: list[str] = []
    refusing = {"on": True}

    async def handle(event: Envelope[Any]) -> None:
        if event.firm != firm:
            return
        if refusing["on"] and event.data.account_id == "poison":
            raise PermanentError("this account cannot be removed")
        handled.append(event.data.account_id)

    router.on(AccountRemoved, handle)
    await started(router, publisher, service)
    poison, after = removal(firm, "poison"), removal(firm, "after")
    await publisher.publish_envelope(poison)
    await publisher.publish_envelope(after)
    await eventually(lambda: _value(handled), until=lambda h: h == ["after"])
    assert router.stats["retried"] == 0 and router.stats["dead_lettered"] == 1

    letters = await dlq.read_dead_letters(bootstrap, service, topic_prefix=run_topic(""))
    assert [letter.event_id for letter in letters] == [str(poison.id)]
    assert letters[0].reason.startswith("poison: PermanentError")
    code, printed = await threadline_dlq("list", "--service", service)
    assert code == 0
    assert [json.loads(line)["event_id"] for line in printed.splitlines()] == [str(poison.id)]

    refusing["on"] = False  # the cause is fixed: replay it to its source topic
    code, printed = await threadline_dlq("replay", "--service", service, str(poison.id))
    assert code == 0 and json.loads(printed)["replayed"] == [str(poison.id)]
    await eventually(lambda: _value(handled), until=lambda h: h == ["after", "poison"])
    code, printed = await threadline_dlq("replay", "--service", service, "no-such-id")
    assert code == 1 and json.loads(printed)["not_found"] == ["no-such-id"]


async def threadline_dlq(*args: str) -> tuple[int, str]:
    """Run the console command as an operator would (its stdout carries only results)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "threadline.kit.dlq", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def _value(items: list[str]) -> list[str]:
    return list(items)
