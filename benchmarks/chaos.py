"""Chaos run: SIGKILL every process of the platform under a mixed workload, then check that
nothing acknowledged was lost or doubled (issue 15).

    ./threadline up && .venv/bin/python benchmarks/chaos.py [--quick]

It works on the stack `./threadline up` started (same `THREADLINE_*_PORT` variables, same
state directory) and only through the project's own commands: `LocalStack.kill` (what
`./threadline kill NAME` runs: SIGKILL to the recorded process group, e.g. FerretDB and
its PostgreSQL together) and `LocalStack.start` (`./threadline start NAME`). First it
restarts the five services with shorter business timers (`CHAOS_TIMINGS`: e-mail
coalescing, claim leases, the reminder "day"), so every consumer effect is due within a
phase; at the end it restarts them with the environment it was given.

Each fault is one phase on a fresh slice of the workload (one firm per run): warm-up, kill
(one process or two at once), a short outage, restart, a tail of load, then a settle
period in which every invariant must hold:

- **2xx stored once**: every acknowledged write (message, thread, upload, job, bulk job,
  tick) is stored, and nothing is stored twice (each posted text and job key appears once);
- **events→Kafka**: no outbox left non-empty, and every stored message, thread, document
  and stage move has its event in the topics (read back from the offsets at the start);
- **effects once**: one attachment message per uploaded document, one
  `tasks.list.all_completed` per completed list and an automove for each (no move twice,
  no move lost), one e-mail file per stored mail (none lost, none doubled), one
  `reminders.reminder.sent` per reminder number, one thread per account per bulk job;
- **numbering**: per thread, `seq` is 1..n over all messages and `client_seq` 1..m over
  the client-visible ones;
- **uploads whole**: every stored document's bytes download completely with its SHA-256;
- **ready**: every service's `/readyz` answers 200 again within `READY_BOUND_SECONDS` of
  the kill (the measured seconds are printed);
- **no 5xx**: during the outage a request may be refused (503 problem+json with
  `Retry-After`) or time out — not an acknowledged write — but any other 5xx is a violation.

Loopback only; bounded by a request budget per phase and time bounds on every wait.
Prints a table of faults x invariants and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.policy
import hashlib
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from threadline.contracts import new_event
from threadline.contracts.events.directory import AccountUpserted, Contact
from threadline.contracts.topics import Topic
from threadline.devtools.seed import demo_directory, publish
from threadline.devtools.stack import LocalStack
from threadline.devtools.stack.config import SERVERS, SERVICES
from threadline.devtools.stack.errors import StackError
from threadline.devtools.token import mint_token

#: Business timers shortened for the run (set in the services' environment when the harness
#: starts them): coalesced e-mails go out after 2 s, a crashed claimer's mails, reminders
#: and bulk jobs are taken over after 10 s, and a reminder "day" lasts 3 s.
CHAOS_TIMINGS = {
    "REMINDERS_COALESCE_WINDOW_SECONDS": "2",
    "REMINDERS_CLAIM_LEASE_SECONDS": "10",
    "REMINDERS_DAY_SECONDS": "3",
    "MESSAGING_BULK_LEASE_SECONDS": "10",
    "MESSAGING_TASK_DIGEST_SECONDS": "2",
}
_RNG = random.Random()  # noqa: S311 - shapes the load, guards nothing
#: The platform must answer ready on every service within this many seconds of a kill.
READY_BOUND_SECONDS = 90.0
INVARIANTS = (
    "no 5xx",
    "2xx stored once",
    "events→Kafka",
    "effects once",
    "numbering",
    "uploads whole",
    "ready",
)
DATABASES = {name: f"threadline_{name}" for name in SERVICES}
LEE, NORTH = "acc_lee_family", "acc_north_bakery"
BULK_ACCOUNTS = tuple(f"acc_chaos_bulk_{i}" for i in range(5))

SINGLE_FAULTS: tuple[tuple[str, ...], ...] = tuple((name,) for name in (*SERVICES, *SERVERS))
PAIR_FAULTS: tuple[tuple[str, ...], ...] = (
    ("messaging", "kafka"),
    ("tasks", "mongodb"),
    ("documents", "minio"),
    ("reminders", "smtp"),
    ("pipeline", "messaging"),
    ("kafka", "mongodb"),
)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Profile:
    """How much load a phase gets and how long each of its parts lasts."""

    warm_seconds: float
    outage_seconds: float
    tail_seconds: float
    settle_seconds: float
    requests_per_phase: int
    flow_seconds: float = 120.0


QUICK = Profile(
    warm_seconds=3,
    outage_seconds=2,
    tail_seconds=4,
    settle_seconds=90,
    requests_per_phase=400,
    flow_seconds=60,
)
FULL = Profile(
    warm_seconds=8, outage_seconds=4, tail_seconds=8, settle_seconds=120, requests_per_phase=1500
)
#: The shortened run inside `./threadline test`: every kind of process killed once, three
#: at a time (a service, a server and one more), on a small workload.
SUITE = Profile(
    warm_seconds=2,
    outage_seconds=1,
    tail_seconds=3,
    settle_seconds=60,
    requests_per_phase=250,
    flow_seconds=45,
)
SUITE_FAULTS: tuple[tuple[str, ...], ...] = (
    ("minio", "smtp", "messaging"),
    ("kafka", "tasks", "reminders"),
    ("mongodb", "pipeline", "documents"),
)
JOB_FLOWS_AT_ONCE = 3


@dataclass
class PhaseResult:
    label: str
    ready_seconds: float | None = None
    settled_seconds: float | None = None  # kill -> every invariant held (an upper bound)
    stopped_run: bool = False  # the platform did not come back: no later phase can run
    ok: int = 0
    refused: int = 0
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class Expected:
    """What the workload was told happened (2xx) and what it therefore expects."""

    messages: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (thread, marker)
    markers: set[str] = field(default_factory=set)  # every text sent, acknowledged or not
    threads: set[str] = field(default_factory=set)
    chat_threads: list[str] = field(default_factory=list)
    uploads: dict[str, str] = field(default_factory=dict)  # document id -> sha256 sent
    completed_lists: set[str] = field(default_factory=set)  # every tick acknowledged
    jobs: dict[str, str] = field(default_factory=dict)  # job key -> job id
    job_final: dict[str, str] = field(default_factory=dict)  # job id -> stage expected
    reminder_threads: set[str] = field(default_factory=set)
    bulk_jobs: dict[str, str] = field(default_factory=dict)  # job id -> subject


class Platform:
    """The running stack: its URLs, databases, topics and the project's kill/start."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        ports = stack.config.ports
        self.urls = {name: f"http://{stack.config.host}:{ports[name]}" for name in SERVICES}
        env = stack.endpoints()
        self.bootstrap = env["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
        self.mongo = AsyncMongoClient(env["THREADLINE_MONGODB_URL"], serverSelectionTimeoutMS=5000)
        self.mail_dir = Path(env["THREADLINE_MAIL_DIR"])

    def check_running(self) -> None:
        down = [n for n in (*SERVERS, *SERVICES) if not self.stack.is_running(n)]
        if down:
            raise SystemExit(
                f"not running: {', '.join(down)} — start the platform with "
                "`./threadline up` (with the same THREADLINE_*_PORT variables)"
            )

    async def restart_services(self, extra_env: dict[str, str]) -> None:
        os.environ.update(extra_env)
        await self.stack.astop(*SERVICES)
        await self.stack.astart(*SERVICES)

    async def all_ready(self, client: httpx.AsyncClient) -> bool:
        async def ready(url: str) -> bool:
            try:
                return (await client.get(f"{url}/readyz", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        return all(await asyncio.gather(*(ready(u) for u in self.urls.values())))


class Api:
    """HTTP calls that classify their outcome: a response (2xx/4xx), or None when the
    platform refused or did not answer (503, timeout, connection error). Any other 5xx, and
    a 503 that is not problem+json with `Retry-After`, is a violation of the phase."""

    def __init__(self, platform: Platform, client: httpx.AsyncClient) -> None:
        self.platform, self.client = platform, client
        self.phase: PhaseResult | None = None
        self.budget = 0

    async def __call__(
        self, method: str, service: str, path: str, token: str, **kwargs: Any
    ) -> httpx.Response | None:
        assert self.phase is not None
        self.budget -= 1
        try:
            response = await self.client.request(
                method,
                self.platform.urls[service] + path,
                headers={"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})},
                **kwargs,
            )
        except httpx.HTTPError:
            self.phase.refused += 1
            await asyncio.sleep(0.2)  # a refused call is retried later, not in a tight loop
            return None
        if response.status_code == 503:
            self.phase.refused += 1
            if "retry-after" not in response.headers or not response.headers.get(
                "content-type", ""
            ).startswith("application/problem+json"):
                self.phase.violations["no 5xx"].append(
                    f"503 without problem+json and Retry-After: {method} {service}{path}"
                )
            await asyncio.sleep(0.2)
            return None
        if response.status_code >= 500:
            self.phase.violations["no 5xx"].append(
                f"{response.status_code} {method} {service}{path}: {response.text[:160]}"
            )
            return None
        self.phase.ok += 1
        return response


class Workload:
    """The mixed workload of one run: a firm of its own, a template, a pipeline, and the
    workers that post, read, draft, upload, tick, run jobs, bulk jobs and reminders."""

    def __init__(self, platform: Platform, api: Api, run: str) -> None:
        self.platform, self.api, self.run = platform, api, run
        self.firm = f"firm_chaos_{run}"
        self.expected = Expected()
        self.owner = self._token("st_olivia", "staff", role="owner", name="Olivia Owner")
        self.ann = self._token("ct_ann_lee", "client", accounts=[LEE], name="Ann Lee")
        self.cara = self._token("ct_cara_north", "client", accounts=[NORTH], name="Cara North")
        self.counter = 0
        self.flows: set[asyncio.Task[None]] = set()
        self.flow_seconds = 120.0
        self.template_id = self.pipeline_id = ""
        self.stages: list[str] = []

    def _token(self, sub: str, kind: str, **claims: Any) -> str:
        return mint_token(sub=sub, firm=self.firm, kind=kind, ttl_seconds=6 * 3600, **claims)

    def marker(self, what: str) -> str:
        self.counter += 1
        return f"chaos-{self.run}-{what}-{self.counter}"

    # --- setup --------------------------------------------------------------------------
    async def set_up(self) -> None:
        bulk = [
            AccountUpserted(
                account_id=account,
                name=f"Bulk {i}",
                assigned_staff=[],
                contacts=[
                    Contact(
                        contact_id=f"ct_{account}",
                        name=f"Bulk Contact {i}",
                        email=f"{account}@bulk.example",
                        portal_activated=True,
                        notify=False,
                    )
                ],
            )
            for i, account in enumerate(BULK_ACCOUNTS)
        ]
        events = [
            *demo_directory(self.firm),
            *(new_event(a, firm=self.firm, key=a.account_id, producer="chaos") for a in bulk),
        ]
        await publish(self.platform.bootstrap, events)
        template = await self.until_ok(
            "POST",
            "messaging",
            "/v1/templates",
            json={
                "name": f"Chaos {self.run}",
                "subject": "Documents [[date.year]]",
                "html": "<p>Hi [[contact.first_name]]</p>",
                "client_tasks": ["Upload W-2", "Sign"],
            },
        )
        self.template_id = template["id"]
        pipeline = await self.until_ok(
            "POST",
            "pipeline",
            "/v1/pipelines",
            json={
                "name": f"Chaos {self.run}",
                "stages": [
                    {
                        "name": "Docs",
                        "automove": True,
                        "automations": [{"template_id": self.template_id, "mode": "new_thread"}],
                    },
                    {"name": "Preparing"},
                    {"name": "Done"},
                ],
            },
        )
        self.pipeline_id = pipeline["pipeline_id"]
        self.stages = [stage["stage_id"] for stage in pipeline["stages"]]
        for account in (LEE, LEE, LEE, NORTH):
            thread = await self.new_thread(account, tasks=None)
            self.expected.chat_threads.append(thread["id"])
        # Wait until every account is known (the bulk job would skip unknown ones).
        for account in BULK_ACCOUNTS:
            await self.until_ok(
                "POST",
                "messaging",
                f"/v1/templates/{self.template_id}/preview",
                params={"account_id": account},
            )

    async def until_ok(
        self,
        method: str,
        service: str,
        path: str,
        *,
        token: str | None = None,
        within: float = 180,  # a service just restarted may take a minute to consume
        **kwargs: Any,
    ) -> Any:
        deadline = time.monotonic() + within
        while True:
            response = await self.api(method, service, path, token or self.owner, **kwargs)
            if response is not None and response.is_success:
                return response.json() if response.content else None
            if time.monotonic() > deadline:
                detail = response.text[:200] if response is not None else "no answer"
                raise RuntimeError(f"{method} {service}{path}: {detail}")
            await asyncio.sleep(0.5)

    async def new_thread(
        self,
        account: str,
        *,
        tasks: list[str] | None,
        template: bool = False,
        reminders: dict[str, Any] | None = None,
        once: bool = False,
    ) -> Any:
        marker = self.marker("thread")
        self.expected.markers.add(marker)
        body: dict[str, Any] = {"account_id": account, "subject": marker}
        if template:
            body["template_id"] = self.template_id
        else:
            body["message"] = {"html": f"<p>{marker}</p>"}
        if tasks:
            body["client_tasks"] = tasks
        if reminders:
            body["reminders"] = reminders
        if once:
            response = await self.api("POST", "messaging", "/v1/threads", self.owner, json=body)
            if response is None or response.status_code != 201:
                return None
            thread = response.json()
        else:
            thread = await self.until_ok("POST", "messaging", "/v1/threads", json=body)
        self.expected.threads.add(thread["id"])
        return thread

    # --- workers ------------------------------------------------------------------------
    async def run_workers(self, stop: asyncio.Event) -> None:
        workers = [
            self.poster(stop, staff=True),
            self.poster(stop, staff=False),
            self.reader(stop),
            self.uploader(stop),
            self.task_lists(stop),
            self.jobs(stop),
            self.extras(stop),
        ]
        await asyncio.gather(*workers)

    def _going(self, stop: asyncio.Event) -> bool:
        return not stop.is_set() and self.api.budget > 0

    async def _pause(self) -> None:
        await asyncio.sleep(_RNG.uniform(0.01, 0.05))

    async def poster(self, stop: asyncio.Event, *, staff: bool) -> None:
        while self._going(stop):
            thread = _RNG.choice(self.expected.chat_threads)
            marker = self.marker("msg")
            internal = staff and _RNG.random() < 0.3
            self.expected.markers.add(marker)
            body = {"html": f"<p>{marker}</p>", "internal": internal}
            token = self.owner if staff else self.ann
            if not staff and thread == self.expected.chat_threads[-1]:  # Ann: Lee threads only
                thread = self.expected.chat_threads[0]
            response = await self.api(
                "POST", "messaging", f"/v1/threads/{thread}/messages", token, json=body
            )
            if response is not None and response.status_code == 201:
                self.expected.messages[response.json()["id"]] = (thread, marker)
            await self._pause()

    async def reader(self, stop: asyncio.Event) -> None:
        while self._going(stop):
            thread = _RNG.choice(self.expected.chat_threads[:3])
            token = _RNG.choice((self.owner, self.ann))
            await self.api(
                "GET", "messaging", f"/v1/threads/{thread}/messages", token, params={"limit": 20}
            )
            await self.api("POST", "messaging", f"/v1/threads/{thread}/read", token, json={})
            await self.api(
                "PUT",
                "messaging",
                f"/v1/threads/{thread}/draft",
                token,
                json={"html": f"<p>{self.marker('draft')}</p>"},
            )
            await self.api("GET", "messaging", f"/v1/threads/{thread}/draft", token)
            await self.api("GET", "messaging", "/v1/threads", token, params={"limit": 10})
            await self._pause()

    async def uploader(self, stop: asyncio.Event) -> None:
        while self._going(stop):
            thread = _RNG.choice(self.expected.chat_threads[:3])
            token = _RNG.choice((self.owner, self.ann))
            content = os.urandom(_RNG.randint(10_000, 300_000))
            response = await self.api(
                "POST",
                "documents",
                f"/v1/accounts/{LEE}/documents",
                token,
                params={"thread_id": thread},
                files={
                    "file": (f"{self.marker('upload')}.bin", content, "application/octet-stream")
                },
            )
            if response is not None and response.status_code == 201:
                for document in response.json()["documents"]:
                    self.expected.uploads[document["id"]] = hashlib.sha256(content).hexdigest()
            await self._pause()

    async def tick_all(
        self, thread: str, task_ids: Iterable[str], deadline: float, token: str
    ) -> bool:
        """The client ticks every task (a retried tick changes nothing); True when every
        tick was acknowledged."""
        for task in task_ids:
            while True:
                response = await self.api(
                    "PUT", "tasks", f"/v1/threads/{thread}/tasks/{task}/done", token
                )
                if response is not None and response.is_success:
                    break
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.3)
        return True

    async def task_lists(self, stop: asyncio.Event) -> None:
        template = False
        while self._going(stop):
            template = not template
            thread = await self.new_thread(
                LEE, tasks=None if template else ["W-2", "1099"], template=template, once=True
            )
            if thread is not None:
                tasks = [task["task_id"] for task in thread["client_tasks"]]
                if await self.tick_all(
                    thread["id"], tasks, time.monotonic() + self.flow_seconds, self.ann
                ):
                    self.expected.completed_lists.add(thread["id"])
            await self._pause()

    async def jobs(self, stop: asyncio.Event) -> None:
        """Job flows, `JOB_FLOWS_AT_ONCE` at a time (each waits on consumers in between)."""
        while self._going(stop):
            if len(self.flows) < JOB_FLOWS_AT_ONCE:
                flow = asyncio.create_task(self.job_flow(time.monotonic() + self.flow_seconds))
                self.flows.add(flow)
                flow.add_done_callback(self.flows.discard)
            await asyncio.sleep(0.5)

    async def poll(
        self,
        deadline: float,
        request: tuple[str, str, str, str],
        accept: Callable[[Any], Any],
        **kwargs: Any,
    ) -> Any:
        """Repeat `request` (method, service, path, token) until it succeeds and `accept`
        of its body is truthy; that value, or None at the deadline."""
        while time.monotonic() < deadline:
            response = await self.api(*request, **kwargs)
            if response is not None and response.is_success:
                found = accept(response.json())
                if found:
                    return found
            await asyncio.sleep(0.5)
        return None

    async def job_flow(self, deadline: float) -> None:
        """J1/J2/J4 end to end: create (with an idempotency key, retried), the automation's
        thread appears, the client ticks its tasks, automove, then a move by hand."""
        key = self.marker("job")
        account = _RNG.choice((LEE, NORTH))
        body = {"account_id": account, "pipeline_id": self.pipeline_id, "name": key}
        job = await self.poll(
            deadline,
            ("POST", "pipeline", "/v1/jobs", self.owner),
            lambda job: job,
            headers={"Idempotency-Key": key},
            json=body,
        )
        if job is None:
            return
        job_id, path = job["job_id"], f"/v1/jobs/{job['job_id']}"
        self.expected.jobs[key] = job_id
        self.expected.job_final[job_id] = self.stages[0]
        thread = await self.poll(
            deadline, ("GET", "pipeline", path, self.owner), lambda job: job["thread_ids"][:1]
        )
        if thread is None:
            return
        token = self.ann if account == LEE else self.cara
        tasks_path = f"/v1/threads/{thread[0]}/tasks"
        tasks = await self.poll(
            deadline,
            ("GET", "tasks", tasks_path, token),
            lambda body: [task["task_id"] for task in body["tasks"]],
        )
        if tasks is None or not await self.tick_all(thread[0], tasks, deadline, token):
            return
        self.expected.completed_lists.add(thread[0])
        self.expected.job_final[job_id] = self.stages[1]
        automoved = await self.poll(
            deadline,
            ("GET", "pipeline", path, self.owner),
            lambda job: job["stage_id"] == self.stages[1],
        )
        if automoved and await self.poll(
            deadline,
            ("POST", "pipeline", f"{path}/move", self.owner),
            lambda _: True,
            json={"to_stage_id": self.stages[2]},
        ):
            self.expected.job_final[job_id] = self.stages[2]

    async def extras(self, stop: asyncio.Event) -> None:
        """Per phase: one bulk job (idempotency key, retried) and one thread whose two
        reminders come due within the phase; then reminder settings are read repeatedly."""
        key = self.marker("bulk")
        deadline = time.monotonic() + 60
        while self._going(stop) and time.monotonic() < deadline:
            response = await self.api(
                "POST",
                "messaging",
                "/v1/bulk-messages",
                self.owner,
                headers={"Idempotency-Key": key},
                json={"account_ids": list(BULK_ACCOUNTS), "subject": key, "html": f"<p>{key}</p>"},
            )
            if response is not None and response.is_success:
                self.expected.bulk_jobs[response.json()["id"]] = key
                break
            await asyncio.sleep(0.5)
        thread = await self.new_thread(
            NORTH,
            tasks=None,
            once=True,
            reminders={"enabled": True, "days_between": 1, "max_reminders": 2},
        )
        if thread is not None:
            self.expected.reminder_threads.add(thread["id"])
        while self._going(stop):
            for thread_id in list(self.expected.reminder_threads)[-3:]:
                await self.api("GET", "reminders", f"/v1/threads/{thread_id}/reminders", self.owner)
            await self.api("GET", "reminders", "/v1/inbox", self.owner)
            await asyncio.sleep(0.3)


class Checker:
    """Reads what the platform stored, published and sent, and lists every violation."""

    def __init__(self, platform: Platform, workload: Workload, api: Api) -> None:
        self.platform, self.workload, self.api = platform, workload, api
        self.firm = workload.firm
        self.start_offsets: dict[TopicPartition, int] = {}
        self.mail_files_before = set(self._mail_files())
        self.checked_uploads: set[str] = set()

    def _mail_files(self) -> list[Path]:
        return (
            sorted(self.platform.mail_dir.glob("*.eml")) if self.platform.mail_dir.is_dir() else []
        )

    async def _consumer(self) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.platform.bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=10000,
        )
        await consumer.start()
        metadata = await consumer._client.fetch_all_metadata()
        topics = [Topic.MESSAGING, Topic.TASKS, Topic.DOCUMENTS, Topic.PIPELINE, Topic.REMINDERS]
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(metadata.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            raise RuntimeError(f"no partitions of {topics} on {self.platform.bootstrap}")
        return consumer, partitions

    async def mark_topics(self) -> None:
        consumer, partitions = await self._consumer()
        try:
            self.start_offsets = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()

    async def events(self) -> list[dict[str, Any]]:
        """This run's events, published since `mark_topics`, duplicates included."""
        consumer, partitions = await self._consumer()
        found: list[dict[str, Any]] = []
        try:
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            for partition in partitions:
                consumer.seek(partition, self.start_offsets.get(partition, 0))
            pending = {p for p in partitions if ends[p] > self.start_offsets.get(p, 0)}
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                batch = await consumer.getmany(*pending, timeout_ms=1000)
                for partition, records in batch.items():
                    for record in records:
                        if record.offset < ends[partition]:
                            envelope = json.loads(record.value)
                            if envelope.get("firm") == self.firm:
                                found.append(envelope)
                pending = {p for p in pending if await consumer.position(p) < ends[p]}
        finally:
            await consumer.stop()
        return found

    def _db(self, service: str) -> Any:
        return self.platform.mongo[DATABASES[service]]

    async def violations(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = defaultdict(list)
        events = await self.events()
        by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in events:
            by_type[event["type"]].append(event)
        messaging = self._db("messaging")
        messages = await messaging.messages.find({"firm": self.firm}).to_list(None)
        threads = await messaging.threads.find({"firm": self.firm}).to_list(None)
        await self._stored_once(found, messages, threads)
        await self._outboxes(found)
        self._events(found, by_type, messages, threads)
        self._numbering(found, messages, threads)
        await self._effects(found, by_type, messages, threads)
        await self._uploads(found)
        return found

    async def _stored_once(
        self, found: dict[str, list[str]], messages: list[Any], threads: list[Any]
    ) -> None:
        expected = self.workload.expected
        stored_ids = {m["_id"] for m in messages}
        for message_id, (thread, _) in expected.messages.items():
            if message_id not in stored_ids:
                found["2xx stored once"].append(f"message {message_id} (thread {thread}) lost")
        texts = Counter(m["text"] for m in messages if m["text"] in expected.markers)
        subjects = Counter(t["subject"] for t in threads if t["subject"] in expected.markers)
        found["2xx stored once"] += [
            f"{text!r} stored {n} times"
            for counts in (texts, subjects)
            for text, n in counts.items()
            if n > 1
        ]
        thread_ids = {t["_id"] for t in threads}
        found["2xx stored once"] += [f"thread {t} lost" for t in expected.threads - thread_ids]
        documents = self._db("documents").documents
        stored_docs = {
            d["_id"]
            for d in await documents.find(
                {"firm": self.firm, "deleted": False}, {"_id": 1}
            ).to_list(None)
        }
        found["2xx stored once"] += [
            f"document {d} lost" for d in expected.uploads if d not in stored_docs
        ]
        jobs = await self._db("pipeline").jobs.find({"firm": self.firm}).to_list(None)
        names = Counter(job["name"] for job in jobs)
        found["2xx stored once"] += [
            f"job {n!r} stored {c} times" for n, c in names.items() if c > 1
        ]
        job_ids = {job["_id"] for job in jobs}
        found["2xx stored once"] += [
            f"job {j} lost" for j in expected.jobs.values() if j not in job_ids
        ]

    async def _outboxes(self, found: dict[str, list[str]]) -> None:
        for service in SERVICES:
            db = self._db(service)
            for name in await db.list_collection_names():
                pending = await db[name].count_documents(
                    {"firm": self.firm, "_outbox.0": {"$exists": True}}
                )
                if pending:
                    found["events→Kafka"].append(
                        f"{service}.{name}: {pending} documents with pending outbox events"
                    )

    def _events(
        self,
        found: dict[str, list[str]],
        by_type: dict[str, list[dict[str, Any]]],
        messages: list[Any],
        threads: list[Any],
    ) -> None:
        def ids(kind: str, key: str) -> set[str]:
            return {event["data"][key] for event in by_type[kind]}

        posted = ids("messaging.message.posted", "message_id")
        found["events→Kafka"] += [
            f"message {m['_id']} has no message.posted event"
            for m in messages
            if m["_id"] not in posted
        ]
        created = ids("messaging.thread.created", "thread_id")
        found["events→Kafka"] += [
            f"thread {t['_id']} has no thread.created event"
            for t in threads
            if t["_id"] not in created
        ]
        uploaded = ids("documents.document.uploaded", "document_id")
        found["events→Kafka"] += [
            f"document {d} has no document.uploaded event"
            for d in self.workload.expected.uploads
            if d not in uploaded
        ]

    def _numbering(
        self, found: dict[str, list[str]], messages: list[Any], threads: list[Any]
    ) -> None:
        per_thread: dict[str, list[Any]] = defaultdict(list)
        for message in messages:
            per_thread[message["thread_id"]].append(message)
        for thread in threads:
            rows = per_thread.get(thread["_id"], [])
            seqs = sorted(m["seq"] for m in rows)
            if seqs != list(range(1, len(seqs) + 1)):
                found["numbering"].append(f"thread {thread['_id']}: seq {_gaps(seqs)}")
            client = sorted(m.get("client_seq") or 0 for m in rows if not m["internal"])
            if client != list(range(1, len(client) + 1)):
                found["numbering"].append(f"thread {thread['_id']}: client_seq {_gaps(client)}")

    async def _effects(
        self,
        found: dict[str, list[str]],
        by_type: dict[str, list[dict[str, Any]]],
        messages: list[Any],
        threads: list[Any],
    ) -> None:
        expected = self.workload.expected
        effects = found["effects once"]
        attachments: Counter[str] = Counter()
        for message in messages:
            attachments.update(set(message.get("document_ids") or ()))
        for document in expected.uploads:
            if attachments[document] != 1:
                effects.append(f"document {document}: {attachments[document]} attachment messages")
        completions: dict[str, set[str]] = defaultdict(set)
        for event in by_type["tasks.list.all_completed"]:
            completions[event["data"]["thread_id"]].add(event["id"])
        for thread in expected.completed_lists:
            if len(completions[thread]) != 1:
                effects.append(f"thread {thread}: {len(completions[thread])} all_completed events")
        await self._jobs(effects, by_type, threads)
        await self._mails(effects)
        reminders: Counter[tuple[str, int]] = Counter()
        for event in {e["id"]: e for e in by_type["reminders.reminder.sent"]}.values():
            reminders[(event["data"]["thread_id"], event["data"]["reminder_number"])] += 1
        for thread in expected.reminder_threads:
            numbers = [n for n in (1, 2) if reminders[(thread, n)]]
            doubled = [n for n in (1, 2) if reminders[(thread, n)] > 1]
            if numbers != [1, 2] or doubled:
                effects.append(f"thread {thread}: reminders sent {numbers}, doubled {doubled}")
        await self._bulk(effects, threads)

    async def _jobs(
        self, effects: list[str], by_type: dict[str, list[dict[str, Any]]], threads: list[Any]
    ) -> None:
        expected = self.workload.expected
        jobs = {
            job["_id"]: job
            for job in await self._db("pipeline").jobs.find({"firm": self.firm}).to_list(None)
        }
        moved = Counter(
            e["data"]["job_id"]
            for e in {e["id"]: e for e in by_type["pipeline.job.moved"]}.values()
        )
        automation_threads = Counter(job for t in threads for job in t.get("job_ids") or ())
        for job_id, stage in expected.job_final.items():
            job = jobs.get(job_id)
            if job is None:
                continue
            entered = [entry["stage_id"] for entry in job["history"]]
            if len(entered) != len(set(entered)):
                effects.append(f"job {job_id}: stage entered twice {entered}")
            if job["stage_id"] != stage:
                effects.append(
                    f"job {job_id}: in stage {self._stage(job['stage_id'])}, "
                    f"expected {self._stage(stage)}"
                )
            if moved[job_id] != len(entered) - 1:
                effects.append(
                    f"job {job_id}: {moved[job_id]} job.moved events for {len(entered) - 1} moves"
                )
            if automation_threads[job_id] != 1:
                effects.append(f"job {job_id}: {automation_threads[job_id]} automation threads")

    def _stage(self, stage_id: str) -> str:
        stages = self.workload.stages
        return f"#{stages.index(stage_id) + 1}" if stage_id in stages else stage_id

    async def _mails(self, effects: list[str]) -> None:
        mails = (
            await self._db("reminders")
            .mails.find({"firm": self.firm}, {"status": 1, "pending": 1})
            .to_list(None)
        )
        delivered: Counter[str] = Counter()
        parser = BytesHeaderParser(policy=email.policy.default)
        for path in self._mail_files():
            if path in self.mail_files_before:
                continue
            with contextlib.suppress(OSError), path.open("rb") as handle:
                mail_id = parser.parse(handle).get("X-Threadline-Mail-Id")
                if mail_id:
                    delivered[str(mail_id)] += 1
        for mail in mails:
            count = delivered[str(mail["_id"])]
            if mail.get("status") == "failed":
                effects.append(f"mail {mail['_id']}: given up (failed)")
            elif mail.get("status") == "sent" and count != 1:
                effects.append(f"mail {mail['_id']}: sent, {count} files in the mail dir")
            elif mail.get("status") != "sent":
                effects.append(f"mail {mail['_id']}: still {mail.get('status')}")
            elif count > 1:
                effects.append(f"mail {mail['_id']}: delivered {count} times")

    async def _bulk(self, effects: list[str], threads: list[Any]) -> None:
        per_subject: Counter[tuple[str, str]] = Counter(
            (t["subject"], t["account_id"]) for t in threads
        )
        for job_id, subject in self.workload.expected.bulk_jobs.items():
            job = await self._db("messaging").bulk_jobs.find_one({"_id": job_id})
            if job is None or job.get("status") != "done":
                effects.append(f"bulk job {job_id}: {job and job.get('status')}")
            effects.extend(
                f"bulk job {job_id}: {per_subject[(subject, account)]} threads for {account}"
                for account in BULK_ACCOUNTS
                if per_subject[(subject, account)] != 1
            )

    async def _uploads(self, found: dict[str, list[str]]) -> None:
        documents = (
            await self._db("documents")
            .documents.find({"firm": self.firm, "deleted": False}, {"sha256": 1, "size": 1})
            .to_list(None)
        )
        for document in documents:
            if document["_id"] in self.checked_uploads:
                continue
            response = await self.api(
                "GET", "documents", f"/v1/documents/{document['_id']}/content", self.workload.owner
            )
            if response is None or response.status_code != 200:
                found["uploads whole"].append(
                    f"document {document['_id']}: content "
                    f"{response.status_code if response is not None else 'unavailable'}"
                )
                continue
            digest = hashlib.sha256(response.content).hexdigest()
            sent = self.workload.expected.uploads.get(document["_id"], digest)
            if digest != document["sha256"] or digest != sent:
                found["uploads whole"].append(f"document {document['_id']}: bytes differ")
            else:
                self.checked_uploads.add(document["_id"])


def _gaps(numbers: Sequence[int]) -> str:
    present = set(numbers)
    top = max(present, default=0)
    missing = [n for n in range(1, top + 1) if n not in present]
    doubled = [n for n, c in Counter(numbers).items() if c > 1]
    return f"rows {len(numbers)}, top {top}, missing {missing[:8]}, doubled {doubled[:8]}"


async def restart(stack: LocalStack, names: Sequence[str]) -> None:
    """`./threadline start` for what was killed: servers first (a service starting needs
    them), then services."""
    servers = [name for name in names if name in SERVERS]
    services = [name for name in names if name in SERVICES]
    if servers:
        await stack.astart(*servers)
    if services:
        await stack.astart(*services)


async def _time_to_ready(
    platform: Platform, client: httpx.AsyncClient, since: float, restart: Awaitable[Any]
) -> float | None:
    """Restart with the project's command while polling every /readyz; seconds from `since`
    (the kill) until all five answer 200, or None past READY_BOUND_SECONDS."""
    restarting = asyncio.ensure_future(restart)
    try:
        while time.monotonic() - since < READY_BOUND_SECONDS:
            if restarting.done():
                restarting.result()  # a start that failed is reported by run_phase
                if await platform.all_ready(client):
                    return time.monotonic() - since
            await asyncio.sleep(0.25)
        return None
    finally:
        if not restarting.done():
            await restarting


@dataclass(frozen=True)
class Harness:
    platform: Platform
    workload: Workload
    checker: Checker
    client: httpx.AsyncClient


async def run_phase(
    harness: Harness, fault: tuple[str, ...], profile: Profile, seen: set[str]
) -> PhaseResult:
    platform, workload, checker, client = (
        harness.platform,
        harness.workload,
        harness.checker,
        harness.client,
    )
    label = "kill -9 " + " + ".join(fault) if fault else "no fault (baseline)"
    result = PhaseResult(label)
    workload.api.phase, workload.api.budget = result, profile.requests_per_phase
    workload.flow_seconds = profile.flow_seconds
    say(f"phase: {label}")
    stop = asyncio.Event()
    load = asyncio.create_task(workload.run_workers(stop))
    await asyncio.sleep(profile.warm_seconds)
    killed_at = time.monotonic()
    if fault:
        await asyncio.to_thread(platform.stack.kill, *fault)
        await asyncio.sleep(profile.outage_seconds)
        try:
            result.ready_seconds = await _time_to_ready(
                platform, client, killed_at, restart(platform.stack, fault)
            )
        except StackError as exc:
            result.violations["ready"].append(f"restart failed: {str(exc)[:300]}")
            say(f"  ✗ restart failed, the run stops here: {str(exc)[:300]}")
            stop.set()
            await load
            result.stopped_run = True
            return result
        say(f"  ready again after {result.ready_seconds or float('nan'):.1f}s")
    else:
        result.ready_seconds = 0.0 if await platform.all_ready(client) else None
    if result.ready_seconds is None and not result.violations["ready"]:
        result.violations["ready"].append(f"not ready within {READY_BOUND_SECONDS:.0f}s")
    await asyncio.sleep(profile.tail_seconds)
    stop.set()
    await load
    if workload.flows:
        await asyncio.wait(set(workload.flows), timeout=profile.flow_seconds)
    say(f"  load stopped ({result.ok} answered, {result.refused} refused/unanswered); settling")
    fresh = await settle(checker, profile, seen)
    if fresh.get("events→Kafka"):
        dump_service_tasks(platform.stack)
    if not any(fresh.values()):
        result.settled_seconds = time.monotonic() - killed_at
    for name, values in fresh.items():
        result.violations[name] += values
        seen.update(values)
        for value in values[:5]:
            say(f"  ✗ {name}: {value}")
    return result


async def settle(checker: Checker, profile: Profile, seen: set[str]) -> dict[str, list[str]]:
    """Check the invariants until none is violated or the settle time is over; returns the
    violations not reported by an earlier phase."""
    settling = time.monotonic()
    deadline = settling + profile.settle_seconds
    while True:
        found = await checker.violations()
        fresh = {name: [v for v in values if v not in seen] for name, values in found.items()}
        if not any(fresh.values()) or time.monotonic() > deadline:
            break
        pending = {name: len(values) for name, values in fresh.items() if values}
        say(f"  {time.monotonic() - settling:.0f}s: not yet {pending}")
        await asyncio.sleep(2)
    say(f"  checked after {time.monotonic() - settling:.0f}s of settling")
    return fresh


def dump_service_tasks(stack: LocalStack) -> None:
    """Events still pending after the settle: have every service log where its asyncio
    tasks wait (``kill -USR1``, see ``threadline.kit.diagnostics``), for the post-mortem."""
    for process in stack.status():
        if process.name in SERVICES and process.state == "running" and process.pid:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGUSR1)
                say(f"  asked {process.name} for its task dump: {process.log}")


def print_table(results: Sequence[PhaseResult]) -> None:
    width = max(len(r.label) for r in results)
    header = (
        f"| {'fault':<{width}} | ready (s) | all held (s) | requests ok/refused | "
        + " | ".join(INVARIANTS)
        + " |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell) + 2) for cell in header.strip("| ").split(" | ")) + "|")
    for r in results:
        ready = f"{r.ready_seconds:.1f}" if r.ready_seconds is not None else "—"
        held = f"{r.settled_seconds:.0f}" if r.settled_seconds is not None else "—"
        cells = [
            ("ok" if not r.violations.get(name) else f"✗ {len(r.violations[name])}").center(
                len(name)
            )
            for name in INVARIANTS
        ]
        print(
            f"| {r.label:<{width}} | {ready:>9} | {held:>12} | {f'{r.ok}/{r.refused}':>19} | "
            + " | ".join(cells)
            + " |"
        )


async def run(
    stack: LocalStack,
    faults: Sequence[tuple[str, ...]],
    profile: Profile,
    *,
    restore_env: bool = True,
    baseline: bool = True,
) -> list[PhaseResult]:
    platform = Platform(stack)
    platform.check_running()
    saved = {name: os.environ.get(name) for name in CHAOS_TIMINGS}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        api = Api(platform, client)
        setup = PhaseResult("setup")
        api.phase, api.budget = setup, 10_000
        if any(os.environ.get(k) != v for k, v in CHAOS_TIMINGS.items()):
            say("restarting the services with the chaos timings")
            await platform.restart_services(CHAOS_TIMINGS)
        workload = Workload(platform, api, uuid.uuid4().hex[:8])
        checker = Checker(platform, workload, api)
        await checker.mark_topics()
        say(f"setting up firm {workload.firm}")
        await workload.set_up()
        seen: set[str] = set()
        phases = [(), *faults] if baseline else list(faults)
        harness = Harness(platform, workload, checker, client)
        try:
            results: list[PhaseResult] = []
            for fault in phases:
                results.append(await run_phase(harness, fault, profile, seen))
                if results[-1].stopped_run:
                    break
        finally:
            if restore_env and any(saved[k] != CHAOS_TIMINGS[k] for k in CHAOS_TIMINGS):
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                say("restarting the services with their own timings")
                await stack.astop(*SERVICES)
                try:
                    await stack.astart(*SERVICES)
                except StackError as exc:
                    say(f"the services did not come back: {str(exc)[:300]}")
            await platform.mongo.close()
    return results


def report(results: Sequence[PhaseResult]) -> bool:
    """Print the table and every violation; True when there was none."""
    print_table(results)
    clean = True
    for r in results:
        for name, values in r.violations.items():
            for value in values[:20]:
                clean = False
                print(f"  {r.label} / {name}: {value}")
            if len(values) > 20:
                print(f"  {r.label} / {name}: … {len(values) - 20} more")
    measured = [r.ready_seconds for r in results if r.ready_seconds]
    if measured:
        print(f"recovery: max {max(measured):.1f}s (bound {READY_BOUND_SECONDS:.0f}s)")
    return clean


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="one kill per process, smaller workload (no pairs)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="only these kills; join names with + to kill them at once (e.g. kafka+mongodb)",
    )
    args = parser.parse_args(argv)
    faults: list[tuple[str, ...]] = list(SINGLE_FAULTS)
    if args.only:
        faults = [tuple(name.split("+")) for name in args.only]
    elif not args.quick:
        faults += PAIR_FAULTS
    profile = QUICK if args.quick else FULL
    results = asyncio.run(run(LocalStack(), faults, profile))
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(main())
