"""Message numbering without gaps (M3), also when the process dies in the middle of a post.

A number exists only once its message is stored (the insert takes it, the unique indexes
refuse a taken one), and the thread records the message after the insert; a crash between
the two is finished by the next post and by the outbox relay. Issue 15 found the old
allocate-then-insert order losing the numbers of posts in flight on SIGKILL.
"""

import asyncio
import os
import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from threadline.kit.auth import Principal
from threadline.kit.mongo import ensure_indexes
from threadline.messaging.service import MessageService
from threadline.messaging.service.compose import MessageDraft
from threadline.messaging.store import MESSAGING_INDEXES
from threadline.messaging.store.messages import (
    CLIENT_SEQ_INDEX,
    number_internal_messages_for_clients,
)

from .conftest import Firm, find_event

pytestmark = pytest.mark.integration


class ProcessDied(BaseException):
    """Stands for SIGKILL: nothing after the point where it is raised runs."""


async def seqs_seen(firm: Firm, who: str, thread_id: str) -> list[int]:
    response = await firm.call(
        who, "GET", f"/v1/threads/{thread_id}/messages", params={"limit": 100}
    )
    assert response.status_code == 200, response.text
    return [message["seq"] for message in response.json()["messages"]]


async def thread_document(firm: Firm, thread_id: str) -> dict[str, Any]:
    found = await firm.app.state.runtime.database["threads"].find_one({"_id": thread_id})
    assert found is not None
    return dict(found)


def owner(firm: Firm) -> Principal:
    return Principal(sub="st_olivia", firm=firm.firm, kind="staff", role="owner", name="Olivia")


async def die_after_the_insert(firm: Firm, thread_id: str, draft: MessageDraft) -> None:
    """Post as the service does, and "die" right after the message's insert: the thread
    never records it and its event is never handed to the publisher."""
    service: MessageService = firm.app.state.messages
    threads = service._threads  # the step the crash cuts off

    async def killed(*_: Any, **__: Any) -> None:
        raise ProcessDied

    threads.record_posted = killed  # type: ignore[method-assign]
    try:
        with pytest.raises(ProcessDied):
            await service.post(owner(firm), thread_id, draft)
    finally:
        del threads.record_posted


async def test_m3_concurrent_posters_get_distinct_contiguous_numbers(firm: Firm) -> None:
    thread = await firm.new_thread(message={"html": "opening"})
    posts = [
        ("owner", {"html": f"note {i}", "internal": True})
        if i % 3 == 0
        else ("client" if i % 3 == 1 else "assigned member", {"html": f"reply {i}"})
        for i in range(24)
    ]
    answers = await asyncio.gather(*(firm.post(who, thread["id"], **body) for who, body in posts))
    assert all(answer.status_code == 201 for answer in answers), [a.text for a in answers]
    assert await seqs_seen(firm, "owner", thread["id"]) == list(range(1, 26))
    client_posts = 1 + sum(1 for _, body in posts if not body.get("internal"))
    assert await seqs_seen(firm, "client", thread["id"]) == list(range(1, client_posts + 1))
    document = await thread_document(firm, thread["id"])
    assert (document["seq"], document["client_seq"]) == (25, client_posts)


async def test_m3_a_crash_after_the_insert_leaves_no_gap_and_the_next_post_repairs(
    firm: Firm,
) -> None:
    thread = await firm.new_thread(message={"html": "opening"})
    assert (await firm.post("owner", thread["id"], html="note", internal=True)).is_success
    await die_after_the_insert(firm, thread["id"], MessageDraft(html="cut short"))
    before = await thread_document(firm, thread["id"])
    assert (before["seq"], before["client_seq"]) == (2, 1), "the thread never recorded it"

    after = await firm.post("client", thread["id"], html="next")
    assert after.status_code == 201, after.text
    assert after.json()["seq"] == 3, "the client's numbering: opening, cut short, next"
    assert await seqs_seen(firm, "owner", thread["id"]) == [1, 2, 3, 4]
    assert await seqs_seen(firm, "client", thread["id"]) == [1, 2, 3]
    repaired = await thread_document(firm, thread["id"])
    assert (repaired["seq"], repaired["client_seq"]) == (4, 3)
    assert repaired["last_client_message"]["text"] == "next"
    row = (await firm.call("client", "GET", f"/v1/threads/{thread['id']}")).json()
    assert row["unread_count"] == 2, "opening and cut short (the reader's own post is read)"


async def test_m3_the_outbox_relay_records_a_message_a_crash_left_unrecorded(
    firm: Firm,
) -> None:
    thread = await firm.new_thread(message={"html": "opening"})
    await die_after_the_insert(firm, thread["id"], MessageDraft(html="cut short"))
    database = firm.app.state.runtime.database
    stored = await database["messages"].find_one({"thread_id": thread["id"], "seq": 2})
    assert stored is not None and len(stored["_outbox"]) == 1, "its event is still pending"

    await firm.app.state.runtime.outbox.relay_once(grace_seconds=0)

    recorded = await thread_document(firm, thread["id"])
    assert (recorded["seq"], recorded["client_seq"]) == (2, 2)
    assert recorded["last_message"]["message_id"] == stored["_id"]
    event = await find_event(firm, "messaging.message.posted", stored["_id"])
    assert (event.data.seq, event.data.client_seq) == (2, 2)
    read = await firm.call("client", "POST", f"/v1/threads/{thread['id']}/read", json={})
    assert read.json()["last_read_seq"] == 2, "reads reach the recorded message"


async def test_m3_internal_messages_keep_clients_numbering_unique_and_invisible(
    firm: Firm,
) -> None:
    thread = await firm.new_thread(message={"html": "opening"})
    for internal in (True, True, False):
        assert (await firm.post("owner", thread["id"], html="x", internal=internal)).is_success
    rows = (
        await firm.app.state.runtime.database["messages"]
        .find({"thread_id": thread["id"]}, {"seq": 1, "client_seq": 1})
        .sort("seq", 1)
        .to_list()
    )
    assert [(row["seq"], row["client_seq"]) for row in rows] == [(1, 1), (2, -2), (3, -3), (4, 2)]
    event = await find_event(firm, "messaging.message.posted", rows[1]["_id"])
    assert event.data.client_seq is None, "the contract keeps no client number for a note"


async def test_m3_databases_from_before_get_internal_client_numbers_and_the_unique_index(
    run_id: str,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ["THREADLINE_MONGODB_URL"]
    )
    database = client[f"it_numbering_{run_id}"]
    try:
        messages = database["messages"]
        await messages.create_index([("thread_id", 1), ("client_seq", 1)])  # the old index
        thread_id = f"th_{uuid.uuid4().hex}"
        await messages.insert_many(
            [
                {"_id": "m1", "thread_id": thread_id, "seq": 1, "client_seq": 1},
                {"_id": "m2", "thread_id": thread_id, "seq": 2, "client_seq": None},
                {"_id": "m3", "thread_id": thread_id, "seq": 3, "client_seq": None},
                {"_id": "m4", "thread_id": thread_id, "seq": 4, "client_seq": 2},
            ]
        )
        await number_internal_messages_for_clients(database)
        await ensure_indexes(database, MESSAGING_INDEXES)
        rows = await messages.find({}, {"client_seq": 1}).sort("_id", 1).to_list()
        assert [row["client_seq"] for row in rows] == [1, -2, -3, 2]
        indexes = await messages.index_information()
        assert indexes[CLIENT_SEQ_INDEX].get("unique") is True
        await number_internal_messages_for_clients(database)  # a restart changes nothing
    finally:
        await client.drop_database(database.name)
        await client.close()
