"""Message numbering without gaps (M3), also when the process dies in the middle of a post.

A number exists only once its message is stored (the insert takes it, the unique indexes
refuse a taken one), and the thread records the message after the insert; a crash between
the two is finished by the next post and by the outbox relay. Issue 15 found the old
allocate-then-insert order losing the numbers of posts in flight on SIGKILL.
"""

import asyncio
import os
import sys
import uuid
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from threadline.devtools.ports import free_port
from threadline.devtools.seed import demo_directory, publish
from threadline.kit.auth import Principal
from threadline.kit.mongo import ensure_indexes
from threadline.messaging.service import MessageService
from threadline.messaging.service.compose import MessageDraft
from threadline.messaging.store import MESSAGING_INDEXES
from threadline.messaging.store.messages import (
    CLIENT_SEQ_INDEX,
    number_internal_messages_for_clients,
)

from ..conftest import eventually, token_for
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


async def start_messaging(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "--factory", "threadline.messaging.main:create_app",
        "--port", str(port), env=env,
    )  # fmt: skip


async def test_m3_sigkill_during_a_burst_of_posts_leaves_no_gap_for_staff_or_clients(
    run_id: str,
) -> None:
    """A real uvicorn process killed with SIGKILL while 8 posters write into one thread
    (issue 15's finding), then started again: numbering is contiguous for staff and for
    clients, every 201 is stored, and the thread's counters catch up."""
    port, database = free_port(), f"it_numbering_kill_{run_id}"
    env = os.environ | {
        "MESSAGING_MONGODB_DATABASE": database,
        "MESSAGING_CONSUMER_GROUP": f"it-numbering-kill-{run_id}",
        "MESSAGING_CONSUMER_START": "latest",
        "MESSAGING_OUTBOX_RELAY_INTERVAL_SECONDS": "0.3",
        "MESSAGING_OUTBOX_RELAY_GRACE_SECONDS": "1",
    }
    process = await start_messaging(env, port)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["THREADLINE_MONGODB_URL"])
    firm = f"firm_{run_id}"
    headers = {"Authorization": "Bearer " + token_for(firm, role="owner", sub="st_olivia")}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def ready() -> int:
                try:
                    return (await http.get("/readyz")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(ready, until=lambda code: code == 200, within=90)
            await publish(env["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"], demo_directory(firm))
            body = {"account_id": "acc_lee_family", "subject": "Burst", "message": {"html": "x"}}

            async def created() -> httpx.Response:
                return await http.post("/v1/threads", json=body, headers=headers)

            thread = (await eventually(created, until=lambda r: r.status_code == 201)).json()
            url = f"/v1/threads/{thread['id']}/messages"
            answered = await post_until_killed(http, url, headers, process)

            process = await start_messaging(env, port)
            await eventually(ready, until=lambda code: code == 200, within=90)
            for number in range(3):
                after = await http.post(url, json={"html": f"after {number}"}, headers=headers)
                assert after.status_code == 201, after.text
                answered.append(after.json()["id"])

        await assert_contiguous(mongo[database], thread["id"], answered)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await mongo.drop_database(database)
        await mongo.close()


async def _count(items: list[str]) -> int:
    return len(items)


async def post_until_killed(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], process: Any
) -> list[str]:
    """Eight posters (every third message internal); SIGKILL once 20 were answered.
    Returns the ids of the messages that got 201."""
    answered: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(400):
        queue.put_nowait(number)

    async def poster() -> None:
        while not queue.empty():
            number = queue.get_nowait()
            message = {"html": f"<p>{number}</p>", "internal": number % 3 == 0}
            try:
                response = await http.post(url, json=message, headers=headers)
            except httpx.TransportError:
                return  # the process is gone
            if response.status_code == 201:
                answered.append(response.json()["id"])

    posters = [asyncio.create_task(poster()) for _ in range(8)]
    await eventually(lambda: _count(answered), until=lambda n: n >= 20, within=120)
    process.kill()
    await process.wait()
    await asyncio.gather(*posters)
    return answered


async def assert_contiguous(database: Any, thread_id: str, answered: list[str]) -> None:
    rows = (
        await database["messages"]
        .find({"thread_id": thread_id}, {"seq": 1, "client_seq": 1, "internal": 1})
        .to_list()
    )
    assert {row["_id"] for row in rows} >= set(answered), "every 201 is stored"
    staff = sorted(row["seq"] for row in rows)
    assert staff == list(range(1, len(rows) + 1)), "staff numbering has a gap"
    client = sorted(row["client_seq"] for row in rows if not row["internal"])
    assert client == list(range(1, len(client) + 1)), "client numbering has a gap"

    async def counters() -> tuple[int, int]:
        found = await database["threads"].find_one({"_id": thread_id})
        assert found is not None
        return int(found["seq"]), int(found["client_seq"])

    await eventually(counters, until=lambda c: c == (len(staff), len(client)), within=30)


async def test_a_stored_message_whose_thread_update_failed_is_posted_and_relayed(
    firm: Firm,
) -> None:
    """Storage hiccup between the insert and the thread's update: the message is stored, so
    the post answers 201 (a retry would post it twice); the relay records and publishes it."""
    thread = await firm.new_thread(message={"html": "opening"})
    threads = firm.app.state.messages._threads  # the step that fails

    async def unreachable(*_: Any, **__: Any) -> None:
        raise AutoReconnect("connection reset")

    threads.record_posted = unreachable
    try:
        posted = await firm.post("owner", thread["id"], html="stored anyway")
    finally:
        del threads.record_posted
    assert posted.status_code == 201, posted.text
    assert (await thread_document(firm, thread["id"]))["seq"] == 1, "not recorded yet"

    await firm.app.state.runtime.outbox.relay_once(grace_seconds=0)
    assert (await thread_document(firm, thread["id"]))["seq"] == 2
    event = await find_event(firm, "messaging.message.posted", posted.json()["id"])
    assert event.data.seq == 2
