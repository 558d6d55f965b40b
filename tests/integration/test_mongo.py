"""Index creation at start-up on the real MongoDB-protocol server."""

import asyncio
import os

import pytest
from pymongo import ReturnDocument

from threadline.kit.mongo import IndexSpec, connect, ensure_indexes, ping

pytestmark = pytest.mark.integration


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


async def test_concurrent_updates_of_one_document_are_atomic(run_id: str) -> None:
    """Per-thread sequence numbers and the outbox rely on per-document atomic updates.

    FerretDB 1.24 alone loses concurrent updates; the local stack serialises its commands
    (stack/ferretdb/main.go). Real MongoDB passes this by itself.
    """
    client = connect(os.environ["THREADLINE_MONGODB_URL"], app_name="it")
    collection = client[f"it_atomic_{run_id}"]["counters"]
    try:
        await collection.insert_one({"_id": "thread", "seq": 0, "_outbox": [], "tags": []})

        async def allocate() -> int:
            document = await collection.find_one_and_update(
                {"_id": "thread"}, {"$inc": {"seq": 1}}, return_document=ReturnDocument.AFTER
            )
            return document["seq"]

        async def push(i: int) -> None:
            await collection.update_one({"_id": "thread"}, {"$push": {"tags": i}})

        results = await asyncio.gather(
            *[allocate() for _ in range(40)], *[push(i) for i in range(40)]
        )
        assert sorted(results[:40]) == list(range(1, 41)), "every allocation got its own number"
        document = await collection.find_one({"_id": "thread"})
        assert document["seq"] == 40 and sorted(document["tags"]) == list(range(40))
    finally:
        await client.drop_database(f"it_atomic_{run_id}")
        await client.close()
