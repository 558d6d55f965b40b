"""Reminders benchmark: the due scan and e-mail delivery, each against a raw baseline.

1. Due scan. 100,000 threads in reminders' thread collection, 1 % of them due (armed with
   a due time in the past), plus armed-but-not-yet-due schedules (``--not-due``, default
   0.5 %). The service's due query over ``armed_schedules`` is timed and its documents
   examined counted (server explain), against a scan of a collection holding only the due
   schedules. Target: time ratio <= 2.
2. E-mails. ``--mails`` queued client e-mails delivered by ``MailDelivery`` (claim, render,
   send, mark sent) through the devtools SMTP sink, against a raw aiosmtplib loop sending
   the same number of pre-rendered messages over one connection, in the same run. Target:
   >= 50 % of the raw rate.

Run: ``.venv/bin/python benchmarks/reminders.py`` (THREADLINE_MONGODB_URL selects the server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from threadline.contracts.envelope import utc_now
from threadline.devtools.ports import free_port
from threadline.devtools.smtp_sink import serve
from threadline.kit.kafka import Record
from threadline.kit.mongo import ensure_indexes
from threadline.kit.outbox import Outbox
from threadline.reminders.delivery import MailDelivery
from threadline.reminders.mail import MailTemplates, SmtpMailer, render
from threadline.reminders.store import (
    STORE_INDEXES,
    MongoArmedSchedules,
    MongoFirmSettingsProjection,
    MongoMailQueue,
    MongoThreadStore,
)

Document = dict[str, Any]
TEMPLATES = MailTemplates(
    mail_from="Bench <bench@threadline.localhost>",
    portal_base_url="http://localhost/portal",
    staff_app_base_url="http://localhost/app",
)


class _NoPublisher:
    async def publish_record(self, **record: Record) -> None:  # pragma: no cover - unused
        raise RuntimeError("the benchmark publishes nothing")


async def _insert(database: AsyncDatabase[Document], name: str, docs: list[Document]) -> None:
    for start in range(0, len(docs), 2000):
        await database[name].insert_many(docs[start : start + 2000], ordered=False)


def _examined(explain: Document, scanned_collection_size: int) -> int | str:
    """Documents the server examined: MongoDB says so; FerretDB shows a full-scan plan."""
    stats = explain.get("executionStats") or {}
    if "totalDocsExamined" in stats:
        return int(stats["totalDocsExamined"])
    plan = str(explain.get("queryPlanner", ""))
    if "SCAN" in plan.upper() and not explain.get("filterPushdown"):
        return scanned_collection_size
    return f"unknown ({plan[:80]})"


async def _best_of(runs: int, job: Any) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        await job()
        best = min(best, time.perf_counter() - started)
    return best


async def due_scan(
    database: AsyncDatabase[Document],
    *,
    threads: int,
    due_share: float,
    not_due_share: float,
    runs: int,
) -> None:
    now = utc_now()
    due_count = int(threads * due_share)
    not_due_count = int(threads * not_due_share)
    print(f"threads: {threads}, due: {due_count}, armed not yet due: {not_due_count}")
    await _insert(
        database,
        "reminder_threads",
        [
            {"_id": f"f:th{i}", "firm": "f", "thread_id": f"th{i}", "schedule": None}
            for i in range(threads)
        ],
    )

    def entry(i: int, due_at: datetime) -> Document:
        return {
            "_id": f"f:th{i}",
            "firm": "f",
            "thread_id": f"th{i}",
            "message_id": "m",
            "number": 1,
            "due_at": due_at,
            "claim": None,
        }

    due = [entry(i, now - timedelta(seconds=1 + i % 3600)) for i in range(due_count)]
    later = [entry(due_count + i, now + timedelta(days=1 + i % 30)) for i in range(not_due_count)]
    await _insert(database, "armed_schedules", due + later)
    await _insert(database, "only_due", due)
    armed = MongoArmedSchedules(database)
    limit = due_count + 1

    async def scan_due() -> None:
        found = await armed.due(now, limit=limit)
        assert len(found) == due_count, len(found)

    async def scan_only_due() -> None:
        found = await database["only_due"].find({}).sort("due_at", 1).limit(limit).to_list()
        assert len(found) == due_count

    service = await _best_of(runs, scan_due)
    baseline = await _best_of(runs, scan_only_due)
    explain = await armed.explain_due(now, limit=limit)
    examined = _examined(explain, due_count + not_due_count)
    print(f"due scan (service):       {service * 1000:8.1f} ms, documents examined: {examined}")
    print(f"scan of only the due:     {baseline * 1000:8.1f} ms, documents examined: {due_count}")
    print(f"ratio (service/baseline): {service / baseline:8.2f}  (target <= 2)")
    print(f"plan: {str(explain.get('queryPlanner'))[:160]}")


async def _noop(firm: str, thread_id: str, message_ids: Collection[str], at: datetime) -> None:
    return None


async def mails(database: AsyncDatabase[Document], *, count: int, connections: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as mail_dir:
        server = await serve("127.0.0.1", port, Path(mail_dir))
        try:
            queue = MongoMailQueue(database)
            now = utc_now()
            documents = [
                {
                    "_id": f"bench:{i}",
                    "firm": "f",
                    "kind": "client_message",
                    "coalesce_key": None,
                    "to": {"id": "ct", "name": "Ann <Lee>", "email": "ann@bench.example"},
                    "thread": {"thread_id": f"th{i}", "account_id": "a", "subject": "Bench <1>"},
                    "messages": [{"message_id": f"m{i}", "author_name": "Mia", "text": "Hi"}],
                    "message_ids": [f"m{i}"],
                }
                for i in range(count)
            ]
            for document in documents:
                await queue.enqueue(document, due_at=now, now=now)
            delivery = MailDelivery(
                mails=queue,
                mailer=SmtpMailer(host="127.0.0.1", port=port, timeout=10, connections=connections),
                templates=TEMPLATES,
                firm_settings=MongoFirmSettingsProjection(database),
                threads=MongoThreadStore(database, outbox=Outbox(_NoPublisher())),
                notification_sent=_noop,
                lease=timedelta(seconds=60),
                retry_for=timedelta(minutes=5),
                backoff_max_seconds=5,
                batch_size=count,
                concurrency=connections,
                claim_token="bench",  # noqa: S106 - a claim token, not a secret
                clock=utc_now,
            )
            started = time.perf_counter()
            sent = 0
            while sent < count:
                sent += await delivery.run_due()
            service = time.perf_counter() - started

            rendered = [
                render(
                    {**d, "_id": f"raw:{i}", "created_at": now},
                    templates=TEMPLATES,
                    show_context=False,
                    tasks=[],
                )
                for i, d in enumerate(documents)
            ]
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10, start_tls=False)
            await client.connect()
            started = time.perf_counter()
            for message in rendered:
                await client.send_message(message)
            raw = time.perf_counter() - started
            await client.quit()
        finally:
            server.close()
            await server.wait_closed()
    print(f"e-mails: {count}, service connections: {connections}")
    print(f"service (queue→claim→render→send→mark): {count / service:8.1f} mails/s")
    print(f"raw aiosmtplib loop (one connection):   {count / raw:8.1f} mails/s")
    print(f"service / raw: {100 * raw / service:6.1f} %  (target >= 50 %)")


async def round_trip(database: AsyncDatabase[Document]) -> None:
    """The server's latency for one trivial command, to read the figures against."""
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        await database["mails"].find_one({"_id": "absent"})
        samples.append(time.perf_counter() - started)
    samples.sort()
    print(f"database round trip (find_one by _id): median {samples[10] * 1000:.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=100_000)
    parser.add_argument("--due", type=float, default=0.01)
    parser.add_argument("--not-due", type=float, default=0.005)
    parser.add_argument("--mails", type=int, default=500)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    url = os.environ.get("THREADLINE_MONGODB_URL", "mongodb://127.0.0.1:27017")
    client: AsyncMongoClient[Document] = AsyncMongoClient(url, tz_aware=True)
    database = client[f"bench_reminders_{uuid.uuid4().hex[:8]}"]
    try:
        await ensure_indexes(database, STORE_INDEXES)
        print(f"server: {url}")
        await round_trip(database)
        await due_scan(
            database,
            threads=args.threads,
            due_share=args.due,
            not_due_share=args.not_due,
            runs=args.runs,
        )
        await mails(database, count=args.mails, connections=args.connections)
        await round_trip(database)
    finally:
        await client.drop_database(database.name)
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
