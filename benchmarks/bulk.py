"""Bulk message benchmark (P2): prints figures measured in one run on the running local stack.

    ./threadline servers && eval "$(./threadline env)" && .venv/bin/python benchmarks/bulk.py

Against a real uvicorn messaging process, in one run:
1. idle post latency: POST /messages one after another while nothing else runs (p50/p99),
   after 50 unmeasured posts that warm the process up;
2. raw baseline: the same number of thread and first-message documents as the job
   creates (built by the service's own document builders, rendered the same way), written
   with ``insert_many`` in batches of ``--batch-size`` (100), plus the same number of events
   (thread.created + message.posted per account) produced in batches to a scratch topic
   and flushed per batch (acks=all);
3. the bulk job: POST /v1/bulk-messages for N accounts (default 10,000), timed until the
   job reports done (a batch counts as done once Kafka acknowledged its events, so every
   event is out by then); meanwhile messages are posted at a steady pace and their latency
   recorded (p50/p99).
All of it runs ``--rounds`` times (3), each round on fresh databases with a fresh service
(so a round does not inherit the last one's tables and their vacuuming): one job lasts
about 10 s, in which only ~60 posts fall, so the p99 of one round is its slowest post. The
figures pool the rounds (throughput: all accounts over all time; latencies: all samples),
and each round's throughput is printed too, with the share of CPU time the host gave to
other guests during its idle posts and its job (``steal``: a round disturbed from outside
shows as one).
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
from dataclasses import dataclass
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
from _process import ServiceProcess, Steal, create_raw_topic

ACCOUNT = "acc_lee_family"
RAW_TOPIC = "threadline.benchmark.raw.v1"
IDLE_POSTS = 100
"""Per round."""
WARM_UP_POSTS = 50
"""Posts before the idle ones, not measured: a fresh process's first requests are slower
(in one round they alone made the idle p99 ~45 ms against ~18 ms warm)."""
SUBJECT = "[[date.last_year]] documents for [[account.name]]"
HTML = "<p>Dear [[contact.first_name]],</p><p>please upload your papers. [[sender.name]]</p>"


def progress(phase: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {phase}", file=sys.stderr, flush=True)


def percentile_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def share(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction:.0%}"


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


@dataclass
class Round:
    """What one round measured."""

    idle: list[float]
    raw_seconds: float
    job_seconds: float
    during: list[float]
    idle_steal: float | None
    job_steal: float | None


class Benchmark:
    """One round: its own firm, databases and service process."""

    def __init__(self, args: argparse.Namespace, *, profile: bool) -> None:
        self.accounts: int = args.accounts
        self.batch_size: int = args.batch_size
        self.post_interval: float = args.post_interval
        self.profile: str | None = args.profile if profile else None
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
            "--subprocesses",  # the bulk worker process too
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

    async def baseline(self) -> float:
        """Seconds to write and produce what the job writes and produces, the raw way."""
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
                    thread_id=derived_id("raw", self.firm, str(i)),
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
                    message_id=derived_id("raw-message", self.firm, str(i)),
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

    async def run(self) -> Round:
        await create_raw_topic(self.bootstrap, RAW_TOPIC)
        await self.producer.start()
        progress("starting messaging")
        server = self.server()
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                progress(f"seeding {self.accounts} accounts")
                thread_id = await self.seed(http)
                progress("idle post latency")
                for i in range(WARM_UP_POSTS):
                    await self.post(http, thread_id, f"warm-up {i}")
                idle_meter = Steal()
                idle = [await self.post(http, thread_id, f"idle {i}") for i in range(IDLE_POSTS)]
                idle_stolen = idle_meter.share()
                progress("raw baseline")
                raw_seconds = await self.baseline()
                progress("bulk job")
                job_meter = Steal()
                async with self.profiled(server):
                    job_seconds, during = await self.bulk(http, thread_id)
                job_stolen = job_meter.share()
        finally:
            await server.stop()
            await self.producer.stop()
            await self.mongo.drop_database(self.database)
            await self.mongo.drop_database(self.raw_database)
            await self.mongo.close()
        return Round(
            idle=idle,
            raw_seconds=raw_seconds,
            job_seconds=job_seconds,
            during=during,
            idle_steal=idle_stolen,
            job_steal=job_stolen,
        )


def report(accounts: int, batch_size: int, rounds: list[Round]) -> None:
    idle = [latency for each in rounds for latency in each.idle]
    during = [latency for each in rounds for latency in each.during]
    idle_p99, during_p99 = percentile_ms(idle, 0.99), percentile_ms(during, 0.99)
    bulk = MessagingSettings()
    storage = "THREADLINE_MONGODB_BATCH_URL" if bulk.mongodb_batch_url else "the requests' URL"
    print(f"bulk benchmark: {accounts} accounts, {len(rounds)} rounds; raw baseline in "
          f"batches of {batch_size}; job batches {bulk.bulk_min_batch_size}-"
          f"{bulk.bulk_batch_size}, target write {bulk.bulk_target_write_seconds} s, "
          f"latency factor {bulk.bulk_latency_factor}, max yield "
          f"{bulk.bulk_max_yield_seconds} s, worker {bulk.bulk_worker} writing through "
          f"{storage}")  # fmt: skip
    for number, each in enumerate(rounds, start=1):
        raw_rate, job_rate = accounts / each.raw_seconds, accounts / each.job_seconds
        print(f"  round {number}: raw baseline {raw_rate:7.1f} accounts/s, bulk job "
              f"{job_rate:7.1f} accounts/s ({job_rate / raw_rate:5.1%}), post p99 idle "
              f"{percentile_ms(each.idle, 0.99):5.1f} ms, during "
              f"{percentile_ms(each.during, 0.99):5.1f} ms; CPU steal idle "
              f"{share(each.idle_steal)}, job {share(each.job_steal)}")  # fmt: skip
    raw_rate = accounts * len(rounds) / sum(each.raw_seconds for each in rounds)
    job_rate = accounts * len(rounds) / sum(each.job_seconds for each in rounds)
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
        help="Independent rounds, pooled (a job lasts ~10 s: ~60 posts fall in one).",
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
        rounds = []
        for number in range(args.rounds):
            progress(f"round {number + 1} of {args.rounds}")
            rounds.append(await Benchmark(args, profile=number == 0).run())
        report(args.accounts, args.batch_size, rounds)

    asyncio.run(run())


if __name__ == "__main__":
    main()
