"""Compare MongoDB-protocol servers on the workloads of the storage issue (issue 8).

    .venv/bin/python benchmarks/mongo_server.py --url mongodb://127.0.0.1:27017 [--url ...]

For each server: 10,000 thread-like documents of one account (7,500 active) plus a small
account of 200, an index on (firm, account_id, last_activity_at); then the median of
`--samples` runs of each query, insert latency while another client loops the big list, and
a mixed load (inserts and `$inc` on one counter from concurrent clients) that also counts
lost updates. It writes only into a database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

Collection = AsyncCollection[dict[str, Any]]
FIRM = "firm-bench"
BIG, SMALL = "acct-big", "acct-small"


def _threads(account: str, count: int, active: int) -> list[dict[str, Any]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "_id": f"{account}-{i:06d}",
            "firm": FIRM,
            "account_id": account,
            "status": "active" if i < active else "archived",
            "subject": f"Thread {i} about the annual accounts",
            "last_activity_at": start + timedelta(minutes=i),
            "seq": i % 50,
            "client_seq": i % 40,
            "participants": ["staff-1", "staff-2"],
            "_outbox": [],
        }
        for i in range(count)
    ]


async def _median_ms(samples: int, call: Any) -> float:
    timings = []
    for _ in range(samples):
        began = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings)


async def _list(threads: Collection, account: str, *, flat: bool) -> None:
    conditions = {"firm": FIRM, "account_id": account, "status": "active"}
    query = conditions if flat else {"$and": [{k: v} for k, v in conditions.items()]}
    await threads.find(query).sort([("last_activity_at", -1), ("_id", -1)]).limit(50).to_list()


async def _insert_while_listing(threads: Collection, samples: int) -> float:
    stop = asyncio.Event()

    async def lister() -> None:
        while not stop.is_set():
            await _list(threads, BIG, flat=True)

    background = asyncio.create_task(lister())
    await asyncio.sleep(0.5)  # let the first list start
    timings = []
    for _ in range(samples):
        began = time.perf_counter()
        await threads.database["messages"].insert_one({"_id": uuid.uuid4().hex, "body": "hi"})
        timings.append((time.perf_counter() - began) * 1000)
        await asyncio.sleep(0.05)
    stop.set()
    await background
    return statistics.median(timings)


async def _mixed_load(threads: Collection, seconds: float) -> tuple[float, float, int]:
    counters = threads.database["counters"]
    await counters.insert_one({"_id": "c", "n": 0})
    inserted = incremented = 0
    deadline = time.monotonic() + seconds

    async def inserter() -> None:
        nonlocal inserted
        while time.monotonic() < deadline:
            await threads.database["messages"].insert_one({"_id": uuid.uuid4().hex})
            inserted += 1

    async def incrementer() -> None:
        nonlocal incremented
        while time.monotonic() < deadline:
            await counters.find_one_and_update(
                {"_id": "c"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
            )
            incremented += 1

    async def lister() -> None:
        while time.monotonic() < deadline:
            await _list(threads, BIG, flat=True)

    await asyncio.gather(
        *[inserter() for _ in range(4)], *[incrementer() for _ in range(4)], lister()
    )
    counter = await counters.find_one({"_id": "c"})
    lost = incremented - (counter or {}).get("n", 0)
    return inserted / seconds, incremented / seconds, lost


async def measure(url: str, samples: int, seconds: float) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    name = f"bench_server_{uuid.uuid4().hex[:8]}"
    threads = client[name]["threads"]
    try:
        await threads.create_index([("firm", 1), ("account_id", 1), ("last_activity_at", -1)])
        documents = _threads(BIG, 10_000, 7_500) + _threads(SMALL, 200, 200)
        for start in range(0, len(documents), 1000):
            await threads.insert_many(documents[start : start + 1000])
        figures = {
            "list big, flat filter (ms)": await _median_ms(
                samples, lambda: _list(threads, BIG, flat=True)
            ),
            "list small, flat filter (ms)": await _median_ms(
                samples, lambda: _list(threads, SMALL, flat=True)
            ),
            "list big, $and filter (ms)": await _median_ms(
                samples, lambda: _list(threads, BIG, flat=False)
            ),
            "find by _id (ms)": await _median_ms(
                samples, lambda: threads.find_one({"_id": f"{BIG}-005000"})
            ),
            "find_one_and_update $inc (ms)": await _median_ms(
                samples,
                lambda: threads.find_one_and_update({"_id": f"{BIG}-005000"}, {"$inc": {"seq": 1}}),
            ),
            "insert p50 while listing (ms)": await _insert_while_listing(threads, samples),
        }
        inserts, increments, lost = await _mixed_load(threads, seconds)
        figures |= {"mixed inserts/s": inserts, "mixed $inc/s": increments, "lost $inc": lost}
        return figures
    finally:
        await client.drop_database(name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True, help="server(s) to compare")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="mixed load duration")
    args = parser.parse_args()
    for url in args.url:
        figures = asyncio.run(measure(url, args.samples, args.seconds))
        print(url)
        for label, value in figures.items():
            print(f"  {label:34} {value:10.1f}")


if __name__ == "__main__":
    main()
