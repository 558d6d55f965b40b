"""Idempotent event consumption: transient failures retried in place, poison parked.

For every record: decode it (a record that is not a valid contract event is poison), skip
it if its event id was already processed, then run the type's handlers. How a failure is
treated depends on its kind (``threadline.kit.failures.classify``):

* transient (a dependency is down): retried with capped exponential backoff for up to
  ``transient_retry_seconds``; the consumer does not move past the record meanwhile (its
  partitions wait, nothing is skipped or committed past it). When the window is spent the
  record is nacked, so it is redelivered and the retries start over — never skipped;
* poison (undecodable, invalid, ``PermanentError``): the dead-letter topic at once;
* unknown (a bug): ``max_attempts`` quick retries, then the dead-letter topic.

Only a handled event is recorded as processed, so a dead-lettered one can be replayed to
its source topic (``threadline-dlq replay``) once the cause is fixed. The subscriber
commits the offset after ``process`` returns; if even the dead-letter publish fails the
record is nacked and redelivered, so nothing is lost.

Handlers must make their effect idempotent on their own too (upserts, ids derived from
the event id): a crash between the effect and the processed mark redelivers the event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope, EventData, EventDecodeError, decode_wanted, topic_for
from threadline.kit.failures import classify
from threadline.kit.kafka import RecordPublisher
from threadline.kit.logs import bind_correlation
from threadline.kit.mongo import IndexSpec

__all__ = [
    "PROCESSED_EVENTS_INDEXES",
    "EventHandler",
    "EventRouter",
    "MongoProcessedEvents",
    "TransientFailureOutlasted",
    "dead_letter_topic",
]

_log = structlog.get_logger(__name__)

EventHandler = Callable[[Envelope[Any]], Awaitable[None]]


class TransientFailureOutlasted(Exception):
    """A dependency stayed down for the whole retry window: the record is redelivered."""


PROCESSED_EVENTS_INDEXES = (IndexSpec("processed_events", [("processed_at", 1)]),)


def dead_letter_topic(service: str) -> str:
    return f"threadline.{service}.dlq.v1"


class MongoProcessedEvents:
    """Ids of events whose effect is stored, one collection per service database."""

    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self._collection = database["processed_events"]

    async def seen(self, event_id: str) -> bool:
        return await self._collection.find_one({"_id": event_id}, {"_id": 1}) is not None

    async def purge(self, *, older_than: timedelta) -> int:
        """Forget ids processed longer ago than ``older_than``: safe once that exceeds the
        topics' retention, since Kafka can no longer redeliver those events."""
        cutoff = datetime.now(UTC) - older_than
        result = await self._collection.delete_many({"processed_at": {"$lt": cutoff}})
        return result.deleted_count

    async def mark(self, event_id: str, event_type: str) -> None:
        try:
            await self._collection.insert_one(
                {"_id": event_id, "type": event_type, "processed_at": datetime.now(UTC)}
            )
        except DuplicateKeyError:
            return


class EventRouter:
    """Maps contract event models to handlers and subscribes them to their topics."""

    def __init__(
        self,
        *,
        service: str,
        processed: MongoProcessedEvents,
        dead_letters: RecordPublisher,
        max_attempts: int = 5,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 30.0,
        transient_retry_seconds: float = 300.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._processed = processed
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._transient_window = transient_retry_seconds
        self._sleep = sleep
        self._clock = clock
        self._handlers: dict[str, list[EventHandler]] = {}
        self._subscriber: Any = None
        self._in_hand: set[str] = set()
        self.observe: Callable[[str, str], None] = lambda event_type, outcome: None
        """Called with (event type, outcome) per event and per retry (metrics)."""
        self.stats = {
            "handled": 0,
            "duplicates": 0,
            "retried": 0,
            "dead_lettered": 0,
            "ignored": 0,
        }

    def on(self, model: type[EventData], handler: EventHandler) -> None:
        """Also route ``model``'s events to ``handler`` (every schema version of the type).

        A type may have several handlers (e.g. a kit projection and the service's own
        reaction); they run in registration order and the event counts as processed once
        all of them succeeded, so each must be idempotent. Registering the same handler
        twice for a type is a wiring mistake and raises.
        """
        handlers = self._handlers.setdefault(model.event_type, [])
        if handler in handlers:
            raise ValueError(f"{handler!r} is already registered for {model.event_type}")
        handlers.append(handler)

    @property
    def topics(self) -> list[str]:
        return sorted({str(topic_for(event_type)) for event_type in self._handlers})

    def subscribe(
        self,
        broker: KafkaBroker,
        *,
        group_id: str | None = None,
        start: Literal["earliest", "latest"] = "earliest",
        topic_prefix: str = "",
    ) -> None:
        """One consumer for all routed topics (``topic_prefix`` before each name); offsets
        are committed only after ``process``.

        A single group member per service instance (not one per topic) keeps rebalances to
        one join when an instance starts or stops.
        """
        topics = self.topics
        if not topics:
            return

        async def on_record(message: KafkaMessage) -> None:
            raw = message.raw_message
            source = f"{raw.topic}/{raw.partition}/{raw.offset}"  # type: ignore[union-attr]
            self._in_hand.add(source)
            try:
                await self.process(
                    message.body,
                    headers=dict(message.headers),
                    source=source,
                    key=raw.key,  # type: ignore[union-attr]
                )
            finally:
                self._in_hand.discard(source)

        self._subscriber = broker.subscriber(
            *(topic_prefix + topic for topic in topics),
            group_id=group_id or f"threadline-{self._service}",
            auto_offset_reset=start,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            # Retrying a transient failure holds the record; the group must not evict us.
            max_poll_interval_ms=int((self._transient_window + 2 * self._max_backoff + 60) * 1000),
            title=f"{self._service}:events",
        )
        self._subscriber(on_record)

    @property
    def in_hand(self) -> list[str]:
        """``topic/partition/offset`` of the records being handled right now."""
        return sorted(self._in_hand)

    async def stop(self) -> None:
        """Stop consuming (shutdown): the record being handled is finished and committed;
        nothing after it is fetched."""
        if self._subscriber is not None:
            await self._subscriber.stop()

    async def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the partition's end, per assigned (topic, partition)."""
        consumer = None if self._subscriber is None else self._subscriber.consumer
        if consumer is None:
            return {}
        lags: dict[tuple[str, int], int] = {}
        for partition in consumer.assignment():
            end = consumer.highwater(partition)
            if end is not None:
                position = await consumer.position(partition)
                lags[(partition.topic, partition.partition)] = max(end - position, 0)
        return lags

    async def positioned(self) -> bool:
        """Readiness: the group gave this instance its partitions and their positions are
        known, so every event published from now on will be consumed."""
        if self._subscriber is None:
            return True
        consumer = self._subscriber.consumer
        if consumer is None or not consumer.assignment():
            return False
        try:
            async with asyncio.timeout(2.0):
                for partition in consumer.assignment():
                    await consumer.position(partition)
        except TimeoutError:
            return False
        return True

    async def process(
        self, body: bytes, *, headers: dict[str, Any], source: str, key: bytes | None = None
    ) -> None:
        try:
            event = decode_wanted(body, wanted=self._handlers)
        except EventDecodeError as exc:
            await self._dead_letter(body, headers, source=source, key=key, reason=str(exc))
            return
        if event is None:  # a type this service does not handle, perhaps newer than its contracts
            self.stats["ignored"] += 1
            self.observe(_header_text(headers.get("event-type", "unknown")), "ignored")
            return
        handlers = self._handlers[event.type]
        event_id = str(event.id)
        if await self._processed.seen(event_id):
            self.stats["duplicates"] += 1
            self.observe(event.type, "duplicate")
            return
        bind_correlation(event.correlation_id or event_id)
        reason = await self._run_with_retries(handlers, event)
        if reason is None:
            self.stats["handled"] += 1
            self.observe(event.type, "handled")
            await self._processed.mark(event_id, event.type)
        else:
            await self._dead_letter(body, headers, source=source, key=key, reason=reason)

    async def _run_with_retries(
        self, handlers: list[EventHandler], event: Envelope[Any]
    ) -> str | None:
        """Run every handler until all succeeded (None) or the event must be dead-lettered
        (the reason). Raises ``TransientFailureOutlasted`` when a dependency stayed down."""
        attempt, transient_since = 0, None
        while True:
            attempt += 1
            try:
                for handler in handlers:
                    await handler(event)
            except Exception as exc:  # classified below: retry, park or redeliver
                kind = classify(exc)
                log = _log.bind(event_id=str(event.id), type=event.type, attempt=attempt)
                if kind == "poison":
                    log.error("event handler refused the event", exc_info=True)
                    return f"poison: {type(exc).__name__}: {exc}"
                if kind == "transient":
                    transient_since = transient_since or self._clock()
                    if self._clock() - transient_since >= self._transient_window:
                        raise TransientFailureOutlasted(str(exc)) from exc
                elif attempt >= self._max_attempts:
                    log.error("event handler kept failing", exc_info=True)
                    return f"failed {attempt} times: {type(exc).__name__}: {exc}"
                log.warning("event handler failed; retrying", failure=kind, exc_info=True)
                self.stats["retried"] += 1
                self.observe(event.type, f"retried:{kind}")
                await self._sleep(min(self._backoff * 2 ** (attempt - 1), self._max_backoff))
            else:
                return None

    async def _dead_letter(
        self, body: bytes, headers: dict[str, Any], *, source: str, key: bytes | None, reason: str
    ) -> None:
        topic, partition, offset = source.split("/")
        dl_headers = {str(k): _header_text(v) for k, v in headers.items()}
        dl_headers |= {
            "dlq-reason": reason[:1000],
            "dlq-source-topic": topic,
            "dlq-source-partition": partition,
            "dlq-source-offset": offset,
            "dlq-consumer": self._service,
        }
        if key is not None:
            dl_headers["dlq-source-key"] = key.decode(errors="replace")
        await self._dead_letters.publish_record(
            topic=dead_letter_topic(self._service),
            key=f"{topic}/{partition}",
            value=body,
            headers=dl_headers,
        )
        self.stats["dead_lettered"] += 1
        self.observe(dl_headers.get("event-type", "undecodable"), "dead_lettered")
        _log.error("event parked on dead-letter topic", source=source, reason=reason[:300])


def _header_text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
