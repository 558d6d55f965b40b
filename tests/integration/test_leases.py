"""Leased claims, per-item claims and periodic() on a real MongoDB-protocol server: one
holder at a time, renewal, release, takeover when the holder dies (expiry is in the
queries: no TTL index)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from threadline.kit.consumer import MongoProcessedEvents
from threadline.kit.leases import ItemClaims, Leases, periodic

from .conftest import eventually

pytestmark = pytest.mark.integration


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def database(run_id: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ["THREADLINE_MONGODB_URL"], tz_aware=True
    )
    name = f"threadline_leases_{run_id}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


async def test_one_holder_at_a_time_renewal_release_and_takeover_after_expiry(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    clock = FakeClock()
    first = Leases(database, holder="replica-a", clock=clock)
    second = Leases(database, holder="replica-b", clock=clock)
    assert await first.claim("job", seconds=30)
    assert not await second.claim("job", seconds=30)
    assert await first.claim("job", seconds=30), "the holder may claim again (renews)"
    clock.now += timedelta(seconds=20)
    assert await first.renew("job", seconds=30)
    clock.now += timedelta(seconds=20)
    assert not await second.claim("job", seconds=30), "renewed: still held at +40 s"
    assert await second.holder_of("job") == "replica-a"
    clock.now += timedelta(seconds=31)  # replica-a died: no renewal
    assert await second.claim("job", seconds=30)
    assert not await first.renew("job", seconds=30), "a taken-over lease cannot be renewed"
    assert await first.holder_of("job") == "replica-b"
    await second.release("job")
    assert await first.holder_of("job") is None
    assert await first.claim("job", seconds=30), "released: free at once"


async def test_item_claims_one_holder_per_item_renewal_finish_and_takeover(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    lease = timedelta(seconds=30)
    items = database["items"]
    await items.insert_many(
        [
            {
                "_id": f"item{n}",
                "pending": True,
                "due_at": now - timedelta(seconds=n),
                "claim": None,
            }
            for n in range(3)
        ]
        + [{"_id": "later", "pending": True, "due_at": now + timedelta(hours=1), "claim": None}]
    )
    claims = ItemClaims(items)
    first = await claims.claim_due({"pending": True}, token="a:1", now=now, lease=lease, limit=2)
    assert sorted(item["_id"] for item in first) == ["item1", "item2"], "longest due first"
    second = await claims.claim_due({"pending": True}, token="b:1", now=now, lease=lease, limit=10)
    assert [item["_id"] for item in second] == ["item0"], "claimed items are not due"
    assert not await claims.claim("item1", token="b:2", now=now, lease=lease)
    assert await claims.renew("item1", token="a:1", now=now + timedelta(seconds=20), lease=lease)
    assert await claims.finish(
        "item2", token="a:1", update={"$set": {"pending": False}, "$inc": {"attempts": 1}}
    )
    done = await items.find_one({"_id": "item2"})
    assert done is not None and (done["pending"], done["claim"], done["attempts"]) == (
        False,
        None,
        1,
    )
    # "a" dies: item1's renewed lease runs out at +50 s and "b" takes it over
    at_45 = now + timedelta(seconds=45)
    assert not await claims.claim("item1", token="b:3", now=at_45, lease=lease)
    at_51 = now + timedelta(seconds=51)
    assert await claims.claim("item1", token="b:3", now=at_51, lease=lease)
    assert not await claims.finish("item1", token="a:1", update={"$set": {"pending": False}})
    assert not await claims.renew("item1", token="a:1", now=at_51, lease=lease)
    assert await claims.release("item1", token="b:3", now=at_51)
    entry = await items.find_one({"_id": "item1"})
    assert entry is not None
    assert await claims.claim(
        "item1", token="c:1", now=at_51, lease=lease, due_at=entry["due_at"]
    ), "released: claimable at once"
    assert not await claims.delete("item1", token="b:3")
    assert await claims.delete("item1", token="c:1")
    assert await items.count_documents({"_id": "item1"}) == 0


REPLICA = textwrap.dedent(
    """
    import asyncio, sys
    from pymongo import AsyncMongoClient
    from threadline.kit.leases import ItemClaims, Leases, periodic

    async def main(url, name):
        database = AsyncMongoClient(url, tz_aware=True)[name]
        leases = Leases(database, holder="replica-process")

        async def job():
            await database["runs"].insert_one({"holder": leases.holder})
            return 1

        await periodic(job, every_seconds=0.2, what="test job", leases=leases, lease_seconds=4)()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_periodic_runs_on_one_replica_and_another_takes_over_when_it_is_killed(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    runs = database["runs"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", REPLICA, os.environ["THREADLINE_MONGODB_URL"], database.name
    )
    try:
        await eventually(
            lambda: runs.count_documents({"holder": "replica-process"}), until=lambda n: n >= 2
        )
        local = Leases(database, holder="replica-local")

        async def job() -> int:
            await runs.insert_one({"holder": local.holder})
            return 1

        replica = asyncio.create_task(
            periodic(job, every_seconds=0.2, what="test job", leases=local, lease_seconds=4)()
        )
        before = await runs.count_documents({"holder": "replica-process"})
        await eventually(
            lambda: runs.count_documents({"holder": "replica-process"}),
            until=lambda n: n >= before + 3,
        )
        assert await runs.count_documents({"holder": "replica-local"}) == 0, (
            "while the holder lives, the other replica never runs the job"
        )
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await eventually(
            lambda: runs.count_documents({"holder": "replica-local"}), until=lambda n: n >= 2
        )
        replica.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_processed_event_ids_older_than_the_retention_are_purged(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    processed = MongoProcessedEvents(database)
    await processed.mark("old", "t")
    await processed.mark("recent", "t")
    await database["processed_events"].update_one(
        {"_id": "old"}, {"$set": {"processed_at": datetime.now(UTC) - timedelta(days=15)}}
    )
    assert await processed.purge(older_than=timedelta(days=14)) == 1
    assert not await processed.seen("old")
    assert await processed.seen("recent")
