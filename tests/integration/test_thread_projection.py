"""The kit's thread projection, extended the way pipeline extends it, on a real
MongoDB-protocol server: events from two topics arriving in any order converge, a thread is
known only once its creation arrived, and an id just created is waited for."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from threadline.contracts import new_event
from threadline.contracts.events.common import Actor
from threadline.contracts.events.messaging import (
    ReminderSettings,
    ThreadArchived,
    ThreadCreated,
)
from threadline.pipeline.store import PipelineThreads

from .test_leases import database

pytestmark = pytest.mark.integration

__all__ = ["database"]  # the per-test database fixture

FIRM = "firm_projection"
ACCOUNT = "acc_lee"
STAFF = Actor(user_id="st_mia", kind="staff")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _created(thread_id: str, *, at: datetime) -> Any:
    created = ThreadCreated(
        thread_id=thread_id,
        account_id=ACCOUNT,
        subject=f"Subject {thread_id}",
        created_by=STAFF,
        to_contact_ids=[],
        first_message_id=f"msg_{thread_id}",
        reminders=ReminderSettings(enabled=False),
    )
    return new_event(created, firm=FIRM, producer="messaging", occurred_at=at)


def _archived(thread_id: str, *, at: datetime) -> Any:
    archived = ThreadArchived(thread_id=thread_id, account_id=ACCOUNT, archived_by=STAFF)
    return new_event(archived, firm=FIRM, producer="messaging", occurred_at=at)


async def test_events_before_the_creation_converge_once_it_arrives(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    threads = PipelineThreads(database, wait_seconds=0)
    completed = T0 + timedelta(minutes=5)
    await threads.progress(
        FIRM, "th_1", done=2, total=2, revision=3, at=completed, completed_at=completed
    )
    await threads.progress(FIRM, "th_1", done=1, total=2, revision=2, at=T0)  # late, older
    await threads.apply_status(_archived("th_1", at=T0 + timedelta(minutes=6)))
    await threads.activity(FIRM, "th_1", at=T0 + timedelta(minutes=7))
    assert await threads.get(FIRM, "th_1") is None, "unknown until its creation arrives"
    assert await threads.of_account(FIRM, ACCOUNT, status="all", limit=10) == []

    await threads.apply_created(_created("th_1", at=T0))
    await threads.apply_created(_created("th_1", at=T0))  # redelivered

    thread = await threads.get(FIRM, "th_1")
    assert thread is not None
    assert (thread.subject, thread.status, thread.tasks_done, thread.tasks_total) == (
        "Subject th_1",
        "archived",
        2,
        2,
    )
    assert thread.completed_at == completed
    assert thread.last_activity_at == T0 + timedelta(minutes=7), "the newest activity wins"
    facts = await threads.facts(FIRM, "th_1")
    assert facts is not None and facts.archived and facts.account_id == ACCOUNT
    assert [t.thread_id for t in await threads.many(FIRM, ["th_none", "th_1"])] == ["th_1"]
    assert await threads.of_account(FIRM, ACCOUNT, status="active", limit=10) == []


async def test_an_id_just_created_is_waited_for_and_an_unknown_one_is_not_found(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    threads = PipelineThreads(database, wait_seconds=10)
    waiting = asyncio.create_task(threads.arriving(FIRM, "th_new"))
    await asyncio.sleep(0.2)
    assert not waiting.done(), "an id not projected yet is waited for"
    await threads.apply_created(_created("th_new", at=T0))
    arrived = await asyncio.wait_for(waiting, timeout=5)
    assert arrived is not None and arrived.account_id == ACCOUNT

    impatient = PipelineThreads(database, wait_seconds=0.3)
    assert await impatient.arriving(FIRM, "th_never") is None
