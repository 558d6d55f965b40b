"""Automove benchmark: jobs through the whole J1/J2 loop, on the running local stack.

    ./threadline servers && eval "$(./threadline env)" && .venv/bin/python benchmarks/automove.py

Messaging, tasks and pipeline run as real uvicorn processes (fresh databases and consumer
groups). A pipeline "Docs" (send message: a template with one client task, new thread;
automove on) → "Preparing". For each of ``--jobs`` jobs (``--concurrency`` at a time):

1. create the job (HTTP 201 = stage entry) and wait for its thread's first message to be
   stored (``messaging.message.posted`` of the thread created for the job, read from Kafka):
   **stage entry → client's message visible**;
2. once the task exists and pipeline has the link, the client ticks it (HTTP 200) and we
   wait for ``pipeline.job.moved``: **last tick → moved**.

The raw baseline, measured in the same run on the same servers: one acknowledged Kafka
produce → consume hop, one MongoDB find by id, one conditional single-document update.
The loop's raw hops are summed from those: tick → moved = 2 Kafka hops + 3 finds + 3
updates (tasks stores the tick; pipeline dedupes, reads job and pipeline, writes the move
and its processed mark); entry → visible = 2 Kafka hops + 4 finds + 3 updates (messaging
dedupes, reads the directory and template, writes the thread, the message and its
sequence). Target: p99 tick → moved ≤ 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

from threadline.contracts import decode
from threadline.contracts.topics import Topic
from threadline.devtools.seed import demo_directory, publish
from threadline.devtools.token import mint_token

sys.path.insert(0, os.path.dirname(__file__))
from _process import ServiceProcess

ACCOUNT = "acc_lee_family"
RAW_TOPIC = "threadline.benchmark.raw.v1"
SERVICES = ("messaging", "tasks", "pipeline")
T = TypeVar("T")


async def at_end(bootstrap: str, *topics: str) -> AIOKafkaConsumer:
    """A group-less consumer assigned every partition of ``topics``, positioned at their
    end before returning (so nothing published afterwards is missed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await consumer.start()
    partitions = []
    for topic in topics:
        for _ in range(100):
            found = await consumer._client.fetch_all_metadata()
            numbers = found.partitions_for_topic(topic)
            if numbers:
                partitions += [TopicPartition(topic, number) for number in numbers]
                break
            await asyncio.sleep(0.1)
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)
    return consumer


def progress(phase: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {phase}", file=sys.stderr, flush=True)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def line(name: str, samples: list[float]) -> str:
    return f"{name:<38} p50 {pct(samples, 0.5):7.1f} ms   p99 {pct(samples, 0.99):7.1f} ms"


class Watch:
    """Group-less consumer of the messaging and pipeline topics from their end: records
    when each job's thread, first message and move were seen."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.thread_of: dict[str, str] = {}
        self.posted_at: dict[str, float] = {}
        self.moved_at: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def start(self) -> None:
        self.consumer = await at_end(self.bootstrap, Topic.MESSAGING, Topic.PIPELINE)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    kind = dict(record.headers).get("event-type", b"").decode()
                    if kind not in {
                        "messaging.thread.created",
                        "messaging.message.posted",
                        "pipeline.job.moved",
                    }:
                        continue
                    event = decode(record.value)
                    if kind == "messaging.thread.created":
                        for job_id in event.data.job_ids:
                            self.thread_of[job_id] = event.data.thread_id
                    elif kind == "messaging.message.posted":
                        self.posted_at.setdefault(event.data.thread_id, now)
                    else:
                        self.moved_at.setdefault(event.data.job_id, now)
            if batch:
                self.changed.set()
                self.changed.clear()

    async def wait(self, check: Callable[[], T | None], *, seconds: float = 120) -> T:
        deadline = time.perf_counter() + seconds
        while (found := check()) is None:
            if time.perf_counter() > deadline:
                raise TimeoutError("the loop did not complete in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.2)
        return found

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.consumer.stop()


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.firm = f"bench_{uuid.uuid4().hex[:8]}"
        self.bootstrap = os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
        self.mongo_url = os.environ["THREADLINE_MONGODB_URL"]
        self.servers = {
            name: ServiceProcess(
                name, database=self.database(name), group=f"bench-{name}-{self.firm}"
            )
            for name in SERVICES
        }
        self.urls = {name: server.url for name, server in self.servers.items()}
        self.staff = mint_token(sub="st_olivia", firm=self.firm, kind="staff", role="owner")
        self.client = mint_token(
            sub="ct_ann_lee", firm=self.firm, kind="client", accounts=[ACCOUNT]
        )

    def database(self, service: str) -> str:
        return f"bench_{service}_{self.firm}"

    async def start_servers(self) -> None:
        await asyncio.gather(*(server.start() for server in self.servers.values()))

    async def stop_servers(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers.values()))
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(self.mongo_url)
        for service in SERVICES:
            await mongo.drop_database(self.database(service))
        await mongo.close()

    async def raw_hops(self, samples: int) -> dict[str, list[float]]:
        """The baseline: Kafka produce → consume, Mongo find by id, conditional update."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        await producer.send_and_wait(RAW_TOPIC, b"warm-up")
        consumer = await at_end(self.bootstrap, RAW_TOPIC)
        kafka: list[float] = []
        for index in range(samples):
            payload = f"{self.firm}-{index}".encode()
            started = time.perf_counter()
            await producer.send_and_wait(RAW_TOPIC, payload, key=payload)
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                if any(r.value == payload for records in batch.values() for r in records):
                    break
            kafka.append(time.perf_counter() - started)
        await producer.stop()
        await consumer.stop()
        progress("raw hops: Kafka measured, now MongoDB")
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(self.mongo_url)
        collection = mongo[self.database("raw")]["jobs"]
        await collection.insert_one({"_id": "job", "revision": 0, "stage_id": "a"})
        finds: list[float] = []
        updates: list[float] = []
        for revision in range(samples):
            started = time.perf_counter()
            await collection.find_one({"_id": "job"})
            finds.append(time.perf_counter() - started)
            started = time.perf_counter()
            await collection.update_one(
                {"_id": "job", "revision": revision},
                {"$set": {"stage_id": str(revision)}, "$inc": {"revision": 1}},
            )
            updates.append(time.perf_counter() - started)
        await mongo.drop_database(self.database("raw"))
        await mongo.close()
        return {"kafka": kafka, "find": finds, "update": updates}

    async def set_up(self, messaging: httpx.AsyncClient, pipeline: httpx.AsyncClient) -> str:
        await publish(self.bootstrap, demo_directory(self.firm))
        template_body = {
            "name": "Documents",
            "subject": "Documents for [[date.year]]",
            "html": "<p>Hi [[contact.first_name]], please upload your W-2.</p>",
            "client_tasks": ["Upload your W-2"],
        }
        template = (await messaging.post("/v1/templates", json=template_body)).json()
        body = {
            "name": "Bench",
            "stages": [
                {
                    "name": "Docs",
                    "automove": True,
                    "automations": [{"template_id": template["id"], "mode": "new_thread"}],
                },
                {"name": "Preparing"},
            ],
        }
        created = await pipeline.post("/v1/pipelines", json=body)
        created.raise_for_status()
        # The automation renders for the account: wait until messaging's directory has it.
        for _ in range(600):
            preview = await messaging.post(
                f"/v1/templates/{template['id']}/preview", params={"account_id": ACCOUNT}
            )
            if preview.status_code == 200:
                break
            await asyncio.sleep(0.2)
        return str(created.json()["pipeline_id"])

    async def one_job(
        self,
        index: int,
        pipeline_id: str,
        watch: Watch,
        http: dict[str, httpx.AsyncClient],
        client_tasks: httpx.AsyncClient,
    ) -> tuple[float, float]:
        body = {"account_id": ACCOUNT, "pipeline_id": pipeline_id, "name": f"Job {index}"}
        created = await http["pipeline"].post("/v1/jobs", json=body)
        created.raise_for_status()
        entered = time.perf_counter()
        job_id = created.json()["job_id"]
        thread_id = await watch.wait(lambda: watch.thread_of.get(job_id))
        visible = await watch.wait(lambda: watch.posted_at.get(thread_id))
        listed = await poll(
            lambda: client_tasks.get(f"/v1/threads/{thread_id}/tasks"),
            lambda r: r.status_code == 200 and len(r.json()["tasks"]) == 1,
        )
        await poll(
            lambda: http["pipeline"].get(f"/v1/jobs/{job_id}"),
            lambda r: bool(r.json()["thread_ids"]),
        )
        ticked_task = listed.json()["tasks"][0]["task_id"]
        tick = await client_tasks.put(f"/v1/threads/{thread_id}/tasks/{ticked_task}/done")
        tick.raise_for_status()
        ticked = time.perf_counter()
        moved = await watch.wait(lambda: watch.moved_at.get(job_id))
        return visible - entered, moved - ticked

    async def run(self) -> None:
        progress("starting messaging, tasks and pipeline")
        await self.start_servers()
        try:
            progress("raw hops")
            raw = await self.raw_hops(self.args.jobs)
            staff = {"Authorization": f"Bearer {self.staff}"}
            http = {
                name: httpx.AsyncClient(base_url=self.urls[name], headers=staff, timeout=60)
                for name in SERVICES
            }
            client_tasks = httpx.AsyncClient(
                base_url=self.urls["tasks"],
                headers={"Authorization": f"Bearer {self.client}"},
                timeout=60,
            )
            pipeline_id = await self.set_up(http["messaging"], http["pipeline"])
            watch = Watch(self.bootstrap)
            await watch.start()
            progress(f"{self.args.jobs} jobs, {self.args.concurrency} at a time")
            limit = asyncio.Semaphore(self.args.concurrency)

            async def job(index: int) -> tuple[float, float] | None:
                async with limit:
                    try:
                        return await self.one_job(index, pipeline_id, watch, http, client_tasks)
                    except (TimeoutError, httpx.HTTPError) as exc:
                        progress(f"job {index} did not complete: {exc!r}")
                        return None

            started = time.perf_counter()
            outcomes = await asyncio.gather(*(job(i) for i in range(self.args.jobs)))
            results = [outcome for outcome in outcomes if outcome is not None]
            if not results:
                raise RuntimeError("no job completed the loop")
            elapsed = time.perf_counter() - started
            await watch.stop()
            for client in (*http.values(), client_tasks):
                await client.aclose()
        finally:
            await self.stop_servers()
        report(raw, [r[0] for r in results], [r[1] for r in results], elapsed, self.args)


async def poll(
    probe: Callable[[], Awaitable[httpx.Response]],
    until: Callable[[httpx.Response], bool],
    *,
    seconds: float = 120,
) -> httpx.Response:
    deadline = time.perf_counter() + seconds
    while True:
        response = await probe()
        if until(response):
            return response
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting: {response.status_code} {response.text[:200]}")
        await asyncio.sleep(0.05)


def report(
    raw: dict[str, list[float]],
    visible: list[float],
    moved: list[float],
    elapsed: float,
    args: argparse.Namespace,
) -> None:
    def summed(kafka: int, finds: int, updates: int, q: float) -> float:
        return (
            kafka * pct(raw["kafka"], q)
            + finds * pct(raw["find"], q)
            + updates * pct(raw["update"], q)
        )

    print(
        f"\n{len(moved)} of {args.jobs} jobs through the loop in {elapsed:.1f} s "
        f"({args.concurrency} at a time)"
    )
    print(line("raw Kafka produce → consume", raw["kafka"]))
    print(line("raw MongoDB find by id", raw["find"]))
    print(line("raw MongoDB conditional update", raw["update"]))
    print(line("last tick (200) → pipeline.job.moved", moved))
    print(
        f"{'  sum of raw hops (2 K + 3 F + 3 U)':<38} p50 {summed(2, 3, 3, 0.5):7.1f} ms   "
        f"p99 {summed(2, 3, 3, 0.99):7.1f} ms"
    )
    print(line("stage entry (201) → message stored", visible))
    print(
        f"{'  sum of raw hops (2 K + 4 F + 3 U)':<38} p50 {summed(2, 4, 3, 0.5):7.1f} ms   "
        f"p99 {summed(2, 4, 3, 0.99):7.1f} ms"
    )
    target = "met" if pct(moved, 0.99) <= 1000 else "NOT met"
    print(f"target p99 tick → moved ≤ 1000 ms: {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not 1 <= args.jobs <= 5000 or not 1 <= args.concurrency <= 100:
        parser.error("--jobs 1..5000, --concurrency 1..100")
    asyncio.run(Benchmark(args).run())


if __name__ == "__main__":
    main()
