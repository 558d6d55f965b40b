"""Graceful shutdown of a real uvicorn messaging process (issue 9): on SIGTERM the open
real-time streams are closed with 1001 (going away), requests in flight are answered and
stored with nothing left pending in the outbox, and the event consumer stops after the
record in hand with its offset committed — nothing handled is redelivered, nothing
unhandled is skipped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from pymongo import AsyncMongoClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from threadline.contracts import decode, new_event
from threadline.contracts.events.directory import AccountUpserted
from threadline.contracts.topics import Topic
from threadline.devtools.ports import free_port
from threadline.devtools.seed import demo_directory, publish

from .conftest import ServiceFactory, TopicMark, eventually, mark_topic, token_for

pytestmark = pytest.mark.integration

OUTBOX_COLLECTIONS = ("threads", "messages", "read_cursors", "firm_settings")
GOING_AWAY = 1001


@dataclass
class Messaging:
    """A messaging process run by uvicorn, as in production (its database and consumer
    group are the ones ``start_service("messaging")`` would use with the same run id)."""

    process: asyncio.subprocess.Process
    http: httpx.AsyncClient
    url: str
    database: str
    group: str

    async def stopped(self) -> int:
        """SIGTERM, then the exit code (uvicorn re-raises the captured signal once its
        shutdown completed, so -SIGTERM is a clean exit too)."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout=60)
        assert code in (0, -signal.SIGTERM), code
        return code


@asynccontextmanager
async def messaging_process(run_id: str) -> AsyncIterator[Messaging]:
    port = free_port()
    database, group = f"it_messaging_{run_id}", f"it-messaging-{run_id}"
    env = os.environ | {
        "MESSAGING_MONGODB_DATABASE": database,
        "MESSAGING_CONSUMER_GROUP": group,
        "MESSAGING_CONSUMER_START": "latest",
        "MESSAGING_SHUTDOWN_DEADLINE_SECONDS": "20",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "--factory", "threadline.messaging.main:create_app",
        "--port", str(port), "--timeout-graceful-shutdown", "15", env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def ready() -> int:
                try:
                    return (await http.get("/readyz")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(ready, until=lambda code: code == 200, within=90)
            yield Messaging(process, http, url, database, group)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def mongo() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ["THREADLINE_MONGODB_URL"]
    )
    yield client
    await client.close()


async def test_sigterm_closes_streams_with_1001_and_a_burst_of_posts_loses_nothing(
    run_id: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    firm = f"firm_{run_id}"
    token = token_for(firm, role="owner", sub="st_olivia")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with messaging_process(run_id) as service:
            http = service.http
            await publish(os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"], demo_directory(firm))
            body = {"account_id": "acc_lee_family", "subject": "Burst", "message": {"html": "x"}}

            async def created() -> httpx.Response:
                return await http.post("/v1/threads", json=body, headers=headers)

            thread = (await eventually(created, until=lambda r: r.status_code == 201)).json()
            stream_url = service.url.replace("http://", "ws://") + "/v1/stream"
            async with connect(stream_url, additional_headers=headers) as stream:
                hello = json.loads(await asyncio.wait_for(stream.recv(), 30))
                assert hello["type"] == "stream.ready", hello
                answered: list[int] = []

                async def post(number: int) -> tuple[int, str | None]:
                    try:
                        response = await http.post(
                            f"/v1/threads/{thread['id']}/messages",
                            json={"html": f"<p>{number}</p>"},
                            headers=headers,
                        )
                    except httpx.TransportError:
                        return 0, None  # refused: the server had stopped taking requests
                    answered.append(response.status_code)
                    ok = response.status_code == 201
                    return response.status_code, response.json()["id"] if ok else None

                burst = [asyncio.create_task(post(number)) for number in range(80)]
                await eventually(lambda: _count(answered), until=lambda n: n >= 10)
                stopping = asyncio.create_task(service.stopped())
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(30):
                        while True:  # frames of the burst, then the close
                            await stream.recv()
                assert closed.value.rcvd is not None, "the server closed the stream"
                assert closed.value.rcvd.code == GOING_AWAY, closed.value.rcvd
                results = await asyncio.gather(*burst)
                await stopping

        stored_ids = [message_id for status, message_id in results if status == 201]
        assert stored_ids, "some posts were answered before the shutdown"
        assert all(status in (0, 201, 503) for status, _ in results), results
        messages = mongo[service.database]["messages"]
        assert await messages.count_documents({"_id": {"$in": stored_ids}}) == len(stored_ids)
        for name in OUTBOX_COLLECTIONS:
            pending = await mongo[service.database][name].count_documents(
                {"_outbox.0": {"$exists": True}}
            )
            assert pending == 0, f"{name} still holds unpublished events"
    finally:
        await mongo.drop_database(f"it_messaging_{run_id}")


ACCOUNTS = 60


async def test_sigterm_stops_the_consumer_after_the_record_in_hand_with_its_offset_committed(
    run_id: str, start_service: ServiceFactory, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    """A burst of directory events, SIGTERM while messaging is projecting them: at exit,
    every event of the burst before the group's committed offset was handled and none after
    it (so a restart redelivers none that was handled and skips none that was not); the
    restarted service (same group, same database) then projects the rest. (On a fast
    machine the whole burst may be handled before the consumer stops; the offsets must
    then cover all of it.)"""
    firm = f"firm_{run_id}"
    bootstrap = os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
    burst = [account(firm, f"acc_{index}") for index in range(ACCOUNTS)]
    burst_ids = {str(event.id) for event in burst}
    async with messaging_process(run_id) as service:
        mark = await mark_topic(bootstrap, Topic.DIRECTORY)
        # First one account per partition, handled and committed: a partition where the
        # group never committed would restart at the topic's end ("latest", as tests do).
        await publish(bootstrap, [account(firm, key) for key in one_key_per_partition(mark)])
        await eventually(
            lambda: committed_offsets(bootstrap, service.group, mark),
            until=lambda offsets: None not in offsets.values(),
        )
        accounts = mongo[service.database]["directory_accounts"]
        await publish(bootstrap, burst)

        async def projected() -> int:
            return await accounts.count_documents({"firm": firm})

        await eventually(projected, until=lambda count: count >= len(mark.offsets) + 10)
        await service.stopped()
    handled = {
        doc["_id"]
        async for doc in mongo[service.database]["processed_events"].find(
            {"_id": {"$in": list(burst_ids)}}, {"_id": 1}
        )
    }
    assert len(handled) >= 10, "the burst was being handled when SIGTERM came"
    committed = await committed_offsets(bootstrap, service.group, mark)
    before, after = await burst_around(mark, committed, burst_ids)
    assert before | after == burst_ids, "every event of the burst was read back"
    assert handled == before, "handled exactly the events up to the committed offsets"

    app, _ = await start_service("messaging")  # the same database and group, consuming on
    database = app.state.runtime.database
    await eventually(
        lambda: database["directory_accounts"].count_documents({"firm": firm}),
        until=lambda count: count == ACCOUNTS + len(mark.offsets),
        within=180,
    )
    assert app.state.runtime.events.stats["duplicates"] == 0, "nothing handled came twice"


def account(firm: str, account_id: str) -> Any:
    upserted = AccountUpserted(
        account_id=account_id, name=account_id, contacts=[], assigned_staff=[]
    )
    return new_event(upserted, firm=firm, key=account_id, producer="test")


def one_key_per_partition(mark: TopicMark) -> list[str]:
    """Account ids that the default partitioner spreads one to each of the topic's
    partitions."""
    partitions = sorted(partition.partition for partition in mark.offsets)
    choose = DefaultPartitioner()
    keys: dict[int, str] = {}
    candidate = 0
    while len(keys) < len(partitions):
        key = f"acc_warm_{candidate}"
        keys.setdefault(choose(key.encode(), partitions, partitions), key)
        candidate += 1
    return list(keys.values())


async def committed_offsets(
    bootstrap: str, group: str, mark: TopicMark
) -> dict[TopicPartition, int | None]:
    """The group's committed offset per partition of ``mark`` (None: never committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return {partition: await consumer.committed(partition) for partition in mark.offsets}
    finally:
        await consumer.stop()


async def burst_around(
    mark: TopicMark, committed: dict[TopicPartition, int | None], ids: set[str]
) -> tuple[set[str], set[str]]:
    """The ids of ``ids`` found after ``mark``: those before each partition's committed
    offset, and those at or after it."""
    before: set[str] = set()
    after: set[str] = set()
    consumer = AIOKafkaConsumer(bootstrap_servers=mark.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(mark.offsets))
        for partition, offset in mark.offsets.items():
            consumer.seek(partition, offset)
        async with asyncio.timeout(120):
            while before | after != ids:
                for partition, records in (await consumer.getmany(timeout_ms=500)).items():
                    for record in records:
                        event_id = _event_id(record.value)
                        if event_id in ids:
                            ends_at = committed[partition]
                            assert ends_at is not None, partition
                            side = before if record.offset < ends_at else after
                            side.add(event_id)
    finally:
        await consumer.stop()
    return before, after


def _event_id(value: bytes | None) -> str | None:
    try:
        return str(decode(value or b"").id)
    except Exception:  # other runs' records on the shared topic, malformed ones included
        return None


async def _count(items: list[int]) -> int:
    return len(items)
