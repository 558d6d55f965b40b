"""The MongoDB behaviour the services rely on, checked on the real MongoDB-protocol server.

FerretDB 1.24 runs update, findAndModify and delete as unlocked read-modify-write; the local
stack's proxy (stack/ferretdb/main.go) serialises exactly those commands, while reads and
inserts run beside them. The concurrency tests below are what proves that nothing is lost.
Real MongoDB passes them by itself.
"""

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

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


async def test_concurrent_updates_by_id_by_id_list_and_by_other_fields_lose_nothing(
    database: Database,
) -> None:
    """The proxy locks per document when a filter pins `_id` (equality, `$eq`, `$in`) and
    the whole collection otherwise; every mix of them must still add up. Numeric ids in
    different types (1, 1.0, int64) name one document."""
    counters = database["counters"]
    await counters.insert_many([{"_id": i, "firm": "f", "n": 0} for i in range(4)])
    by_id = [counters.update_one({"_id": i % 4}, {"$inc": {"n": 1}}) for i in range(CONCURRENCY)]
    by_eq = [counters.update_one({"_id": {"$eq": 1.0}}, {"$inc": {"n": 1}}) for _ in range(10)]
    by_list = [
        counters.update_many({"_id": {"$in": [0, 1, 2, 3]}}, {"$inc": {"n": 1}}) for _ in range(10)
    ]
    by_firm = [counters.update_many({"firm": "f"}, {"$inc": {"n": 1}}) for _ in range(10)]
    await asyncio.gather(*by_id, *by_eq, *by_list, *by_firm)
    totals = {doc["_id"]: doc["n"] async for doc in counters.find({})}
    per_document = CONCURRENCY // 4 + 10 + 10
    assert totals == {0: per_document, 1: per_document + 10, 2: per_document, 3: per_document}


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


async def test_conditional_upserts_racing_keep_the_newest_and_raise_duplicate_key(
    database: Database,
) -> None:
    """Projections: `{_id, as_of: {$lt: t}}` + upsert applies only newer facts; an older one
    finds the document newer, tries to insert the same `_id` and gets DuplicateKeyError."""
    staff = database["staff"]
    start = datetime(2026, 1, 1, tzinfo=UTC)

    async def apply(minute: int) -> bool:
        as_of = start + timedelta(minutes=minute)
        try:
            await staff.update_one(
                {"_id": "f:u1", "as_of": {"$lt": as_of}},
                {"$set": {"name": f"v{minute}", "as_of": as_of}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    applied = await asyncio.gather(*[apply(minute) for minute in range(CONCURRENCY)])
    assert any(applied)
    latest = await staff.find_one({"_id": "f:u1"}, {"_id": 0, "name": 1})
    assert latest == {"name": f"v{CONCURRENCY - 1}"}
    assert not await apply(0), "an older fact is refused"


async def test_duplicate_key_error_on_id_and_on_unique_index(database: Database) -> None:
    messages = database["messages"]
    await messages.create_index([("thread_id", 1), ("seq", 1)], unique=True)
    await messages.insert_one({"_id": "m1", "thread_id": "t", "seq": 1})
    with pytest.raises(DuplicateKeyError) as on_id:
        await messages.insert_one({"_id": "m1", "thread_id": "t", "seq": 2})
    with pytest.raises(DuplicateKeyError) as on_index:
        await messages.insert_one({"_id": "m2", "thread_id": "t", "seq": 1})
    assert on_id.value.code == on_index.value.code == 11000
    await messages.insert_one({"_id": "m3", "thread_id": "t", "seq": 2})
    await messages.insert_one({"_id": "m4", "thread_id": "u", "seq": 1})
    assert await messages.count_documents({}) == 3


async def test_unique_index_and_documents_lacking_the_field(database: Database) -> None:
    """Store indexed fields always (null when unset): explicit nulls collide on both servers,
    while missing fields collide on MongoDB only (it indexes them as null; FerretDB skips)."""
    drafts = database["drafts"]
    await drafts.create_index([("owner", 1), ("thread_id", 1)], unique=True)
    await drafts.insert_one({"_id": 1, "owner": "u", "thread_id": None})
    with pytest.raises(DuplicateKeyError):
        await drafts.insert_one({"_id": 2, "owner": "u", "thread_id": None})
    await drafts.insert_one({"_id": 3, "owner": "u", "thread_id": "t"})  # a value: no clash
    await drafts.insert_one({"_id": 4, "owner": "v"})
    if await on_ferretdb(database):
        await drafts.insert_one({"_id": 5, "owner": "v"})
        assert await drafts.count_documents({"owner": "v"}) == 2
    else:
        with pytest.raises(DuplicateKeyError):
            await drafts.insert_one({"_id": 5, "owner": "v"})


async def test_find_one_and_update_forms(database: Database) -> None:
    threads = database["threads"]
    await threads.insert_one({"_id": "t", "status": "active", "seq": 0, "mentioned": ["a"]})
    before = await threads.find_one_and_update({"_id": "t"}, {"$inc": {"seq": 1}})
    assert before is not None and before["seq"] == 0, "returns the document before by default"
    after = await threads.find_one_and_update(
        {"_id": "t", "status": "active"},
        {
            "$inc": {"seq": 1},
            "$set": {"last": "m2"},
            "$addToSet": {"mentioned": {"$each": ["a", "b"]}},
        },
        return_document=ReturnDocument.AFTER,
    )
    assert after == {
        "_id": "t",
        "status": "active",
        "seq": 2,
        "mentioned": ["a", "b"],
        "last": "m2",
    }
    archived = await threads.find_one_and_update(
        {"_id": "t", "status": "archived"}, {"$inc": {"seq": 1}}
    )
    assert archived is None, "no match: nothing returned, nothing changed"
    created = await threads.find_one_and_update(
        {"_id": "new"}, {"$set": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert created == {"_id": "new", "seq": 1}
    none_before = await threads.find_one_and_update(
        {"_id": "newer"}, {"$set": {"seq": 1}}, upsert=True
    )
    assert none_before is None
    assert await threads.count_documents({}) == 3
    assert (await threads.find_one({"_id": "t"}) or {})["seq"] == 2


async def test_update_operators_the_services_use(database: Database) -> None:
    documents = database["documents"]
    at = datetime(2026, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)
    entry = {"id": "e1", "topic": "x", "headers": {"h": "v"}, "created_ms": 1}
    await documents.insert_one({"_id": "d", "read": 3, "tags": [], "_outbox": [entry]})
    await documents.update_one({"_id": "d"}, {"$push": {"tags": "a"}})  # one element
    await documents.update_one({"_id": "d"}, {"$push": {"tags": {"$each": ["b", "c"]}}})
    await documents.update_one({"_id": "d"}, {"$addToSet": {"tags": {"$each": ["c", "d"]}}})
    await documents.update_one({"_id": "d"}, {"$max": {"read": 2}})  # lower: kept
    await documents.update_one({"_id": "d"}, {"$max": {"read": 5}})
    await documents.update_one({"_id": "d"}, {"$set": {"meta.at": at, "pending": True}})
    await documents.update_one({"_id": "d"}, {"$unset": {"pending": ""}})
    await documents.update_one({"_id": "d"}, {"$pull": {"_outbox": entry}})  # exact element
    assert await documents.find_one({"_id": "d"}) == {
        "_id": "d",
        "read": 5,
        "tags": ["a", "b", "c", "d"],
        "_outbox": [],
        "meta": {"at": at},
    }
    result = await documents.update_one({"_id": "d", "read": 4}, {"$set": {"read": 9}})
    assert (result.matched_count, result.modified_count) == (0, 0)
    result = await documents.update_one({"_id": "d"}, {"$set": {"read": 5}})
    assert (result.matched_count, result.modified_count) == (1, 0), "no change: not modified"
    replaced = await documents.replace_one({"_id": "r"}, {"_id": "r", "v": 1}, upsert=True)
    assert replaced.upserted_id == "r"
    many = await documents.update_many({}, {"$set": {"swept": True}})
    assert many.modified_count == 2
    assert (await documents.delete_many({"swept": True})).deleted_count == 2


async def test_query_operators_and_projections(database: Database) -> None:
    documents = database["documents"]
    now = datetime(2026, 5, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    await documents.insert_many(
        [
            {
                "_id": 1,
                "folder": "tax/2025",
                "at": now - hour,
                "by": {"id": "u1"},
                "o": [{"ms": 5}],
            },
            {"_id": 2, "folder": "tax", "at": now + hour, "by": {"id": "u2"}, "o": []},
            {"_id": 3, "folder": "taxes", "at": now, "by": {"id": "u1"}, "o": [], "pending": True},
        ]
    )

    async def ids(query: dict[str, Any]) -> list[int]:
        return sorted([doc["_id"] async for doc in documents.find(query, {"_id": 1})])

    assert await ids({"folder": {"$regex": "^tax(/|$)"}}) == [1, 2]
    assert await ids({"_id": {"$in": [1, 3, 9]}}) == [1, 3]
    assert await ids({"at": {"$gt": now - hour}}) == [2, 3]
    assert await ids({"at": {"$lte": now}}) == [1, 3]
    assert await ids({"by.id": {"$ne": "u1"}}) == [2]
    assert await ids({"pending": {"$exists": True}}) == [3]
    assert await ids({"o.0": {"$exists": True}}) == [1]
    assert await ids({"o.ms": {"$lt": 10}}) == [1]
    assert await ids({"$or": [{"_id": 1}, {"folder": "taxes"}], "pending": True}) == [3]
    assert await ids({"$and": [{"folder": "tax"}], "$or": [{"_id": 2}, {"_id": 3}]}) == [2]
    hidden = await documents.find_one({"_id": 1}, {"o": 0})
    assert hidden is not None and "o" not in hidden and hidden["folder"] == "tax/2025"
    assert hidden["at"] == now - hour, "tz-aware datetimes round-trip"


async def test_sort_limit_skip_and_cursor_batches(database: Database) -> None:
    threads = database["threads"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await threads.insert_many(
        [{"_id": f"t{i:03d}", "at": start + timedelta(minutes=i // 2)} for i in range(250)]
    )
    newest = await threads.find({}).sort([("at", -1), ("_id", -1)]).limit(3).to_list()
    assert [doc["_id"] for doc in newest] == ["t249", "t248", "t247"]
    page = await threads.find({}).sort("_id", 1).skip(10).limit(5).to_list()
    assert [doc["_id"] for doc in page] == [f"t{i:03d}" for i in range(10, 15)]
    seen = [doc["_id"] async for doc in threads.find({}).sort("_id", 1).batch_size(40)]
    assert seen == [f"t{i:03d}" for i in range(250)], "getMore continues across batches"
    assert await threads.count_documents({"at": {"$lt": start + timedelta(minutes=10)}}) == 20


async def test_aggregation_match_and_group_with_sum(database: Database) -> None:
    """Unread counts: $match with $or branches, then $group by thread with $sum."""
    messages = database["messages"]
    await messages.insert_many(
        [
            {"thread_id": f"t{i % 3}", "seq": i, "deleted": i == 4, "internal": i % 5 == 0}
            for i in range(12)
        ]
    )
    branches = [{"thread_id": "t0", "seq": {"$gt": 2}}, {"thread_id": "t1"}]
    pipeline = [
        {"$match": {"$or": branches, "deleted": False, "internal": False}},
        {"$group": {"_id": "$thread_id", "unread": {"$sum": 1}}},
    ]
    rows = {row["_id"]: row["unread"] async for row in await messages.aggregate(pipeline)}
    assert rows == {"t0": 3, "t1": 2}  # t0: 3, 6, 9; t1: 1, 7 (4 deleted, 10 internal)


async def test_what_the_portable_subset_avoids_fails_loudly_on_ferretdb(
    database: Database,
) -> None:
    """TTL indexes and find_one_and_update with a projection error (never silently wrong)."""
    if not await on_ferretdb(database):
        pytest.skip("MongoDB supports these")
    threads = database["threads"]
    await threads.insert_one({"_id": "t", "seq": 0})
    with pytest.raises(OperationFailure):
        await threads.create_index([("expires_at", 1)], expireAfterSeconds=0)
    with pytest.raises(OperationFailure):
        await threads.find_one_and_update({"_id": "t"}, {"$inc": {"seq": 1}}, projection={"seq": 1})


async def on_ferretdb(database: Database) -> bool:
    return "ferretdbVersion" in await database.client.admin.command("buildInfo")


def plan_nodes(plan: dict[str, Any]) -> list[str]:
    """The node types of a PostgreSQL plan (FerretDB's ``explain`` carries it)."""
    return [plan["Node Type"], *(n for child in plan.get("Plans", []) for n in plan_nodes(child))]


async def test_equality_filters_are_served_by_an_index_on_the_local_stack(
    database: Database,
) -> None:
    """FerretDB 1.24 filters with ``(_jsonb -> 'field') @> value``, which its own btree
    indexes cannot serve; the local stack gives every one of them a GIN twin
    (stack/ferretdb/indexes.go), so lookups by ``_id`` or by an indexed field do not scan
    the collection. Real MongoDB uses its indexes by itself (nothing to check there)."""
    things = database["things"]
    await things.insert_many([{"_id": f"id{i}", "owner": f"u{i % 50}"} for i in range(2000)])
    await ensure_indexes(database, [IndexSpec("things", [("owner", 1), ("at", -1)])])
    for query in ({"_id": "id7"}, {"owner": "u3"}):
        explained = await database.command("explain", {"find": "things", "filter": query})
        if "queryPlanner" not in explained or "Plan" not in explained["queryPlanner"]:
            pytest.skip("not FerretDB on PostgreSQL")
        nodes = plan_nodes(explained["queryPlanner"]["Plan"])
        assert "Seq Scan" not in nodes and "Bitmap Index Scan" in nodes, (query, nodes)
    found = [d["_id"] for d in await things.find({"owner": "u3"}).to_list()]
    assert sorted(found) == sorted(f"id{i}" for i in range(3, 2000, 50))  # no sort: any order
