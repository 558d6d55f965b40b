"""Messaging benchmark: prints figures measured in one run on the running local stack.

    ./threadline servers && eval "$(./threadline env)" && .venv/bin/python benchmarks/messaging.py

What it measures (issue "Messaging service", Speed), against a real uvicorn process:
1. saturation throughput of POST /messages, and of a raw baseline doing the same storage
   work directly (one Mongo insert + one acknowledged Kafka produce per message) at the
   same concurrency, and their ratio;
2. post latency p50/p99 at half the measured saturation rate (paced, open loop), and the
   post→stream delivery latency of those same messages to a WebSocket subscriber;
3. thread-list latency p50/p99 for an account with 10,000 threads;
4. mark-read latency p50/p99.
Every phase is bounded in count and time; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from websockets.asyncio.client import ClientConnection, connect

from threadline.devtools.seed import demo_directory, publish
from threadline.devtools.token import mint_token

sys.path.insert(0, os.path.dirname(__file__))
from _process import ServiceProcess, create_raw_topic

ACCOUNT = "acc_lee_family"
RAW_TOPIC = "threadline.benchmark.raw.v1"
Operation = Callable[[int], Awaitable[None]]


def progress(phase: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {phase}", file=sys.stderr, flush=True)


def percentile_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def summary(samples: list[float]) -> str:
    return f"p50 {percentile_ms(samples, 0.5):6.1f} ms  p99 {percentile_ms(samples, 0.99):6.1f} ms"


async def saturate(operation: Operation, *, concurrency: int, seconds: float) -> float:
    """Operations per second with ``concurrency`` closed-loop workers for ``seconds``."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker(index: int) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < deadline:
            await operation(index * 1_000_000 + n)
            n += 1
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - started)


async def paced(operation: Operation, *, rate: float, count: int) -> list[float]:
    """Latencies of ``count`` operations started at ``rate`` per second (open loop)."""
    latencies: list[float] = []

    async def one(i: int) -> None:
        started = time.perf_counter()
        await operation(i)
        latencies.append(time.perf_counter() - started)

    tasks = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies


async def sequential(
    operation: Callable[[int], Awaitable[Any]], count: int, *, within: float = 120.0
) -> list[float]:
    """Latencies of up to ``count`` operations one after another, stopping after ``within`` s."""
    latencies = []
    deadline = time.perf_counter() + within
    for i in range(count):
        if time.perf_counter() > deadline:
            break
        started = time.perf_counter()
        await operation(i)
        latencies.append(time.perf_counter() - started)
    return latencies


async def seed_threads(mongo: AsyncMongoClient[Any], database: str, firm: str, count: int) -> None:
    """Insert ``count`` threads for one account directly, in the service's document shape."""
    now = datetime.now(UTC)
    documents = [
        {
            "_id": f"bench-{i:06d}",
            "firm": firm,
            "account_id": ACCOUNT,
            "subject": f"Thread {i}",
            "status": "active",
            "created_by": {"user_id": "st_mia", "kind": "staff"},
            "created_at": now,
            "to_contact_ids": ["ct_ann_lee"],
            "job_ids": [],
            "mentioned_staff": [],
            "seq": 1,
            "last_activity_at": now - timedelta(seconds=i + 1),
            "client_activity_at": now - timedelta(seconds=i + 1),
            "last_message": None,
            "last_client_message": None,
            "tasks_progress": {"done": 0, "total": 0, "open": 0},
            "reminders": {"enabled": False, "days_between": 3, "max_reminders": 1},
        }
        for i in range(count)
    ]
    for start in range(0, count, 1000):
        await mongo[database]["threads"].insert_many(documents[start : start + 1000])


class StreamWatcher:
    """Records when each message id arrives on a WebSocket subscription."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.arrivals: dict[str, float] = {}
        self._expected: set[str] = set()
        self._all_arrived = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._ws:
            frame = json.loads(raw)
            if frame["type"] == "messaging.message.posted":
                self.arrivals[frame["data"]["message_id"]] = time.perf_counter()
                if self._expected and self._expected <= self.arrivals.keys():
                    self._all_arrived.set()

    async def wait_for(self, message_ids: set[str], *, within: float) -> None:
        """Wait until every id arrived, or ``within`` seconds (missing ones are reported)."""
        self._expected = message_ids
        if message_ids <= self.arrivals.keys():
            return
        try:
            await asyncio.wait_for(self._all_arrived.wait(), within)
        except TimeoutError:
            return

    def stop(self) -> None:
        self._task.cancel()


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.firm = f"bench_{uuid.uuid4().hex[:8]}"
        self.database = f"bench_messaging_{self.firm}"
        self.server = ServiceProcess(
            "messaging", database=self.database, group=f"bench-{self.firm}"
        )
        self.url = self.server.url
        self.bootstrap = os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
        self.mongo: AsyncMongoClient[Any] = AsyncMongoClient(os.environ["THREADLINE_MONGODB_URL"])
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
        )
        self.staff_token = mint_token(
            sub="st_mia", firm=self.firm, kind="staff", role="member", accounts=[ACCOUNT]
        )
        self.client_token = mint_token(
            sub="ct_ann_lee", firm=self.firm, kind="client", accounts=[ACCOUNT]
        )

    async def first_thread(self, http: httpx.AsyncClient) -> str:
        """Create the benchmark thread once the directory projection has the firm."""
        body = {"account_id": ACCOUNT, "subject": "bench", "message": {"html": "start"}}
        for _ in range(150):
            created = await http.post("/v1/threads", json=body)
            if created.status_code == 201:
                return str(created.json()["id"])
            await asyncio.sleep(0.2)
        raise RuntimeError(f"could not create the benchmark thread: {created.text}")

    async def run(self) -> None:
        await create_raw_topic(self.bootstrap, RAW_TOPIC)
        await self.producer.start()
        server = self.server
        await server.start()
        try:
            await publish(self.bootstrap, demo_directory(self.firm))
            headers = {"Authorization": f"Bearer {self.staff_token}"}
            async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30) as http:
                await self.measure(http)
        finally:
            await server.stop()
            await self.producer.stop()
            await self.mongo.drop_database(self.database)
            await self.mongo.close()

    async def measure(self, http: httpx.AsyncClient) -> None:
        progress("creating the benchmark thread")
        thread_id = await self.first_thread(http)
        await self.measure_posts(http, thread_id)
        await self.measure_thread_list(http)
        await self.measure_mark_read(http, thread_id)

    async def measure_posts(self, http: httpx.AsyncClient, thread_id: str) -> None:
        args = self.args
        body = {"html": "<p>Please upload your <strong>W-2</strong> 📎</p>"}
        posted_at: dict[str, float] = {}

        async def post_via_api(_: int) -> None:
            started = time.perf_counter()
            response = await http.post(f"/v1/threads/{thread_id}/messages", json=body)
            response.raise_for_status()
            posted_at[response.json()["id"]] = started

        raw = self.mongo[self.database]["benchmark_raw"]

        async def raw_baseline(n: int) -> None:
            document = {"_id": str(uuid.uuid4()), "thread_id": thread_id, "n": n, **body}
            await raw.insert_one(document)
            value = json.dumps(document).encode()
            await self.producer.send_and_wait(RAW_TOPIC, value, key=thread_id.encode())

        progress("saturating the API")
        api_rate = await saturate(post_via_api, concurrency=args.concurrency, seconds=args.seconds)
        progress("saturating the raw baseline")
        raw_rate = await saturate(raw_baseline, concurrency=args.concurrency, seconds=args.seconds)

        progress("paced posts at half the API rate, with a stream subscriber")
        stream_url = self.url.replace("http://", "ws://") + "/v1/stream"
        auth = {"Authorization": f"Bearer {self.staff_token}"}
        async with connect(stream_url, additional_headers=auth) as ws:
            await ws.recv()  # stream.ready
            watcher = StreamWatcher(ws)
            posted_at.clear()
            post_latency = await paced(post_via_api, rate=api_rate / 2, count=args.samples)
            await watcher.wait_for(set(posted_at), within=30)
            watcher.stop()
        delivered = [watcher.arrivals[m] - posted_at[m] for m in posted_at if m in watcher.arrivals]
        round_trip = await sequential(lambda _: raw.find_one({"_id": "none"}), args.samples)

        print(f"post throughput, API ({args.concurrency} workers): {api_rate:8.1f} msg/s")
        print(f"post throughput, raw insert + produce:   {raw_rate:8.1f} msg/s")
        print(
            f"API / raw:                               {api_rate / raw_rate:8.2f}  (target >= 0.50)"
        )
        print(f"post at {api_rate / 2:5.0f} msg/s:  {summary(post_latency)}  (targets 20 / 100)")
        print(
            f"post -> stream:        {summary(delivered)}  (target p99 100; "
            f"{len(delivered)}/{len(posted_at)} delivered)"
        )
        print(f"one storage round trip (find by _id):      {summary(round_trip)}")

    async def measure_thread_list(self, http: httpx.AsyncClient) -> None:
        progress("seeding 10,000 threads")
        await seed_threads(self.mongo, self.database, self.firm, 10_000)
        threads = self.mongo[self.database]["threads"]
        query = {"firm": self.firm, "account_id": ACCOUNT, "status": "active"}
        order = [("last_activity_at", -1), ("_id", -1)]

        async def list_threads(_: int) -> None:
            params = {"account_id": ACCOUNT, "limit": 25}
            (await http.get("/v1/threads", params=params)).raise_for_status()

        async def sorted_find(_: int) -> None:
            await threads.find(query).sort(order).limit(26).to_list()

        samples, seconds = self.args.samples, self.args.seconds * 3
        progress("listing threads")
        list_latency = await sequential(list_threads, samples, within=seconds)
        progress("the list's query straight to the server")
        server_latency = await sequential(sorted_find, samples, within=seconds)
        print(f"thread list, 10,000:   {summary(list_latency)}  (target p99 50)")
        print(f"  its sorted find alone, straight to the server: {summary(server_latency)}")

    async def measure_mark_read(self, http: httpx.AsyncClient, thread_id: str) -> None:
        client_auth = {"Authorization": f"Bearer {self.client_token}"}

        async def mark_read(_: int) -> None:
            url = f"/v1/threads/{thread_id}/read"
            (await http.post(url, json={}, headers=client_auth)).raise_for_status()

        progress("marking read")
        read_latency = await sequential(mark_read, self.args.samples)
        print(f"mark read:             {summary(read_latency)}  (target p99 50)")


async def main(args: argparse.Namespace) -> None:
    async with asyncio.timeout(args.time_limit):
        await Benchmark(args).run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="per saturation phase")
    parser.add_argument("--samples", type=int, default=300, help="per latency phase")
    parser.add_argument("--time-limit", type=float, default=600.0, help="whole run, seconds")
    asyncio.run(main(parser.parse_args()))
