"""The stream's per-user filter and fan-out (issue "Real time"; T7, M3, R2), without Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from threadline.contracts import Envelope, EventData, new_event
from threadline.contracts.events.messaging import (
    Author,
    FirmChatSettingsChanged,
    MessagePosted,
    MessagesRead,
    ReminderSettings,
    ThreadCreated,
    ThreadLinkedToJob,
)
from threadline.kit.auth import Principal
from threadline.kit.policy import ThreadFacts
from threadline.messaging import stream as stream_module
from threadline.messaging.stream import KafkaStreamFeed, StreamHub, frame_for

FIRM = "firm_a"
LEE = "acc_lee"
NOW = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
LEE_THREAD = ThreadFacts(firm=FIRM, account_id=LEE, mentioned_staff=("st_leo",))

OWNER = Principal(sub="st_olivia", firm=FIRM, kind="staff", role="owner")
ASSIGNED = Principal(sub="st_mia", firm=FIRM, kind="staff", role="member", accounts={LEE})
UNASSIGNED = Principal(sub="st_noah", firm=FIRM, kind="staff", role="member", accounts={"x"})
MENTIONED = Principal(sub="st_leo", firm=FIRM, kind="staff", role="member")
CLIENT = Principal(sub="ct_ann", firm=FIRM, kind="client", accounts={LEE})
OTHER_CLIENT = Principal(sub="ct_raj", firm=FIRM, kind="client", accounts={"acc_patel"})
OTHER_FIRM = Principal(sub="st_olivia", firm="firm_b", kind="staff", role="owner")


async def no_mentions(firm: str, thread_id: str) -> frozenset[str]:
    return frozenset()


def feed_on(hub: StreamHub) -> KafkaStreamFeed:
    """A feed for ``hub`` whose consumer each test replaces (``AIOKafkaConsumer``)."""
    return KafkaStreamFeed(
        hub, topic="threadline.messaging.v1", bootstrap_servers="kafka:9092", client_id="test"
    )


def event(data: EventData) -> Envelope[Any]:
    return new_event(data, firm=FIRM, producer="messaging")


def posted(*, internal: bool = False, seq: int = 1, client_seq: int | None = 1) -> Envelope[Any]:
    return event(
        MessagePosted(
            thread_id="th_1",
            account_id=LEE,
            message_id=f"msg_{seq}",
            seq=seq,
            client_seq=None if internal else client_seq,
            author=Author(user_id="st_mia", kind="staff", name="Mia"),
            internal=internal,
            html="<p>Hi</p>",
            text="Hi",
            posted_at=NOW,
        )
    )


def read_by(user_id: str, kind: str) -> Envelope[Any]:
    return event(
        MessagesRead(
            thread_id="th_1",
            account_id=LEE,
            reader={"user_id": user_id, "kind": kind},
            up_to_seq=1,
            read_at=NOW,
        )
    )


@pytest.mark.parametrize(
    ("principal", "sees"),
    [
        (OWNER, True),
        (ASSIGNED, True),
        (MENTIONED, True),
        (CLIENT, True),
        (UNASSIGNED, False),
        (OTHER_CLIENT, False),
        (OTHER_FIRM, False),
    ],
)
def test_t7_only_users_who_may_see_the_thread_get_its_messages(
    principal: Principal, sees: bool
) -> None:
    frame = frame_for(principal, posted(), LEE_THREAD)
    assert (frame is not None) is sees
    if frame is not None:
        assert frame["type"] == "messaging.message.posted"
        assert frame["thread_id"] == "th_1"
        assert frame["data"]["seq"] == 1


@pytest.mark.parametrize("principal", [OWNER, ASSIGNED, MENTIONED])
def test_m3_internal_messages_reach_staff(principal: Principal) -> None:
    assert frame_for(principal, posted(internal=True), LEE_THREAD) is not None


def test_m3_internal_messages_never_reach_clients() -> None:
    assert frame_for(CLIENT, posted(internal=True), LEE_THREAD) is None


def test_r2_clients_never_learn_that_staff_read() -> None:
    assert frame_for(CLIENT, read_by("st_mia", "staff"), LEE_THREAD) is None
    client_frame = frame_for(CLIENT, read_by("ct_ben", "client"), LEE_THREAD)
    assert client_frame is not None
    assert "up_to_seq" not in client_frame["data"], "M3: a position counting internal messages"
    assert frame_for(ASSIGNED, read_by("ct_ben", "client"), LEE_THREAD) is not None


def test_clients_get_no_staff_configuration() -> None:
    created = event(
        ThreadCreated(
            thread_id="th_1",
            account_id=LEE,
            subject="2025 taxes",
            created_by={"user_id": "st_mia", "kind": "staff"},
            to_contact_ids=["ct_ann"],
            first_message_id="msg_1",
            reminders=ReminderSettings(enabled=True),
            job_ids=["job_1"],
            template_id="tpl_1",
        )
    )
    client_frame = frame_for(CLIENT, created, LEE_THREAD)
    staff_frame = frame_for(ASSIGNED, created, LEE_THREAD)
    assert client_frame is not None
    assert staff_frame is not None
    assert {"reminders", "job_ids", "template_id"} & client_frame["data"].keys() == set()
    assert staff_frame["data"]["job_ids"] == ["job_1"]
    linked = event(ThreadLinkedToJob(thread_id="th_1", account_id=LEE, job_id="job_1"))
    assert frame_for(CLIENT, linked, LEE_THREAD) is None
    settings = event(
        FirmChatSettingsChanged(
            clients_can_create_threads=False,
            show_message_context_in_notifications=True,
            revision=2,
            changed_by="st_olivia",
        )
    )
    assert frame_for(CLIENT, settings, None) is None
    assert frame_for(ASSIGNED, settings, None) is not None
    assert frame_for(OTHER_FIRM, settings, None) is None


async def test_hub_fans_out_in_order_and_looks_up_mentions_only_when_needed() -> None:
    lookups: list[tuple[str, str]] = []

    async def mentions(firm: str, thread_id: str) -> frozenset[str]:
        lookups.append((firm, thread_id))
        return frozenset({"st_leo"})

    hub = StreamHub(mentions=mentions, queue_size=10)
    client = hub.subscribe(CLIENT)
    other = hub.subscribe(OTHER_CLIENT)
    await hub.dispatch(posted(seq=1, client_seq=1))
    await hub.dispatch(posted(seq=2, internal=True))
    await hub.dispatch(posted(seq=3, client_seq=2))
    assert lookups == []  # every subscriber's access follows from their accounts
    frames = [client.queue.get_nowait()["data"] for _ in range(2)]
    assert [(f["message_id"], f["seq"]) for f in frames] == [("msg_1", 1), ("msg_3", 2)], (
        "M3: clients number only what they see, so gaps reveal no internal message"
    )
    assert "client_seq" not in frames[0]
    assert client.queue.empty()
    assert other.queue.empty()

    mentioned = hub.subscribe(MENTIONED)
    await hub.dispatch(posted(seq=4))
    assert lookups == [(FIRM, "th_1")]
    assert mentioned.queue.get_nowait()["data"]["seq"] == 4

    hub.unsubscribe(client)
    hub.unsubscribe(other)
    hub.unsubscribe(mentioned)
    assert hub.connections == 0


async def test_a_subscriber_that_falls_behind_is_flagged_not_buffered_forever() -> None:
    hub = StreamHub(mentions=no_mentions, queue_size=2)
    slow = hub.subscribe(OWNER)
    for seq in (1, 2, 3):
        await hub.dispatch(posted(seq=seq))
    assert slow.queue.qsize() == 2
    assert slow.overflowed.is_set()


class _ConsumerWhoseStopHangs:
    """Stands in for an AIOKafkaConsumer whose fetcher swallowed the cancellation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.stop_started = False

    async def start(self) -> None:
        return None

    def assignment(self) -> set[str]:
        return {"threadline.messaging.v1/0"}

    async def position(self, partition: str) -> int:
        return 0

    async def getmany(self, *, timeout_ms: int) -> dict[str, list[Any]]:
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def pause(self, *partitions: str) -> None:
        return None

    def resume(self, *partitions: str) -> None:
        return None

    async def seek_to_end(self, *partitions: str) -> bool:
        return True

    async def stop(self) -> None:
        self.stop_started = True
        await asyncio.Event().wait()


async def test_cancelled_feed_ends_even_when_its_consumer_never_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hanging ``consumer.stop()`` held messaging's shutdown until the harness gave up
    (CI of 2026-12-02); the feed leaves it behind after FEED_STOP_SECONDS."""
    monkeypatch.setattr(stream_module, "AIOKafkaConsumer", _ConsumerWhoseStopHangs)
    monkeypatch.setattr(stream_module, "FEED_STOP_SECONDS", 0.1)

    feed = feed_on(StreamHub(mentions=no_mentions, queue_size=2))
    running = asyncio.create_task(feed.run())
    async with asyncio.timeout(5):
        while not await feed.ready():  # noqa: ASYNC110 - the feed sets no other signal
            await asyncio.sleep(0.01)
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=5)
    assert done == {running} and running.cancelled()
    assert not await feed.ready()


class _Record:
    def __init__(self, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.value = value
        self.headers = headers


class _ConsumerWithRecords(_ConsumerWhoseStopHangs):
    """Hands out ``records`` once, then nothing."""

    records: ClassVar[list[_Record]] = []

    async def getmany(self, *, timeout_ms: int) -> dict[str, list[Any]]:
        records, type(self).records = type(self).records, []
        if records:
            return {"threadline.messaging.v1/0": records}
        return await super().getmany(timeout_ms=timeout_ms)

    async def stop(self) -> None:
        return None


async def test_feed_decodes_only_events_of_firms_someone_here_subscribes_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """T7 with the firm header routing before decoding: another firm's events (a bulk job's
    20,000) cost no decoding; the subscribed firm's events still reach its subscriber, and
    an event without the header is decoded and routed by its firm."""
    ours = posted(seq=1)
    value = ours.model_dump_json().encode()
    _ConsumerWithRecords.records = [
        _Record(b"not even json", [("firm", b"firm_b")]),
        _Record(value, [("firm", FIRM.encode())]),
        _Record(value, []),
    ]
    monkeypatch.setattr(stream_module, "AIOKafkaConsumer", _ConsumerWithRecords)
    decoded: list[bytes] = []
    real_decode = stream_module.decode

    def counting_decode(raw: bytes) -> Envelope[Any]:
        decoded.append(raw)
        return real_decode(raw)

    monkeypatch.setattr(stream_module, "decode", counting_decode)

    hub = StreamHub(mentions=no_mentions, queue_size=10)
    owner = hub.subscribe(OWNER)
    feed = feed_on(hub)
    running = asyncio.create_task(feed.run())
    try:
        async with asyncio.timeout(5):
            while owner.queue.qsize() < 2:  # noqa: ASYNC110 - the hub sets no other signal
                await asyncio.sleep(0.01)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert decoded == [value, value]
    assert [owner.queue.get_nowait()["data"]["seq"] for _ in range(2)] == [1, 1]
    assert hub.listens_to(FIRM) and not hub.listens_to("firm_b")


class _PausableConsumer(_ConsumerWithRecords):
    """Records what the feed asks of it; an empty fetch takes 10 ms."""

    calls: ClassVar[list[str]] = []

    def pause(self, *partitions: str) -> None:
        self.calls.append("pause")

    def resume(self, *partitions: str) -> None:
        self.calls.append("resume")

    async def seek_to_end(self, *partitions: str) -> bool:
        self.calls.append("seek_to_end")
        return True

    async def getmany(self, *, timeout_ms: int) -> dict[str, list[Any]]:
        self.calls.append("getmany")
        return await super().getmany(timeout_ms=10)


async def test_feed_fetches_nothing_while_nobody_subscribes_and_resumes_from_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With nobody subscribed the feed fetches nothing (a bulk job's 20,000 events cost the
    app's loop nothing). A subscriber is told the stream is live only once the feed has
    moved to the topic's end and fetches again, and then gets its firm's events (T7);
    when the last subscriber leaves, fetching stops again. Readiness stays."""
    _PausableConsumer.calls, _PausableConsumer.records = [], []
    monkeypatch.setattr(stream_module, "AIOKafkaConsumer", _PausableConsumer)

    calls = _PausableConsumer.calls
    hub = StreamHub(mentions=no_mentions, queue_size=10)
    feed = feed_on(hub)
    running = asyncio.create_task(feed.run())
    try:
        async with asyncio.timeout(5):
            while "pause" not in calls:  # noqa: ASYNC110 - the feed sets no other signal
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # ten empty fetches' time
            assert calls == ["pause"], "nobody subscribed, yet the feed fetched"
            assert await feed.ready()

            owner = hub.subscribe(OWNER)
            await feed.live()
            assert calls[:3] == ["pause", "seek_to_end", "resume"]
            another = hub.subscribe(ASSIGNED)
            await feed.live()  # fetching already: nothing to wait for
            assert calls.count("seek_to_end") == 1

            value = posted(seq=7).model_dump_json().encode()
            _PausableConsumer.records = [_Record(value, [("firm", FIRM.encode())])]
            frame = await owner.queue.get()
            assert frame["data"]["seq"] == 7

            hub.unsubscribe(owner)
            hub.unsubscribe(another)
            while calls.count("pause") < 2:  # noqa: ASYNC110 - as above
                await asyncio.sleep(0.01)
            assert await feed.ready()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_subscriber_waits_a_bounded_time_for_a_feed_that_is_down() -> None:
    feed = feed_on(StreamHub(mentions=no_mentions, queue_size=2))
    async with asyncio.timeout(1):
        await feed.live(within_seconds=0.05)
