"""The MongoDB behaviour the services rely on, checked on the real MongoDB-protocol server.

FerretDB 1.24 runs update, findAndModify and delete as unlocked read-modify-write; the local
stack's proxy (stack/ferretdb/main.go) serialises exactly those commands, while reads and
inserts run beside them. The concurrency tests below are what proves that nothing is lost.
Real MongoDB passes them by itself.
"""

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from threadline.kit.mongo import IndexSpec, connect, ensure_indexes, ping

pytestmark = pytest.mark.integration

Database = AsyncDatabase[dict[str, Any]]
#: Enough concurrent operations to lose some on an unlocked FerretDB (150-189 of 200 were).
CONCURRENCY = 60


@pytest.fixture
async def database(run_id: str) -> AsyncIterator[Database]:
    client = connect(os.environ["THREADLINE_MONGODB_URL"], app_name="it")
    try:
        yield client[f"it_mongo_{run_id}"]
    finally:
        await client.drop_database(f"it_mongo_{run_id}")
        await client.close()


async def test_indexes_are_created_idempotently_and_ttl_degrades_to_a_plain_index(
    run_id: str,
) -> None:
    client = connect(os.environ["THREADLINE_MONGODB_URL"], app_name="it")
    database = client[f"it_indexes_{run_id}"]
    specs = [
        IndexSpec("drafts", [("firm", 1), ("owner", 1), ("thread_id", 1)], unique=True),
        IndexSpec("drafts", [("expires_at", 1)], expire_after_seconds=0),
    ]
    try:
        assert await ping(database)
        await ensure_indexes(database, specs)
        await ensure_indexes(database, specs)  # a restart must not fail
        info = await database["drafts"].index_information()
        keys = {tuple(index["key"]) for index in info.values()}
        assert (("firm", 1), ("owner", 1), ("thread_id", 1)) in keys
        assert (("expires_at", 1),) in keys
        await database["drafts"].insert_one({"firm": "f", "owner": "u", "thread_id": "t"})
        with pytest.raises(Exception, match="duplicate key"):
            await database["drafts"].insert_one({"firm": "f", "owner": "u", "thread_id": "t"})
    finally:
        await client.drop_database(database.name)
        await client.close()


async def test_concurrent_inc_of_one_document_loses_nothing(database: Database) -> None:
    counters = database["counters"]
    await counters.insert_one({"_id": "thread", "seq": 0, "client_seq": 0})

    async def bump(internal: bool) -> None:
        await counters.update_one(
            {"_id": "thread"}, {"$inc": {"seq": 1, "client_seq": 0 if internal else 1}}
        )

    await asyncio.gather(*[bump(i % 3 == 0) for i in range(CONCURRENCY)])
    document = await counters.find_one({"_id": "thread"})
    assert document is not None
    assert document["seq"] == CONCURRENCY
    assert document["client_seq"] == CONCURRENCY - len(range(0, CONCURRENCY, 3))


async def test_concurrent_find_one_and_update_hands_out_each_number_once(
    database: Database,
) -> None:
    """Message numbering: every allocation sees its own value, before or after the update."""
    counters = database["counters"]
    await counters.insert_many([{"_id": "after", "seq": 0}, {"_id": "before", "seq": 0}])

    async def allocate(key: str, when: ReturnDocument) -> int:
        document = await counters.find_one_and_update(
            {"_id": key}, {"$inc": {"seq": 1}}, return_document=when
        )
        assert document is not None
        return int(document["seq"])

    after = await asyncio.gather(
        *[allocate("after", ReturnDocument.AFTER) for _ in range(CONCURRENCY)]
    )
    before = await asyncio.gather(
        *[allocate("before", ReturnDocument.BEFORE) for _ in range(CONCURRENCY)]
    )
    assert sorted(after) == list(range(1, CONCURRENCY + 1))
    assert sorted(before) == list(range(CONCURRENCY))


async def test_concurrent_push_and_pull_lose_no_element(database: Database) -> None:
    """The outbox: entries pushed by writers and pulled by the relay at the same time."""
    threads = database["threads"]
    await threads.insert_one({"_id": "t", "_outbox": [{"id": f"old{i}"} for i in range(20)]})

    async def push(i: int) -> None:
        await threads.update_one({"_id": "t"}, {"$push": {"_outbox": {"$each": [{"id": i}]}}})

    async def pull(i: int) -> None:
        await threads.update_one({"_id": "t"}, {"$pull": {"_outbox": {"id": f"old{i}"}}})

    await asyncio.gather(*[push(i) for i in range(CONCURRENCY)], *[pull(i) for i in range(20)])
    document = await threads.find_one({"_id": "t"})
    assert document is not None
    assert sorted(entry["id"] for entry in document["_outbox"]) == list(range(CONCURRENCY))


async def test_concurrent_deletes_delete_each_document_once(database: Database) -> None:
    drafts = database["drafts"]
    await drafts.insert_many([{"_id": i, "stale": True} for i in range(20)])
    results = await asyncio.gather(
        *[drafts.delete_one({"stale": True}) for _ in range(CONCURRENCY)]
    )
    assert sum(result.deleted_count for result in results) == 20
    assert await drafts.count_documents({}) == 0


async def test_inserts_and_reads_beside_updates_see_whole_documents(database: Database) -> None:
    """Inserts and reads run beside the serialised updates: nothing they do is lost or torn."""
    threads = database["threads"]
    await threads.insert_one({"_id": "t", "a": 0, "b": 0})

    async def update() -> None:
        await threads.update_one({"_id": "t"}, {"$inc": {"a": 1, "b": 1}})

    async def insert(i: int) -> None:
        await threads.insert_one({"_id": f"m{i}", "n": i})

    async def read() -> tuple[int, int]:
        document = await threads.find_one({"_id": "t"})
        assert document is not None
        return document["a"], document["b"]

    outcomes = await asyncio.gather(
        *[update() for _ in range(CONCURRENCY)],
        *[insert(i) for i in range(CONCURRENCY)],
        *[read() for _ in range(CONCURRENCY)],
    )
    assert all(a == b for a, b in outcomes[2 * CONCURRENCY :]), "a read saw half an update"
    assert await threads.count_documents({"n": {"$gte": 0}}) == CONCURRENCY
    assert await threads.find_one({"_id": "t"}) == {"_id": "t", "a": CONCURRENCY, "b": CONCURRENCY}
