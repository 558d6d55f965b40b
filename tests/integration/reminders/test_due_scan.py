"""The due query reads armed schedules only (Q2): its explain plan, on the real server."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from pymongo import AsyncMongoClient

from threadline.contracts.envelope import utc_now
from threadline.kit.mongo import ensure_indexes
from threadline.reminders.domain import ReminderPolicy, Schedule
from threadline.reminders.store import STORE_INDEXES, MongoArmedSchedules

pytestmark = pytest.mark.integration


async def test_q2_due_query_reads_only_the_armed_schedules_collection(
    endpoints: dict[str, str],
) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        endpoints["THREADLINE_MONGODB_URL"], tz_aware=True
    )
    database = client[f"it_due_scan_{uuid.uuid4().hex[:8]}"]
    try:
        await ensure_indexes(database, STORE_INDEXES)
        armed = MongoArmedSchedules(database)
        now = utc_now()
        policy = ReminderPolicy(enabled=True, days_between=1)
        for n in range(20):  # 5 due, 15 later
            start = now - timedelta(days=2) if n < 5 else now + timedelta(days=n)
            await armed.put(
                "f",
                f"th{n}",
                Schedule.starting("m", number=1, from_at=start, policy=policy, day_seconds=86_400),
            )
        due = await armed.due(now, limit=100)
        assert sorted(entry["thread_id"] for entry in due) == [f"th{n}" for n in range(5)]
        plan = await armed.explain_due(now, limit=100)
        text = json.dumps(plan, default=str)
        print("due query plan:", text[:600])
        stats = plan.get("executionStats") or {}
        if "totalDocsExamined" in stats:  # MongoDB: the due_at index bounds the scan
            assert "IXSCAN" in text and stats["totalDocsExamined"] == 5
        else:  # FerretDB: a scan of the armed schedules' own table, nothing else
            assert "armed_schedules" in text and "reminder_threads" not in text
    finally:
        await client.drop_database(database.name)
        await client.close()
