"""Bulk messages on real servers (P2): jobs, skipped accounts, idempotency, leases, and a
real uvicorn messaging process killed with SIGKILL in the middle of a job."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from threadline.devtools.ports import free_port
from threadline.devtools.seed import demo_directory
from threadline.kit.directory import MongoDirectory
from threadline.kit.ids import utc_now
from threadline.kit.leases import Leases
from threadline.kit.pacing import InteractiveLoad, PaceSettings
from threadline.messaging.service.bulk import (
    BulkWorker,
    WorkerSettings,
    derived_id,
    thread_id_for,
)
from threadline.messaging.store import MongoMessageStore, MongoThreadStore
from threadline.messaging.store.bulk import RESULTS_PAGE, BatchRecord, MongoBulkStore, page_end

from ..conftest import eventually, token_for
from ..messaging.conftest import DORMANT, LEE, PATEL
from .conftest import TemplateFirm, ThreadCreatedWatch, account, add_accounts

pytestmark = pytest.mark.integration


async def finished(firm: TemplateFirm, job_id: str, who: str = "owner") -> dict[str, Any]:
    async def job() -> dict[str, Any]:
        response = await firm.call(
            who, "GET", f"/v1/bulk-messages/{job_id}", params={"limit": 1000}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    return await eventually(job, until=lambda body: body["status"] == "done", within=90)


async def test_p2_bulk_to_50_accounts_creates_one_thread_each_and_skips_with_reasons(
    firm: TemplateFirm,
) -> None:
    active = [account(f"acc_b{i}", f"Client {i}", (f"First{i} Last{i}", True)) for i in range(40)]
    inactive = [account(f"acc_off{i}", f"Off {i}", (f"Off{i} Person", False)) for i in range(6)]
    await add_accounts(firm, active + inactive)
    account_ids = [a.account_id for a in active + inactive] + [LEE, DORMANT, PATEL, "acc_nope"]
    template = await firm.new_template(
        subject="Hello [[account.name]]",
        html="<p>Dear [[contact.first_name]], from [[firm.name]]</p>",
        client_tasks=["Task for [[account.name]]"],
        reminders={"enabled": True, "days_between": 2, "max_reminders": 4},
    )
    bootstrap = firm.app.state.runtime.settings.kafka_bootstrap_servers
    async with ThreadCreatedWatch(bootstrap) as watch:
        started = await firm.call(
            "owner",
            "POST",
            "/v1/bulk-messages",
            json={"account_ids": account_ids, "template_id": template["id"]},
        )
        assert started.status_code == 202, started.text
        assert started.json()["total"] == 50
        job = await finished(firm, started.json()["id"])
        created = {r["account_id"]: r["thread_id"] for r in job["results"] if r["thread_id"]}
        events = await watch.events(set(created.values()))

    assert (job["created"], job["skipped"], job["failed"], job["processed"]) == (42, 8, 0, 50)
    assert [r["index"] for r in job["results"]] == list(range(50))
    assert set(created) == {a.account_id for a in active} | {LEE, PATEL}
    skipped = {r["account_id"]: r["reason"] for r in job["results"] if r["outcome"] == "skipped"}
    assert set(skipped) == {a.account_id for a in inactive} | {DORMANT, "acc_nope"}
    assert "portal access" in skipped[DORMANT] and "does not exist" in skipped["acc_nope"]

    thread = (await firm.call("owner", "GET", f"/v1/threads/{created['acc_b7']}")).json()
    assert thread["subject"] == "Hello Client 7" and thread["account_id"] == "acc_b7"
    page = await firm.call("owner", "GET", f"/v1/threads/{created['acc_b7']}/messages")
    assert [m["text"] for m in page.json()["messages"]] == ["Dear First7, from Chen & Berg CPAs"]
    lee = events[created[LEE]].data
    assert lee.template_id == template["id"] and lee.reminders.max_reminders == 4
    assert [task.text for task in lee.client_tasks] == ["Task for Lee Family"]
    client_view = await firm.call("client", "GET", f"/v1/threads/{created[LEE]}/messages")
    assert client_view.json()["messages"][0]["text"] == "Dear Ann, Ben, from Chen & Berg CPAs"

    database = firm.app.state.runtime.database
    per_account = await database["threads"].count_documents({"bulk_job_id": job["id"]})
    assert per_account == 42
    assert (
        await database["messages"].count_documents({"thread_id": {"$in": list(created.values())}})
        == 42
    )
    paged = await firm.call(
        "owner", "GET", f"/v1/bulk-messages/{job['id']}", params={"after": 9, "limit": 10}
    )
    assert [r["index"] for r in paged.json()["results"]] == list(range(10, 20))
    assert paged.json()["next_cursor"] == 19


async def test_p2_idempotency_key_returns_the_same_job(firm: TemplateFirm) -> None:
    body = {"account_ids": [LEE, PATEL], "subject": "Hi [[account.name]]", "html": "<p>Hi</p>"}
    key = {"Idempotency-Key": f"retry-{firm.firm}"}
    first = await firm.call("admin", "POST", "/v1/bulk-messages", json=body, headers=key)
    again = await firm.call("admin", "POST", "/v1/bulk-messages", json=body, headers=key)
    assert first.status_code == again.status_code == 202, again.text
    assert first.json()["id"] == again.json()["id"]
    job = await finished(firm, first.json()["id"])
    after = await firm.call("admin", "POST", "/v1/bulk-messages", json=body, headers=key)
    assert after.json()["id"] == job["id"] and after.json()["created"] == 2
    other = await firm.call(
        "admin", "POST", "/v1/bulk-messages", json=body | {"account_ids": [LEE]}, headers=key
    )
    assert other.status_code == 409, other.text
    fresh = await firm.call("admin", "POST", "/v1/bulk-messages", json=body)
    assert fresh.json()["id"] != job["id"]
    database = firm.app.state.runtime.database
    assert await database["threads"].count_documents({"bulk_job_id": job["id"]}) == 2


async def test_p2_bulk_requests_are_bounded_and_checked(firm: TemplateFirm) -> None:
    async def start(who: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await firm.call(who, "POST", "/v1/bulk-messages", json=body, headers=headers)

    ok = {"account_ids": [LEE], "subject": "s", "html": "h"}
    too_many = ok | {"account_ids": [f"acc_{i}" for i in range(10_001)]}
    assert (await start("owner", too_many)).status_code == 422
    assert (await start("owner", ok | {"template_id": "t"})).status_code == 422
    assert (await start("owner", {"account_ids": [LEE], "subject": "s"})).status_code == 422
    unknown = await start("owner", ok | {"subject": "[[account.nickname]]"})
    assert unknown.status_code == 422 and unknown.json()["unknown_shortcodes"] == [
        "account.nickname"
    ]
    assert (await start("owner", ok, **{"Idempotency-Key": "a b"})).status_code == 422
    missing = await start("owner", {"account_ids": [LEE], "template_id": "nope"})
    assert missing.status_code == 404
    assert (await start("client", ok)).status_code == 403
    job = (await start("assigned member", ok)).json()["id"]
    assert (
        await firm.call("unassigned member", "GET", f"/v1/bulk-messages/{job}")
    ).status_code == 404
    assert (await firm.call("other firm", "GET", f"/v1/bulk-messages/{job}")).status_code == 404
    assert (await firm.call("client", "GET", f"/v1/bulk-messages/{job}")).status_code == 403
    done = await finished(firm, job, who="assigned member")
    assert done["created"] == 1


async def test_p2_one_replica_works_a_job_at_a_time_and_a_batch_counts_once(
    firm: TemplateFirm,
) -> None:
    """While another replica holds a job's lease, a worker leaves the job alone; once the
    lease is free it completes it; a batch recorded twice (a redo) is counted once."""
    runtime = firm.app.state.runtime
    database = runtime.database
    store = MongoBulkStore(database)
    worker = BulkWorker(
        store=store,
        threads=MongoThreadStore(database, outbox=runtime.outbox),
        messages=MongoMessageStore(database, outbox=runtime.outbox),
        directory=MongoDirectory(database),
        publisher=runtime.publisher,
        leases=Leases(database, holder="replica-b"),
        wake=asyncio.Event(),
        settings=WorkerSettings(pace=PaceSettings(max_batch=1, min_batch=1)),
    )
    other_replica = Leases(database, holder="replica-a")
    job_id = f"lease-{firm.firm}"
    assert await other_replica.claim(f"bulk:{job_id}", seconds=600)
    assert await store.insert(
        {"_id": job_id, "firm": firm.firm, "status": "running", "total": 2, "cursor": 0,
         "created": 0, "skipped": 0, "failed": 0, "created_at": utc_now(), "finished_at": None,
         "account_ids": [LEE, DORMANT], "template_id": None, "today": "2026-01-05",
         "created_by": {"sub": "st_olivia", "kind": "staff", "role": "owner", "perms": [],
                        "accounts": [], "name": "Olivia"},
         "sender": {"firm_name": "F", "sender_name": "Olivia"},
         "content": {"subject": "s [[date.year]]", "html": "<p>h</p>", "client_tasks": [],
                     "reminders": {"enabled": False, "days_between": 3, "max_reminders": 1}}}
    )  # fmt: skip
    assert not await worker.work_once()
    held = await store.summary(firm.firm, job_id)
    assert held is not None and held["cursor"] == 0
    assert await database["threads"].count_documents({"bulk_job_id": job_id}) == 0

    await other_replica.release(f"bulk:{job_id}")
    job = await eventually(
        lambda: store.summary(firm.firm, job_id),
        until=lambda found: found is not None and found["status"] == "done",
    )
    assert (job["cursor"], job["created"], job["skipped"]) == (2, 1, 1)
    counts = {"created": 1, "skipped": 0, "failed": 0}
    assert not await store.record_batch(job_id, start=0, end=1, counts=counts)
    assert (await store.summary(firm.firm, job_id) or {})["created"] == 1
    threads = await database["threads"].find({"bulk_job_id": job_id}).to_list()
    assert [t["subject"] for t in threads] == ["s 2026"]


def replica_worker(
    firm: TemplateFirm,
    leases: Leases,
    *,
    batch_size: int,
    store: MongoBulkStore | None = None,
    publisher: Any = None,
    load: InteractiveLoad | None = None,
    pacing: dict[str, Any] | None = None,
    **settings: Any,
) -> BulkWorker:
    """A second replica's worker on the same database (its own lease holder name), with
    batches of a fixed size (and ``pacing``'s other ``PaceSettings``, paced by ``load``)."""
    runtime = firm.app.state.runtime
    database = runtime.database
    return BulkWorker(
        store=store or MongoBulkStore(database),
        threads=MongoThreadStore(database, outbox=runtime.outbox),
        messages=MongoMessageStore(database, outbox=runtime.outbox),
        directory=MongoDirectory(database),
        publisher=publisher or runtime.publisher,
        leases=leases,
        wake=asyncio.Event(),
        load=load,
        settings=WorkerSettings(
            pace=PaceSettings(max_batch=batch_size, min_batch=batch_size, **(pacing or {})),
            **settings,
        ),
    )


async def start_held_job(
    firm: TemplateFirm, name: str, account_ids: list[str], *, subject: str = "s"
) -> tuple[str, Leases]:
    """Start a bulk job (Idempotency-Key ``<name>-<firm>``) whose lease another replica
    (``replica-<name>``) took first, so that the app's own worker leaves it to the test's.
    Returns the job's id and that replica's leases."""
    key = f"{name}-{firm.firm}"
    job_id = derived_id("job", firm.firm, "st_olivia", key)
    replica = Leases(firm.app.state.runtime.database, holder=f"replica-{name}")
    assert await replica.claim(f"bulk:{job_id}", seconds=600)
    body = {"account_ids": account_ids, "subject": subject, "html": "<p>h</p>"}
    started = await firm.call(
        "owner", "POST", "/v1/bulk-messages", json=body, headers={"Idempotency-Key": key}
    )
    assert started.status_code == 202 and started.json()["id"] == job_id, started.text
    return job_id, replica


async def test_p2_a_large_job_reads_the_firm_directory_once_with_the_same_outcomes(
    firm: TemplateFirm,
) -> None:
    """Jobs of at least ``firm_read_min_accounts`` accounts read the firm's whole directory
    in one query instead of one lookup per account (here from 1 account on): the same
    accounts are found, the removed, unknown and other firm's ones are not."""
    active = [account(f"acc_w{i}", f"Whole {i}", (f"Wen{i} Doe", True)) for i in range(5)]
    await add_accounts(firm, active)
    gone = account("acc_w_gone", "Gone", ("Gus Doe", True))
    await add_accounts(firm, [gone])
    database = firm.app.state.runtime.database
    await database["directory_accounts"].update_one(
        {"_id": f"{firm.firm}:{gone.account_id}"}, {"$set": {"removed": True}}
    )
    account_ids = [a.account_id for a in active] + [gone.account_id, DORMANT, "acc_nope"]
    job_id, replica = await start_held_job(firm, "whole", account_ids, subject="s [[account.name]]")
    worker = replica_worker(firm, replica, batch_size=3, firm_read_min_accounts=1)
    assert await asyncio.wait_for(worker.work_once(), 60)

    job = await finished(firm, job_id)
    outcomes = {r["account_id"]: r["outcome"] for r in job["results"]}
    assert outcomes == {a.account_id: "created" for a in active} | {
        gone.account_id: "skipped",
        DORMANT: "skipped",
        "acc_nope": "skipped",
    }
    threads = await database["threads"].find({"bulk_job_id": job_id}).to_list()
    assert sorted(t["subject"] for t in threads) == [f"s Whole {i}" for i in range(5)]


class WritesSeen(MongoBulkStore):
    """Notes how many interactive requests were in flight at each of the job's results and
    progress writes."""

    def __init__(self, database: Any, load: InteractiveLoad) -> None:
        super().__init__(database)
        self._load = load
        self.in_flight_at_writes: list[int] = []

    async def add_batches(self, job_id: str, batches: list[BatchRecord]) -> None:
        self.in_flight_at_writes.append(self._load.in_flight)
        await super().add_batches(job_id, batches)

    async def record_batch(self, job_id: str, **progress: Any) -> bool:
        self.in_flight_at_writes.append(self._load.in_flight)
        return await super().record_batch(job_id, **progress)


async def test_p2_a_job_holds_its_writes_while_an_interactive_request_is_in_flight(
    firm: TemplateFirm,
) -> None:
    """No message, thread, result or progress of a job is written while a request is in
    flight (each write held, here for up to a minute, and no wait between batches), and the
    job completes once the request ended."""
    active = [account(f"acc_h{i}", f"Held {i}", (f"Hal{i} Doe", True)) for i in range(4)]
    await add_accounts(firm, active)
    account_ids = [a.account_id for a in active]
    job_id, replica = await start_held_job(firm, "hold", account_ids)
    load = InteractiveLoad()
    database = firm.app.state.runtime.database
    store = WritesSeen(database, load)
    pacing = {"max_wait_seconds": 0.0, "max_hold_seconds": 60.0}
    worker = replica_worker(firm, replica, batch_size=2, store=store, load=load, pacing=pacing)
    message_ids = [derived_id("message", job_id, account_id) for account_id in account_ids]

    load.started()
    working = asyncio.create_task(worker.work_once())
    await asyncio.sleep(2.0)  # unheld, the job is done in a fraction of that
    assert await database["threads"].count_documents({"bulk_job_id": job_id}) == 0
    assert await database["messages"].count_documents({"_id": {"$in": message_ids}}) == 0
    assert store.in_flight_at_writes == []
    load.finished(2.0)

    assert await asyncio.wait_for(working, 60)
    assert await database["threads"].count_documents({"bulk_job_id": job_id}) == 4
    assert store.in_flight_at_writes and set(store.in_flight_at_writes) == {0}


class FailsOnce:
    """The first call fails: Kafka, or the storage server, went away at that moment."""

    def __init__(self) -> None:
        self.failures = 1

    def check(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("went away")


class PublishingCutShort:
    """A publisher whose first publish fails: the batch's threads are written, none of
    their events went out."""

    def __init__(self, publisher: Any) -> None:
        self._publisher = publisher
        self.once = FailsOnce()

    async def publish_record(self, **record: Any) -> None:
        self.once.check()
        await self._publisher.publish_record(**record)


class ResultsCutShort(MongoBulkStore):
    """The first results write fails: the batch's events went out, its results were not
    stored, so the batch is redone."""

    def __init__(self, database: Any) -> None:
        super().__init__(database)
        self.once = FailsOnce()

    async def add_batches(self, job_id: str, batches: list[BatchRecord]) -> None:
        self.once.check()
        await super().add_batches(job_id, batches)


async def test_p2_a_batch_cut_short_before_or_after_its_events_went_out_is_redone(
    firm: TemplateFirm,
) -> None:
    """A batch's events are published after its threads are written and before its
    results are stored: a pass that failed before they went out publishes them on the redo,
    and one that failed after publishes them again under the same ids (consumers
    deduplicate); every thread gets its events, each under one id."""
    active = [account(f"acc_e{i}", f"Ev {i}", (f"Eve{i} Doe", True)) for i in range(4)]
    await add_accounts(firm, active)
    runtime = firm.app.state.runtime
    job_id, replica = await start_held_job(firm, "events", [a.account_id for a in active])
    store = ResultsCutShort(runtime.database)
    publisher = PublishingCutShort(runtime.publisher)
    worker = replica_worker(firm, replica, batch_size=2, store=store, publisher=publisher)
    threads = runtime.database["threads"]
    async with ThreadCreatedWatch(runtime.settings.kafka_bootstrap_servers) as watch:
        with pytest.raises(ConnectionError):  # the first batch's events
            await worker.work_once()
        # the failure surfaces behind the job, once a later batch is written
        assert await threads.count_documents({"bulk_job_id": job_id}) >= 4
        with pytest.raises(ConnectionError):  # the first batch's results, events out
            await worker.work_once()
        assert await runtime.database["bulk_batches"].count_documents({"job_id": job_id}) == 0
        assert await worker.work_once()
        job = await finished(firm, job_id)
        created = {r["thread_id"] for r in job["results"]}
        await watch.events(created)
    assert job["created"] == 4 and len(created) == 4
    ids = {thread: {e.id for e in watch.every if e.data.thread_id == thread} for thread in created}
    assert all(len(each) == 1 for each in ids.values()), ids


def batch_of(start: int, end: int, tag: str) -> BatchRecord:
    """A written batch whose every account got a thread (``tag`` names the try)."""
    results = [
        {"index": index, "account_id": f"acc_{index}", "outcome": "created",
         "thread_id": f"th_{index}_{tag}", "reason": None}
        for index in range(start, end)
    ]  # fmt: skip
    return BatchRecord(start=start, end=end, at=utc_now(), results=results, events=[])


def batches_of(size: int, start: int, end: int, tag: str) -> list[BatchRecord]:
    """``[start, end)`` in batches of ``size``, cut where a page of results ends."""
    batches = []
    while start < end:
        batches.append(batch_of(start, min(start + size, end, page_end(start)), tag))
        start = batches[-1].end
    return batches


async def test_p2_results_of_batches_redone_with_other_bounds_are_listed_once(
    firm: TemplateFirm,
) -> None:
    """A resumed job sizes its batches afresh, so its batch documents overlap the first
    try's: every page of results lists each account once, in request order, none missing,
    across pages of stored results."""
    runtime = firm.app.state.runtime
    store = MongoBulkStore(runtime.database)
    job_id = f"overlap-{firm.firm}"
    total = 2 * RESULTS_PAGE + 30
    await store.add_batches(job_id, batches_of(40, 0, 150, "first"))
    redo = batches_of(30, 0, total, "redo")
    await store.add_batches(job_id, redo)
    await store.add_batches(job_id, redo[1:3])  # a redo of the redo
    assert all(b.start // RESULTS_PAGE == (b.end - 1) // RESULTS_PAGE for b in redo)
    for limit in (1, 7, RESULTS_PAGE - 1, RESULTS_PAGE, RESULTS_PAGE + 1, total):
        listed: list[int] = []
        after = -1
        while True:
            found = await store.results(job_id, after=after, limit=limit)
            page = found[:limit]
            listed += [result["index"] for result in page]
            if len(found) <= limit:
                break
            after = page[-1]["index"]
        assert listed == list(range(total)), (limit, listed)


async def test_p2_cancel_stops_a_job_on_the_replica_holding_it_after_its_batch(
    firm: TemplateFirm,
) -> None:
    """The cancel is asked through this replica's API; another replica works the job (it
    holds the lease, so this one's worker leaves the job alone) and stops after its batch."""
    active = [account(f"acc_c{i}", f"Cancel {i}", (f"Cal{i} Doe", True)) for i in range(6)]
    await add_accounts(firm, active)
    account_ids = [a.account_id for a in active]
    job_id, replica = await start_held_job(firm, "cancel", account_ids)
    # batches of 2 with a long pause between them: the cancel lands in a pause
    worker = replica_worker(firm, replica, batch_size=2, pause_seconds=5.0)
    working = asyncio.create_task(worker.work_once())
    store = MongoBulkStore(firm.app.state.runtime.database)
    await eventually(
        lambda: store.summary(firm.firm, job_id),
        until=lambda job: job is not None and job["cursor"] >= 2,
        within=60,
    )
    cancel = await firm.call("owner", "POST", f"/v1/bulk-messages/{job_id}/cancel")
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["status"] in {"cancelling", "cancelled"}
    again = await firm.call("owner", "POST", f"/v1/bulk-messages/{job_id}/cancel")
    assert again.status_code == 200 and again.json()["id"] == job_id
    assert await asyncio.wait_for(working, 60)

    job = (
        await firm.call("owner", "GET", f"/v1/bulk-messages/{job_id}", params={"limit": 1000})
    ).json()
    processed = job["processed"]
    assert job["status"] == "cancelled" and job["finished_at"] is not None
    assert 2 <= processed < 6 and processed % 2 == 0
    assert (job["created"], job["cancelled"]) == (processed, 6 - processed)
    assert [r["index"] for r in job["results"]] == list(range(6))
    assert [r["outcome"] for r in job["results"]] == ["created"] * processed + ["cancelled"] * (
        6 - processed
    )
    assert all("cancelled" in r["reason"] for r in job["results"][processed:])
    assert [r["account_id"] for r in job["results"]] == account_ids
    paged = await firm.call(
        "owner", "GET", f"/v1/bulk-messages/{job_id}", params={"after": processed, "limit": 1}
    )
    assert [r["index"] for r in paged.json()["results"]] == [processed + 1]
    database = firm.app.state.runtime.database
    threads = await database["threads"].find({"bulk_job_id": job_id}, {"account_id": 1}).to_list()
    assert sorted(t["account_id"] for t in threads) == sorted(account_ids[:processed])
    for thread in threads:  # created threads stay, usable
        shown = await firm.call("owner", "GET", f"/v1/threads/{thread['_id']}")
        assert shown.status_code == 200
    finished = await firm.call("owner", "POST", f"/v1/bulk-messages/{job_id}/cancel")
    assert finished.status_code == 200 and finished.json()["status"] == "cancelled"


async def test_p2_a_job_cancelled_before_any_replica_took_it_processes_nothing(
    firm: TemplateFirm,
) -> None:
    key = f"early-{firm.firm}"
    job_id = derived_id("job", firm.firm, "st_mia", key)
    busy = Leases(firm.app.state.runtime.database, holder="replica-c")
    assert await busy.claim(f"bulk:{job_id}", seconds=600)  # nobody works it for now
    body = {"account_ids": [LEE, PATEL, DORMANT], "subject": "s", "html": "<p>h</p>"}
    started = await firm.call(
        "assigned member", "POST", "/v1/bulk-messages", json=body, headers={"Idempotency-Key": key}
    )
    assert started.status_code == 202 and started.json()["id"] == job_id, started.text
    for who in ("unassigned member", "other firm"):
        denied = await firm.call(who, "POST", f"/v1/bulk-messages/{job_id}/cancel")
        assert denied.status_code == 404, (who, denied.text)
    client = await firm.call("client", "POST", f"/v1/bulk-messages/{job_id}/cancel")
    assert client.status_code == 403
    unknown = await firm.call("owner", "POST", "/v1/bulk-messages/nope/cancel")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith(
        "application/problem+json"
    )
    cancel = await firm.call("assigned member", "POST", f"/v1/bulk-messages/{job_id}/cancel")
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelling", cancel.text

    await busy.release(f"bulk:{job_id}")  # this replica's own worker takes it and stops it

    async def job() -> dict[str, Any]:
        response = await firm.call("admin", "GET", f"/v1/bulk-messages/{job_id}")
        return dict(response.json())

    done = await eventually(job, until=lambda j: j["status"] == "cancelled", within=60)
    assert (done["processed"], done["created"], done["cancelled"]) == (0, 0, 3)
    assert [r["outcome"] for r in done["results"]] == ["cancelled"] * 3
    database = firm.app.state.runtime.database
    assert await database["threads"].count_documents({"bulk_job_id": job_id}) == 0


class ResultsNeverStored(MongoBulkStore):
    """Every results write fails: the worker writes threads, then dies before recording."""

    async def add_batches(self, job_id: str, batches: list[BatchRecord]) -> None:
        raise ConnectionError("died before recording")


async def test_p2_a_job_cancelled_after_its_worker_died_finishes_what_it_may_have_written(
    firm: TemplateFirm,
) -> None:
    """A job cancelled after its worker died with threads written beyond its recorded
    progress is finished up to the last of them, so they get their results and events;
    then it is cancelled."""
    active = [account(f"acc_r{i}", f"Res {i}", (f"Rex{i} Doe", True)) for i in range(20)]
    await add_accounts(firm, active)
    runtime = firm.app.state.runtime
    job_id, replica = await start_held_job(firm, "reserved", [a.account_id for a in active])
    dying = replica_worker(firm, replica, batch_size=2, store=ResultsNeverStored(runtime.database))
    threads = runtime.database["threads"]
    async with ThreadCreatedWatch(runtime.settings.kafka_bootstrap_servers) as watch:
        with pytest.raises(ConnectionError):
            await dying.work_once()

        async def written_ids() -> set[str]:
            return {t["_id"] for t in await threads.find({"bulk_job_id": job_id}).to_list()}

        # The dying worker's last thread insert (pipelined behind the failed batch) may
        # still land: take what was written once nothing more arrives.
        written, settled = set(), await written_ids()
        while written != settled:
            await asyncio.sleep(0.3)
            written, settled = settled, await written_ids()
        assert len(written) >= 4  # the failure surfaces once a later batch is written
        cancel = await firm.call("owner", "POST", f"/v1/bulk-messages/{job_id}/cancel")
        assert cancel.json()["status"] == "cancelling", cancel.text
        assert await replica_worker(firm, replica, batch_size=2).work_once()
        job = (await firm.call("owner", "GET", f"/v1/bulk-messages/{job_id}")).json()
        await watch.events(written)
    assert job["status"] == "cancelled"
    last = max(i for i, a in enumerate(active) if thread_id_for(job_id, a.account_id) in written)
    processed = (last // 2 + 1) * 2  # where the batch (of 2) holding the last one ends
    assert (job["processed"], job["cancelled"]) == (processed, 20 - processed)
    outcomes = [r["outcome"] for r in job["results"]]
    assert outcomes == ["created"] * processed + ["cancelled"] * (20 - processed)
    assert written <= {r["thread_id"] for r in job["results"]}


async def test_p2_a_finished_job_cannot_be_cancelled(firm: TemplateFirm) -> None:
    body = {"account_ids": [LEE], "subject": "s", "html": "<p>h</p>"}
    started = await firm.call("owner", "POST", "/v1/bulk-messages", json=body)
    job = await finished(firm, started.json()["id"])
    late = await firm.call("owner", "POST", f"/v1/bulk-messages/{job['id']}/cancel")
    assert late.status_code == 409 and "finished" in late.json()["detail"], late.text


# --- a real process, killed mid-job -------------------------------------------------------


def children(pid: int, command: str) -> list[int]:
    """Pids of the processes whose parent is ``pid`` and whose command line has ``command``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                line = cmdline.read().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if parent == pid and command in line:
            found.append(int(entry))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@asynccontextmanager
async def messaging_process(
    env: dict[str, str], port: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``uvicorn`` serving messaging on ``port`` until it is ready; killed at the end."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "uvicorn", "--factory", "threadline.messaging.main:create_app"),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        env=os.environ | env,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def ready() -> int:
                try:
                    return (await http.get("/readyz")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(ready, until=lambda status: status == 200, within=90)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_p2_a_job_resumes_after_sigkill_with_no_duplicate_and_none_missing(
    run_id: str,
) -> None:
    firm = f"firm_{run_id}"
    database_name = f"it_messaging_kill_{run_id}"
    env = {
        "MESSAGING_MONGODB_DATABASE": database_name,
        "MESSAGING_CONSUMER_GROUP": f"it-kill-{run_id}",
        "MESSAGING_CONSUMER_START": "latest",
        "MESSAGING_OUTBOX_RELAY_INTERVAL_SECONDS": "0.3",
        "MESSAGING_OUTBOX_RELAY_GRACE_SECONDS": "1.0",
        "MESSAGING_BULK_BATCH_SIZE": "10",
        "MESSAGING_BULK_PAUSE_SECONDS": "0.15",
        "MESSAGING_BULK_LEASE_SECONDS": "2",
        "MESSAGING_BULK_POLL_SECONDS": "0.2",
        "MESSAGING_BULK_WORKER": "process",
        "MESSAGING_LOG_LEVEL": "WARNING",
    }
    accounts = [account(f"acc_k{i}", f"Kill {i}", (f"Kim{i} Doe", True)) for i in range(120)]
    port = free_port()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ["THREADLINE_MONGODB_URL"])
    database = mongo[database_name]
    headers = {"Authorization": f"Bearer {token_for(firm, role='owner', sub='st_olivia')}"}
    watch = ThreadCreatedWatch(os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"])
    try:
        async with watch:
            async with messaging_process(env, port) as first:
                # The demo directory goes through the projection's own apply methods (what its
                # Kafka handlers call); the 120 accounts are written in the projection's shape in
                # one insert (one upsert each takes ~0.4 s on this shared machine's FerretDB).
                directory = MongoDirectory(database)
                apply = {
                    "directory.firm.upserted": directory.apply_firm,
                    "directory.staff.upserted": directory.apply_staff,
                    "directory.account.upserted": directory.apply_account,
                }
                for event in demo_directory(firm):
                    await apply[event.type](event)
                await database["directory_accounts"].insert_many(
                    [
                        each.model_dump()
                        | {"_id": f"{firm}:{each.account_id}", "firm": firm}
                        | {"removed": False, "as_of": utc_now()}
                        for each in accounts
                    ]
                )
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                    started = await http.post(
                        "/v1/bulk-messages",
                        headers=headers,
                        json={
                            "account_ids": [a.account_id for a in accounts],
                            "subject": "Year end [[account.name]]",
                            "html": "<p>Dear [[contact.first_name]]</p>",
                        },
                    )
                    assert started.status_code == 202, started.text
                    job_id = started.json()["id"]

                    async def processed() -> int:
                        job = await database["bulk_jobs"].find_one({"_id": job_id})
                        return int(job["cursor"]) if job else 0

                    at_kill = await eventually(processed, until=lambda n: n >= 30, within=90)
                [worker] = children(first.pid, "threadline.messaging.bulkprocess")
                first.send_signal(signal.SIGKILL)
                await first.wait()
                # the worker process sees its input close and stops: no orphan works on
                await eventually(
                    lambda: asyncio.to_thread(running, worker), until=lambda alive: not alive
                )
            assert at_kill < 120, "the job finished before the kill; slow it down"

            async with (
                messaging_process(env, port),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
            ):

                async def job() -> dict[str, Any]:
                    response = await http.get(
                        f"/v1/bulk-messages/{job_id}", headers=headers, params={"limit": 1000}
                    )
                    return dict(response.json())

                done = await eventually(job, until=lambda j: j["status"] == "done", within=120)

            assert (done["created"], done["skipped"], done["failed"]) == (120, 0, 0)
            assert len(done["results"]) == 120
            threads = (
                await database["threads"].find({"bulk_job_id": job_id}, {"account_id": 1}).to_list()
            )
            assert sorted(t["account_id"] for t in threads) == sorted(
                a.account_id for a in accounts
            )
            assert {t["_id"] for t in threads} == {
                thread_id_for(job_id, a.account_id) for a in accounts
            }
            messages = await database["messages"].count_documents(
                {"thread_id": {"$in": [t["_id"] for t in threads]}}
            )
            assert messages == 120
            assert all(
                r["thread_id"] == thread_id_for(job_id, r["account_id"]) for r in done["results"]
            )
            # every thread got its events, those of batches redone after the kill included
            await watch.events({t["_id"] for t in threads})
    finally:
        await mongo.drop_database(database_name)
        await mongo.close()
