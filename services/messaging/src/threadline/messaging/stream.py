"""The real-time stream: one WebSocket per user carrying the events of the threads that user
may see, filtered for that user, in per-thread order.

Every replica tails the messaging topic itself with a group-less Kafka consumer that starts
at the end of the log, so a message posted through any replica reaches the subscribers of
every replica, and no replica needs to know the others. The topic is keyed by thread id,
one consumer reads it in order and each connection has one ordered queue: per-thread order
holds end to end.

The stream is live only: it does not replay what a subscriber missed while disconnected.
Message frames carry ``seq``, so a client that sees a gap (or reconnects) fetches
``GET /v1/threads/{id}/messages?after=<last seq>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from threadline.contracts import Envelope, EventDecodeError, decode
from threadline.contracts.events.messaging import (
    FirmChatSettingsChanged,
    MessagePosted,
    MessagesRead,
    ThreadCreated,
    ThreadLinkedToJob,
)
from threadline.kit.auth import Principal, TokenVerifier
from threadline.kit.bounded import finish_within
from threadline.kit.errors import Unauthenticated
from threadline.kit.policy import ThreadFacts, can_access_account, can_view_thread

__all__ = ["KafkaStreamFeed", "StreamHub", "frame_for", "router"]

_log = structlog.get_logger(__name__)

UNAUTHORISED = 4401
"""Close code (application range) for a missing, invalid or expired token."""
TOO_SLOW = 4408
"""Close code for a subscriber whose queue overflowed: reconnect and resync."""
GOING_AWAY = 1001
"""Closed because the server is shutting down (RFC 6455): reconnect to another replica."""
POLICY_VIOLATION = 1008
"""Close code for a first frame that is not a text frame of at most ``MAX_AUTH_FRAME`` bytes."""
MAX_AUTH_FRAME = 16 * 1024
FEED_STOP_SECONDS = 5.0
"""How long the stream feed's Kafka consumer gets to stop before it is left behind."""
LIVE_WAIT_SECONDS = 10.0
"""How long a new subscriber waits for a feed that is down before it is told it is ready."""


class _BadFirstFrame(Exception):
    """The first frame was binary or too large: the connection breaks the protocol."""


MentionLookup = Callable[[str, str], Awaitable[frozenset[str]]]
"""(firm, thread_id) → staff ids mentioned in the thread, for access granted by a mention."""

_STAFF_ONLY = {ThreadLinkedToJob.event_type, FirmChatSettingsChanged.event_type}
"""Pipeline links and firm settings are the firm's business, not its clients'."""
_CLIENT_HIDDEN_FIELDS = {ThreadCreated.event_type: ("reminders", "job_ids", "template_id")}


def frame_for(
    principal: Principal, event: Envelope[Any], thread: ThreadFacts | None
) -> dict[str, Any] | None:
    """What ``principal`` receives of ``event``, or ``None`` when it may not see it at all.

    ``thread`` is ``None`` for firm-wide events. Clients never receive internal content
    (M3), staff read receipts (R2) or staff-only configuration.
    """
    if principal.firm != event.firm:
        return None
    if thread is not None and not can_view_thread(principal, thread):
        return None
    data = event.data.model_dump(mode="json")
    if principal.is_client:
        if event.type in _STAFF_ONLY or data.get("internal", False):
            return None
        if event.type == MessagesRead.event_type:
            if data["reader"]["kind"] != "client":
                return None
            data.pop("up_to_seq")  # a position among all messages, internal ones included
        if event.type == MessagePosted.event_type:
            data["seq"] = data.pop("client_seq")  # clients count only what they see (M3)
        for hidden in _CLIENT_HIDDEN_FIELDS.get(event.type, ()):
            data.pop(hidden, None)
    return {
        "type": event.type,
        "id": str(event.id),
        "occurred_at": event.occurred_at.isoformat(),
        "thread_id": data.get("thread_id"),
        "data": data,
    }


@dataclass(eq=False)
class Subscription:
    """One connected user: their identity and the ordered queue of frames to send them."""

    principal: Principal
    queue: asyncio.Queue[dict[str, Any]]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)
    going_away: asyncio.Event = field(default_factory=asyncio.Event)
    on_dropped: Callable[[], None] = lambda: None

    def offer(self, frame: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            if not self.overflowed.is_set():
                self.on_dropped()
            self.overflowed.set()


class StreamHub:
    """The subscribers connected to this replica, by firm, and the per-user fan-out."""

    def __init__(
        self,
        *,
        mentions: MentionLookup,
        queue_size: int,
        on_dropped: Callable[[], None] = lambda: None,
    ) -> None:
        self._mentions = mentions
        self._on_dropped = on_dropped
        self._queue_size = queue_size
        self._by_firm: dict[str, set[Subscription]] = defaultdict(set)
        self.closed = False

    @property
    def connections(self) -> int:
        return sum(len(subscriptions) for subscriptions in self._by_firm.values())

    def subscribe(self, principal: Principal) -> Subscription:
        subscription = Subscription(
            principal, asyncio.Queue(maxsize=self._queue_size), on_dropped=self._on_dropped
        )
        self._by_firm[principal.firm].add(subscription)
        return subscription

    async def close_all(self, *, within_seconds: float = 5.0) -> None:
        """Shutdown: take no new subscribers, close every open stream with 1001 (going
        away) and wait, bounded, until they are gone."""
        self.closed = True
        for subscriptions in list(self._by_firm.values()):
            for subscription in subscriptions:
                subscription.going_away.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_seconds):
                while self.connections:  # noqa: ASYNC110 - pumps unsubscribe as they close
                    await asyncio.sleep(0.05)

    def unsubscribe(self, subscription: Subscription) -> None:
        firm = subscription.principal.firm
        self._by_firm[firm].discard(subscription)
        if not self._by_firm[firm]:
            del self._by_firm[firm]

    def listens_to(self, firm: str) -> bool:
        """Whether anyone here subscribes to the firm's events."""
        return firm in self._by_firm

    async def dispatch(self, event: Envelope[Any]) -> None:
        subscriptions = list(self._by_firm.get(event.firm, ()))
        if not subscriptions:
            return
        thread = await self._thread_facts(event, subscriptions)
        for subscription in subscriptions:
            frame = frame_for(subscription.principal, event, thread)
            if frame is not None:
                subscription.offer(frame)

    async def _thread_facts(
        self, event: Envelope[Any], subscriptions: list[Subscription]
    ) -> ThreadFacts | None:
        thread_id = getattr(event.data, "thread_id", None)
        if thread_id is None:
            return None
        account_id = event.data.account_id
        needs_mentions = any(
            s.principal.is_staff
            and not can_access_account(s.principal, firm=event.firm, account_id=account_id)
            for s in subscriptions
        )
        mentioned = await self._mentions(event.firm, thread_id) if needs_mentions else frozenset()
        return ThreadFacts(firm=event.firm, account_id=account_id, mentioned_staff=mentioned)


class KafkaStreamFeed:
    """Tails the messaging topic from its end and hands every event to the hub.

    No consumer group: each replica reads every partition, commits nothing and starts at the
    newest offset — the stream is live, and durable state lives in the API.

    While nobody is subscribed to the replica the feed fetches nothing (its partitions are
    paused): during a 10,000-account bulk job, fetching the job's 20,000 events for nobody
    took a fifth of the app's CPU samples, on the loop that serves its requests. A new
    subscriber is told the stream is ready (``live``) once the feed has moved to the
    topic's end and fetches again, so every event published after that reaches it.
    """

    def __init__(
        self, hub: StreamHub, *, topic: str, bootstrap_servers: str, client_id: str
    ) -> None:
        self._hub = hub
        self._topic = topic
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self.positioned = asyncio.Event()
        self._fetching = asyncio.Event()
        self._wanted = asyncio.Event()

    async def live(self, *, within_seconds: float = LIVE_WAIT_SECONDS) -> None:
        """Return once events published from now on reach this replica's subscribers: at
        once while the feed fetches; after it moved to the topic's end and fetches again
        when it had paused for want of subscribers (call it after ``StreamHub.subscribe``).
        A feed that is down (restarting after a failure) is waited for ``within_seconds``
        at most; its subscribers get events once it is back, as they would without this."""
        if self._fetching.is_set():
            return
        self._wanted.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_seconds):
                await self._fetching.wait()

    async def ready(self) -> bool:
        """Readiness: events published from now on will reach this replica's subscribers."""
        return self.positioned.is_set()

    async def run(self) -> None:
        """Tail the topic for the app's lifetime; start over (from the end) after a failure."""
        while True:
            try:
                await self._tail()
            except Exception:  # the broker went away at start-up or the consumer broke
                _log.warning("stream feed failed; restarting", exc_info=True)
                await asyncio.sleep(1.0)

    async def _tail(self) -> None:
        consumer = AIOKafkaConsumer(  # made here: aiokafka needs the running loop
            self._topic,
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        try:
            await self._position_at_end(consumer)
            self._fetching.set()
            while True:
                if not self._hub.connections:
                    await self._pause_until_subscribed(consumer)
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        firm = _firm_of(record.headers)
                        if firm is None or self._hub.listens_to(firm):
                            await self._dispatch(record.value)
        finally:
            self.positioned.clear()
            self._fetching.clear()
            await _stop_within(consumer, FEED_STOP_SECONDS)

    async def _pause_until_subscribed(self, consumer: AIOKafkaConsumer) -> None:
        """Fetch nothing until someone subscribes, then go on from the topic's end: what
        was published meanwhile had nobody here to go to."""
        partitions = consumer.assignment()
        consumer.pause(*partitions)
        self._fetching.clear()
        self._wanted.clear()
        while not self._hub.connections:
            await self._wanted.wait()
            self._wanted.clear()
        if not await consumer.seek_to_end(*partitions):
            raise KafkaError("the stream feed could not find the topic's end in time")
        for partition in partitions:
            await consumer.position(partition)
        consumer.resume(*partitions)
        self._fetching.set()

    async def _position_at_end(self, consumer: AIOKafkaConsumer) -> None:
        while not consumer.assignment():  # noqa: ASYNC110 - no assignment event without a group
            await asyncio.sleep(0.05)
        for partition in consumer.assignment():
            await consumer.position(partition)
        self.positioned.set()

    async def _dispatch(self, value: bytes | None) -> None:
        try:
            event = decode(value or b"")
        except EventDecodeError:
            return  # the service's own consumer dead-letters malformed events
        try:
            await self._hub.dispatch(event)
        except Exception:  # one bad lookup must not end the stream for everyone
            _log.warning("stream dispatch failed", event_type=event.type, exc_info=True)


def _firm_of(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The event's firm from its Kafka headers (``Envelope.kafka_headers``, there for routing
    without decoding), None without one. A firm nobody here subscribes to is skipped before
    its event is decoded: during a 10,000-account bulk job, decoding the job's 20,000 events
    for nobody took 9 % of the app's CPU samples, on the loop that serves its requests."""
    for name, value in headers:
        if name == "firm":
            return value.decode(errors="replace")
    return None


async def _stop_within(consumer: AIOKafkaConsumer, seconds: float) -> None:
    """``consumer.stop()``, left behind after ``seconds``: aiokafka's fetcher can swallow the
    cancellation that stopping sends it and then wait forever, which held the service's
    whole shutdown."""
    if not await finish_within(consumer.stop(), seconds, name="stream feed consumer stop"):
        _log.warning("stream feed consumer did not stop in time", waited_seconds=seconds)


router = APIRouter()


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    """The caller's live events. Authenticate with an ``Authorization: Bearer`` header, or
    (browsers) with a first text frame ``{"type": "auth", "token": "…"}``."""
    hub: StreamHub = websocket.app.state.stream
    feed: KafkaStreamFeed = websocket.app.state.stream_feed
    verifier: TokenVerifier = websocket.app.state.runtime.verifier
    auth_timeout: float = websocket.app.state.runtime.settings.stream_auth_timeout_seconds
    await websocket.accept()
    if hub.closed:
        await websocket.close(code=GOING_AWAY, reason="The server is shutting down.")
        return
    try:
        async with asyncio.timeout(auth_timeout):
            principal = await _authenticate(websocket, verifier)
    except TimeoutError:
        await websocket.close(code=UNAUTHORISED, reason="No token arrived in time.")
        return
    except Unauthenticated as exc:
        await websocket.close(code=UNAUTHORISED, reason=str(exc)[:120])
        return
    except _BadFirstFrame as exc:
        await websocket.close(code=POLICY_VIOLATION, reason=str(exc)[:120])
        return
    except WebSocketDisconnect:
        return
    subscription = hub.subscribe(principal)
    try:
        await feed.live()
        await websocket.send_json({"type": "stream.ready", "user_id": principal.sub})
        await _pump(websocket, subscription)
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(subscription)


async def _authenticate(websocket: WebSocket, verifier: TokenVerifier) -> Principal:
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return verifier.verify(token.strip())
    first = await websocket.receive()
    if first["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(first.get("code", 1000))
    text = first.get("text")
    if text is None:
        raise _BadFirstFrame('The first frame must be text: {"type": "auth", "token": "…"}.')
    if len(text) > MAX_AUTH_FRAME:
        raise _BadFirstFrame(f"The first frame is larger than {MAX_AUTH_FRAME} characters.")
    try:
        message = json.loads(text)
        token = message["token"] if message.get("type") == "auth" else ""
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        token = ""
    if not isinstance(token, str) or not token:
        raise Unauthenticated('Send {"type": "auth", "token": "<JWT>"} first.')
    return verifier.verify(token)


async def _pump(websocket: WebSocket, subscription: Subscription) -> None:
    """Send frames until the client leaves, the token expires or the client falls behind."""
    expires_at = subscription.principal.expires_at
    remaining = (expires_at - datetime.now(UTC)).total_seconds() if expires_at else None
    listener = asyncio.create_task(_until_disconnected(websocket))
    overflow = asyncio.create_task(subscription.overflowed.wait())
    going_away = asyncio.create_task(subscription.going_away.wait())
    try:
        async with asyncio.timeout(remaining):
            while True:
                frame_ready = asyncio.create_task(subscription.queue.get())
                done, _ = await asyncio.wait(
                    {frame_ready, listener, overflow, going_away},
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if frame_ready not in done:
                    frame_ready.cancel()
                if listener in done:
                    return
                if going_away in done:
                    await websocket.close(code=GOING_AWAY, reason="The server is shutting down.")
                    return
                if overflow in done:
                    await websocket.close(code=TOO_SLOW, reason="Too far behind: reconnect.")
                    return
                await websocket.send_json(frame_ready.result())
    except TimeoutError:
        await websocket.close(code=UNAUTHORISED, reason="The token has expired.")
    finally:
        for task in (listener, overflow, going_away):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task


async def _until_disconnected(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends; return when it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
