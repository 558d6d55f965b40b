"""Index creation at start-up on the real MongoDB-protocol server."""

import os

import pytest

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
