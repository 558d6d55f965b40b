"""Bulk message benchmark (P2): prints figures measured in one run on the running local stack.

    ./threadline servers && eval "$(./threadline env)" && .venv/bin/python benchmarks/bulk.py

Against a real uvicorn messaging process, in one run:
1. idle post latency: POST /messages one after another while nothing else runs (p50/p99);
2. raw baseline: the same number of thread and first-message documents as the job
   creates (built by the service's own document builders, rendered the same way), written
   with ``insert_many`` in batches of ``--batch-size`` (100), plus the same number of events
   (thread.created + message.posted per account) produced in batches to a scratch topic
   and flushed per batch (acks=all);
3. the bulk job: POST /v1/bulk-messages for N accounts (default 10,000), timed until the
   job reports done (a batch counts as done once Kafka acknowledged its events, so every
   event is out by then); meanwhile messages are posted at a steady pace and their latency
   recorded (p50/p99).
Steps 2 and 3 run ``--rounds`` times (3): one job lasts about 10 s, in which only ~60 posts
fall, so the p99 of one round is its slowest post; the figures pool the rounds (throughput:
all accounts over all time), and each round's throughput is printed too.
With ``--profile DIR`` the service logs each batch's step timings (INFO) to
``DIR/messaging.log`` and py-spy samples it during the job (``DIR/bulk-job.pyspy.txt``,
collapsed stacks). Throughput = accounts per second. Targets (issue 12): job ≥ 50 % of
the baseline; post p99 while the job runs ≤ 2 x idle p99. The N accounts are written
into the directory projection directly (in its document shape): through Kafka each costs
a consumer upsert, which is not what is measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from threadline.contracts.events.messaging import Author
from threadline.devtools.seed import demo_directory, publish
from threadline.devtools.token import mint_token
from threadline.kit.auth import Principal
from threadline.kit.kafka import envelope_record
from threadline.messaging.service.bulk import derived_id
from threadline.messaging.service.compose import message_document, posted_event
from threadline.messaging.service.templates import Content, Sender, render
from threadline.messaging.service.threads import new_thread_document, thread_created_event
from threadline.messaging.settings import Settings as MessagingSettings

sys.path.insert(0, os.path.dirname(__file__))
from _process import ServiceProcess, create_raw_topic

ACCOUNT = "acc_lee_family"
RAW_TOPIC = "threadline.benchmark.raw.v1"
IDLE_POSTS_PER_ROUND = 100
SUBJECT = "[[date.last_year]] documents for [[account.name]]"
HTML = "<p>Dear [[contact.first_name]],</p><p>please upload your papers. [[sender.name]]</p>"


def progress(phase: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {phase}", file=sys.stderr, flush=True)


def percentile_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def summary(samples: list[float]) -> str:
    return (
        f"p50 {percentile_ms(samples, 0.5):7.1f} ms  p99 {percentile_ms(samples, 0.99):7.1f} ms"
        f"  (n={len(samples)})"
    )


def account_document(firm: str, index: int) -> dict[str, Any]:
    account_id = f"acc_bulk_{index:05d}"
    return {
        "_id": f"{firm}:{account_id}",
        "firm": firm,
        "account_id": account_id,
        "name": f"Client {index} & Sons",
        "contacts": [
            {
                "contact_id": f"ct_bulk_{index:05d}",
                "name": f"Pat{index} Doe",
                "email": f"pat{index}@bulk.example",
                "portal_activated": True,
                "notify": True,
            }
        ],
        "assigned_staff": ["st_mia"],
        "removed": False,
        "as_of": datetime.now(UTC),
    }


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.accounts: int = args.accounts
        self.rounds: int = args.rounds
        self.batch_size: int = args.batch_size
        self.post_interval: float = args.post_interval
        self.profile: str | None = args.profile
        self.firm = f"bench_{uuid.uuid4().hex[:8]}"
        self.database = f"bench_bulk_{self.firm}"
        self.raw_database = f"bench_bulk_raw_{self.firm}"
        self.bootstrap = os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
        self.mongo: AsyncMongoClient[Any] = AsyncMongoClient(
            os.environ["THREADLINE_MONGODB_URL"], tz_aware=True
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
        )
        self.owner = mint_token(sub="st_olivia", firm=self.firm, kind="staff", role="owner")
        self.staff = mint_token(
            sub="st_mia", firm=self.firm, kind="staff", role="member", accounts=[ACCOUNT]
        )

    def server(self) -> ServiceProcess:
        """The service with its own bulk settings (``MESSAGING_BULK_*`` from the
        environment, else their defaults): what is measured is the job as configured."""
        env: dict[str, str] = {}
        if self.profile is None:
            return ServiceProcess(
                "messaging", database=self.database, group=f"bench-{self.firm}", env=env
            )
        return ServiceProcess(
            "messaging",
            database=self.database,
            group=f"bench-{self.firm}",
            env=env | {"MESSAGING_LOG_LEVEL": "INFO"},
            log_path=os.path.join(self.profile, "messaging.log"),
        )

    @contextlib.asynccontextmanager
    async def profiled(self, server: ServiceProcess) -> AsyncIterator[None]:
        """With ``--profile``: py-spy samples the service meanwhile (collapsed stacks)."""
        if self.profile is None:
            yield
            return
        spy = await asyncio.create_subprocess_exec(
            *(os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--nonblocking"),
            *("--pid", str(server.pid), "--rate", "50", "--format", "raw"),
            *("--output", os.path.join(self.profile, "bulk-job.pyspy.txt")),
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            await spy.wait()

    async def seed(self, http: httpx.AsyncClient) -> str:
        """The demo directory through Kafka, the N accounts straight into the projection;
        returns a thread to post into."""
        await publish(self.bootstrap, demo_directory(self.firm))
        accounts = [account_document(self.firm, i) for i in range(self.accounts)]
        for start in range(0, len(accounts), 1000):
            await self.mongo[self.database]["directory_accounts"].insert_many(
                accounts[start : start + 1000]
            )
        body = {"account_id": ACCOUNT, "subject": "bench", "message": {"html": "start"}}
        headers = {"Authorization": f"Bearer {self.staff}"}
        for _ in range(600):
            created = await http.post("/v1/threads", json=body, headers=headers)
            if created.status_code == 201:
                return str(created.json()["id"])
            await asyncio.sleep(0.2)
        raise RuntimeError(f"could not create the benchmark thread: {created.text}")

    async def post(self, http: httpx.AsyncClient, thread_id: str, text: str) -> float:
        started = time.perf_counter()
        response = await http.post(
            f"/v1/threads/{thread_id}/messages",
            json={"html": f"<p>{text}</p>"},
            headers={"Authorization": f"Bearer {self.staff}"},
        )
        assert response.status_code == 201, response.text
        return time.perf_counter() - started

    async def baseline(self, number: int) -> float:
        """Seconds to write and produce what the job writes and produces, the raw way (the
        round's ``number`` keeps its ids apart from earlier rounds')."""
        principal = Principal(sub="st_olivia", firm=self.firm, kind="staff", role="owner")
        author = Author(user_id="st_olivia", kind="staff", name="Olivia Owner")
        sender = Sender(firm_name="Chen & Berg CPAs", sender_name="Olivia Owner")
        content = Content(subject=SUBJECT, html=HTML)
        database = self.mongo[self.raw_database]
        started = time.perf_counter()
        for start in range(0, self.accounts, self.batch_size):
            threads, messages, records = [], [], []
            now = datetime.now(UTC)
            for i in range(start, min(start + self.batch_size, self.accounts)):
                account = account_document(self.firm, i)
                rendered = render(
                    content,
                    sender=sender,
                    account=account,
                    contact_ids=[account["contacts"][0]["contact_id"]],
                    today=now.date(),
                    max_body_bytes=64 * 1024,
                )
                thread = new_thread_document(
                    thread_id=derived_id("raw", self.firm, str(number), str(i)),
                    principal=principal,
                    account_id=account["account_id"],
                    subject=rendered.subject,
                    to_contacts=[account["contacts"][0]["contact_id"]],
                    job_ids=[],
                    reminders=rendered.reminders,
                    template_id=None,
                    now=now,
                )
                message = message_document(
                    message_id=derived_id("raw-message", self.firm, str(number), str(i)),
                    thread=thread,
                    author=author,
                    internal=False,
                    body=rendered.body,
                    mentions=[],
                    reply_to=None,
                    embeds=[],
                    at=now,
                ) | {"seq": 1, "client_seq": 1}
                threads.append(thread)
                messages.append(message)
                records += [
                    envelope_record(
                        thread_created_event(
                            thread, first_message_id=message["_id"], client_tasks=()
                        )
                    ),
                    envelope_record(posted_event(message, firm=self.firm)),
                ]
            await database["messages"].insert_many(messages, ordered=False)
            await database["threads"].insert_many(threads, ordered=False)
            for record in records:
                await self.producer.send(
                    RAW_TOPIC,
                    key=record["key"].encode(),
                    value=record["value"],
                    headers=[(k, v.encode()) for k, v in record["headers"].items()],
                )
            await self.producer.flush()
        return time.perf_counter() - started

    async def bulk(self, http: httpx.AsyncClient, thread_id: str) -> tuple[float, list[float]]:
        """Seconds until the job is done, and post latencies measured meanwhile."""
        headers = {"Authorization": f"Bearer {self.owner}"}
        ids = [f"acc_bulk_{i:05d}" for i in range(self.accounts)]
        response = await http.post(
            "/v1/bulk-messages",
            json={"account_ids": ids, "subject": SUBJECT, "html": HTML},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        latencies: list[float] = []
        while True:
            latencies.append(await self.post(http, thread_id, f"during {len(latencies)}"))
            await asyncio.sleep(self.post_interval)
            job = (await http.get(f"/v1/bulk-messages/{job_id}", headers=headers,
                                  params={"limit": 1})).json()  # fmt: skip
            if job["status"] == "done":
                assert job["created"] == self.accounts, job
                break
        # The job's own timestamps: polling between slow posts would add its own delay.
        finished = datetime.fromisoformat(job["finished_at"])
        job_seconds = (finished - datetime.fromisoformat(job["created_at"])).total_seconds()
        return job_seconds, latencies

    async def run(self) -> None:
        await create_raw_topic(self.bootstrap, RAW_TOPIC)
        await self.producer.start()
        progress("starting messaging")
        server = self.server()
        await server.start()
        rounds: list[tuple[float, float]] = []  # (raw baseline seconds, job seconds)
        during: list[float] = []
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                progress(f"seeding {self.accounts} accounts")
                thread_id = await self.seed(http)
                progress("idle post latency")
                idle = [
                    await self.post(http, thread_id, f"idle {i}")
                    for i in range(IDLE_POSTS_PER_ROUND * self.rounds)
                ]
                for number in range(self.rounds):
                    progress(f"round {number + 1} of {self.rounds}: raw baseline")
                    raw_seconds = await self.baseline(number)
                    progress(f"round {number + 1} of {self.rounds}: bulk job")
                    profiled = self.profiled(server) if number == 0 else contextlib.nullcontext()
                    async with profiled:
                        job_seconds, latencies = await self.bulk(http, thread_id)
                    rounds.append((raw_seconds, job_seconds))
                    during += latencies
        finally:
            await server.stop()
            await self.producer.stop()
            await self.mongo.drop_database(self.database)
            await self.mongo.drop_database(self.raw_database)
            await self.mongo.close()
        idle_p99, during_p99 = percentile_ms(idle, 0.99), percentile_ms(during, 0.99)
        bulk = MessagingSettings()
        print(f"bulk benchmark: {self.accounts} accounts, {self.rounds} rounds; raw baseline "
              f"in batches of {self.batch_size}; job batches {bulk.bulk_min_batch_size}-"
              f"{bulk.bulk_batch_size}, target write {bulk.bulk_target_write_seconds} s, "
              f"latency factor {bulk.bulk_latency_factor}, "
              f"max yield {bulk.bulk_max_yield_seconds} s")  # fmt: skip
        for number, (raw_seconds, job_seconds) in enumerate(rounds, start=1):
            raw_rate, job_rate = self.accounts / raw_seconds, self.accounts / job_seconds
            print(f"  round {number}: raw baseline {raw_rate:7.1f} accounts/s, bulk job "
                  f"{job_rate:7.1f} accounts/s ({job_rate / raw_rate:5.1%})")  # fmt: skip
        raw_rate = self.accounts * len(rounds) / sum(raw for raw, _ in rounds)
        job_rate = self.accounts * len(rounds) / sum(job for _, job in rounds)
        print(f"  raw baseline (insert_many + batched produce) {raw_rate:8.1f} accounts/s")
        print(f"  bulk job, until done                          {job_rate:8.1f} accounts/s "
              f"({job_rate / raw_rate:5.1%} of baseline; target >= 50%)")  # fmt: skip
        print(f"  post message, idle                            {summary(idle)}")
        print(f"  post message, while the job runs              {summary(during)}")
        print(f"  p99 while running / idle p99                  {during_p99 / idle_p99:5.2f}x "
              "(target <= 2x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Baseline-then-job rounds: figures pool them (a job lasts ~10 s, ~60 posts).",
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, help="The raw baseline's insert_many size."
    )
    parser.add_argument(
        "--post-interval", type=float, default=0.1, help="Pause between posts during the job."
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="Write the service's INFO log (per-batch timings) and a py-spy profile of the job.",
    )
    args = parser.parse_args()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)

    async def run() -> None:
        await Benchmark(args).run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
