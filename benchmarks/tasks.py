"""Tasks benchmark: prints figures measured in one run on the running local stack.

    ./threadline servers && eval "$(./threadline env)" && .venv/bin/python benchmarks/tasks.py

What it measures (issue "Tasks service", Benchmark), against real uvicorn processes of
messaging and tasks:
1. tick latency p50/p99 (PUT/DELETE .../tasks/{id}/done, one after another), and a raw
   baseline measured in the same run: one findAndModify on a list document + one
   acknowledged Kafka produce, one after another; the ratio of their p99s (target ≤ 2);
2. tick → ``tasks.list.changed`` on Kafka (from the tick's start to the record's arrival);
3. tick → the new progress visible in messaging's thread list (polled every 10 ms),
   target p99 ≤ 500 ms.
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
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient, ReturnDocument

from threadline.contracts.topics import Topic
from threadline.devtools.seed import demo_directory, publish
from threadline.devtools.token import mint_token

sys.path.insert(0, os.path.dirname(__file__))
from _process import ServiceProcess, create_raw_topic
from messaging import RAW_TOPIC, progress, summary

ACCOUNT = "acc_lee_family"


def service(name: str, firm: str) -> ServiceProcess:
    """One service with its own database and consumer group."""
    return ServiceProcess(name, database=f"bench_{name}_{firm}", group=f"bench-{name}-{firm}")


class ChangeWatcher:
    """Arrival time of each ``tasks.list.changed`` revision of one thread."""

    def __init__(self, bootstrap: str, thread_id: str) -> None:
        self.consumer = AIOKafkaConsumer(
            Topic.TASKS, bootstrap_servers=bootstrap, auto_offset_reset="latest"
        )
        self.thread_id = thread_id
        self.arrivals: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        for _ in range(200):
            if self.consumer.assignment():
                break
            await asyncio.sleep(0.05)
        for partition in self.consumer.assignment():
            await self.consumer.position(partition)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for record in self.consumer:
            if record.key != self.thread_id.encode():
                continue
            event = json.loads(record.value)
            if event["type"] == "tasks.list.changed":
                self.arrivals[event["data"]["revision"]] = time.perf_counter()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.consumer.stop()


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.firm = f"bench_{uuid.uuid4().hex[:8]}"
        self.bootstrap = os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
        self.mongo: AsyncMongoClient[Any] = AsyncMongoClient(os.environ["THREADLINE_MONGODB_URL"])
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
        )
        self.messaging = service("messaging", self.firm)
        self.tasks = service("tasks", self.firm)
        staff = mint_token(
            sub="st_mia", firm=self.firm, kind="staff", role="member", accounts=[ACCOUNT]
        )
        client = mint_token(sub="ct_ann_lee", firm=self.firm, kind="client", accounts=[ACCOUNT])
        self.staff = {"Authorization": f"Bearer {staff}"}
        self.client = {"Authorization": f"Bearer {client}"}

    async def run(self) -> None:
        await create_raw_topic(self.bootstrap, RAW_TOPIC)
        await self.producer.start()
        try:
            await asyncio.gather(self.messaging.start(), self.tasks.start())
            await publish(self.bootstrap, demo_directory(self.firm))
            async with (
                httpx.AsyncClient(base_url=self.messaging.url, timeout=30) as messaging,
                httpx.AsyncClient(base_url=self.tasks.url, timeout=30) as tasks,
            ):
                await self.measure(messaging, tasks)
        finally:
            await asyncio.gather(self.messaging.stop(), self.tasks.stop())
            await self.producer.stop()
            for database in (self.messaging.database, self.tasks.database):
                await self.mongo.drop_database(database)
            await self.mongo.close()

    async def new_thread(self, messaging: httpx.AsyncClient) -> tuple[str, list[str]]:
        body = {
            "account_id": ACCOUNT,
            "subject": "bench",
            "message": {"html": "start"},
            "client_tasks": [
                f"Task {i}: see https://example.com/{i}" for i in range(self.args.tasks)
            ],
        }
        for _ in range(150):  # until messaging's directory projection has the firm
            created = await messaging.post("/v1/threads", json=body, headers=self.staff)
            if created.status_code == 201:
                thread = created.json()
                return thread["id"], [task["task_id"] for task in thread["client_tasks"]]
            await asyncio.sleep(0.2)
        raise RuntimeError(f"could not create the benchmark thread: {created.text}")

    async def shown(self, messaging: httpx.AsyncClient, thread_id: str) -> int | None:
        """Tasks done for ``thread_id`` as messaging's thread list shows them."""
        params = {"account_id": ACCOUNT, "limit": 5}
        listed = await messaging.get("/v1/threads", params=params, headers=self.staff)
        rows = [row for row in listed.json()["threads"] if row["id"] == thread_id]
        return int(rows[0]["tasks"]["done"]) if rows else None

    async def measure_ticks(
        self, messaging: httpx.AsyncClient, tasks: httpx.AsyncClient
    ) -> tuple[list[float], list[float], float]:
        """Back-to-back ticks and undos: their latency, their tick → Kafka latency, and how
        long after the last one messaging's list showed it (3 s unchanged)."""
        progress(f"creating the benchmark thread with {self.args.tasks} tasks")
        thread_id, task_ids = await self.new_thread(messaging)
        (await tasks.get(f"/v1/threads/{thread_id}/tasks", headers=self.client)).raise_for_status()
        watcher = ChangeWatcher(self.bootstrap, thread_id)
        await watcher.start()
        started_at: dict[int, float] = {}
        latency: list[float] = []
        done = 0
        progress(f"{self.args.samples} ticks, one after another")
        for i in range(self.args.samples):
            ticking = (i // self.args.tasks) % 2 == 0
            url = f"/v1/threads/{thread_id}/tasks/{task_ids[i % self.args.tasks]}/done"
            started = time.perf_counter()
            response = await (tasks.put if ticking else tasks.delete)(url, headers=self.client)
            response.raise_for_status()
            latency.append(time.perf_counter() - started)
            started_at[response.json()["revision"]] = started
            done += 1 if ticking else -1
        progress("waiting for messaging to show the last of them")
        last_tick, steady_since = time.perf_counter(), None
        while time.perf_counter() - last_tick < 180:
            if await self.shown(messaging, thread_id) != done:
                steady_since = None
            elif steady_since is None:
                steady_since = time.perf_counter()
            elif time.perf_counter() - steady_since >= 3:
                break
            await asyncio.sleep(0.05)
        await watcher.stop()
        to_kafka = [watcher.arrivals[r] - t for r, t in started_at.items() if r in watcher.arrivals]
        return latency, to_kafka, (steady_since or time.perf_counter()) - last_tick

    async def measure_progress(
        self, messaging: httpx.AsyncClient, tasks: httpx.AsyncClient
    ) -> list[float]:
        """Ticks on a fresh thread, each followed by polling messaging's list (10 ms) until
        it shows the new count."""
        count = min(self.args.samples // 4, self.args.tasks)
        progress(f"{count} ticks on a second thread, each waiting for messaging's thread list")
        thread_id, task_ids = await self.new_thread(messaging)
        latency: list[float] = []
        for n, task_id in enumerate(task_ids[:count], start=1):
            url = f"/v1/threads/{thread_id}/tasks/{task_id}/done"
            started = time.perf_counter()
            (await tasks.put(url, headers=self.client)).raise_for_status()
            while await self.shown(messaging, thread_id) != n:
                if time.perf_counter() - started > 10:
                    raise RuntimeError("progress did not reach messaging within 10 s")
                await asyncio.sleep(0.01)
            latency.append(time.perf_counter() - started)
        return latency

    async def measure(self, messaging: httpx.AsyncClient, tasks: httpx.AsyncClient) -> None:
        samples = self.args.samples
        tick_latency, to_kafka, catch_up = await self.measure_ticks(messaging, tasks)
        progress_latency = await self.measure_progress(messaging, tasks)
        raw_latency = await self.measure_raw(f"raw-{self.firm}", samples)

        def p99(values: list[float]) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000

        print(f"tick (PUT/DELETE …/done):          {summary(tick_latency)}")
        print(f"raw findAndModify + produce:       {summary(raw_latency)}")
        print(
            f"tick p99 / raw p99:                {p99(tick_latency) / p99(raw_latency):8.2f}"
            "  (target <= 2.00)"
        )
        print(
            f"tick -> tasks.list.changed:        {summary(to_kafka)}"
            f"  ({len(to_kafka)}/{len(tick_latency)} seen)"
        )
        print(f"tick -> progress in thread list:   {summary(progress_latency)}  (target p99 500)")
        print(
            f"messaging showed the last of {samples} back-to-back ticks {catch_up:5.1f} s after it"
        )

    async def measure_raw(self, thread_id: str, samples: int) -> list[float]:
        """The baseline: what one tick must at least do — one findAndModify of a list
        document and one acknowledged produce — one after another."""
        raw = self.mongo[self.tasks.database]["benchmark_raw"]
        tasks = self.args.tasks
        await raw.insert_one({"_id": thread_id, "revision": 0, "tasks": [False] * tasks})
        latencies: list[float] = []
        progress(f"{samples} raw findAndModify + produce, one after another")
        for i in range(samples):
            started = time.perf_counter()
            document = await raw.find_one_and_update(
                {"_id": thread_id},
                {"$set": {f"tasks.{i % tasks}": (i // tasks) % 2 == 0}, "$inc": {"revision": 1}},
                return_document=ReturnDocument.AFTER,
            )
            value = json.dumps({"revision": document["revision"], "n": i}).encode()
            await self.producer.send_and_wait(RAW_TOPIC, value, key=thread_id.encode())
            latencies.append(time.perf_counter() - started)
        return latencies


async def main(args: argparse.Namespace) -> None:
    async with asyncio.timeout(args.time_limit):
        await Benchmark(args).run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="back-to-back ticks")
    parser.add_argument("--tasks", type=int, default=10, help="tasks per list (1-100)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="whole run, seconds")
    asyncio.run(main(parser.parse_args()))
