"""What a post reads before it writes, watched on the wire (MongoDB command monitoring).

A staff post reads the thread and its author's directory entry side by side — a staff
member's name needs no thread — so it waits for one read fewer in a row (issue 12: posts
stay fast while a bulk job loads the server). The message still shows the author as the
directory names them (R3); a client's name comes from the thread's account, so a client
post reads the thread first.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from threadline.kit.auth import Principal
from threadline.messaging.service import MessageDraft, MessageService

from .conftest import unpublished_service

FIRM = "firm_reads"
ACCOUNT = "acc_reads"
THREAD = "th_reads"
STAFF = Principal(sub="st_olivia", firm=FIRM, kind="staff", role="owner", name="token name")
CLIENT = Principal(sub="ct_ann", firm=FIRM, kind="client", accounts=frozenset({ACCOUNT}))
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class _Reads(monitoring.CommandListener):
    """The collections of the finds on the wire, as ``started``/``succeeded`` steps."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] = []
        self._collections: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self._collections[event.request_id] = str(event.command["find"])
            self.steps.append(("started", self._collections[event.request_id]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.request_id in self._collections:
            self.steps.append(("succeeded", self._collections.pop(event.request_id)))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._collections.pop(event.request_id, None)


@pytest.fixture
async def watched() -> AsyncIterator[tuple[MessageService, _Reads]]:
    reads = _Reads()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ["THREADLINE_MONGODB_URL"], tz_aware=True, event_listeners=[reads]
    )
    database = mongo[f"it_reads_{uuid.uuid4().hex[:10]}"]
    try:
        await database["threads"].insert_one(
            {"_id": THREAD, "firm": FIRM, "account_id": ACCOUNT, "subject": "Reads"}
            | {"status": "active", "mentioned_staff": [], "seq": 0, "client_seq": 0}
            | {"created_at": AT, "last_activity_at": AT, "client_activity_at": AT}
        )
        await database["directory_staff"].insert_one(
            {"_id": f"{FIRM}:st_olivia", "firm": FIRM, "user_id": "st_olivia"}
            | {"name": "Olivia Stone", "removed": False}
        )
        contact = {"contact_id": "ct_ann", "name": "Ann Lee", "email": "ann@example.com"}
        await database["directory_accounts"].insert_one(
            {"_id": f"{FIRM}:{ACCOUNT}", "firm": FIRM, "account_id": ACCOUNT}
            | {"name": "Lee family", "contacts": [contact], "removed": False}
        )
        service = unpublished_service(database)
        # Connections for reads in flight together (a new one's handshake outlasts a find).
        await asyncio.gather(*(database.command("ping") for _ in range(4)))
        reads.steps.clear()
        yield service, reads
    finally:
        await mongo.drop_database(database.name)
        await mongo.close()


async def test_a_staff_post_reads_the_thread_and_its_author_side_by_side(
    watched: tuple[MessageService, _Reads],
) -> None:
    service, reads = watched
    posted = await service.post(STAFF, THREAD, MessageDraft(html="<p>Hello</p>"))

    assert posted["author"]["name"] == "Olivia Stone", "R3: the directory's name, not the token's"
    finds = [step for step in reads.steps if step[1] in {"threads", "directory_staff"}]
    assert sorted(finds[:2]) == [("started", "directory_staff"), ("started", "threads")], (
        f"the author's read did not start before the thread's ended: {reads.steps}"
    )


async def test_a_client_post_reads_its_account_after_the_thread(
    watched: tuple[MessageService, _Reads],
) -> None:
    service, reads = watched
    posted = await service.post(CLIENT, THREAD, MessageDraft(html="<p>Hi</p>"))

    assert (posted["author"]["name"], posted["author"]["account_name"]) == ("Ann Lee", "Lee family")
    finds = [step for step in reads.steps if step[1] in {"threads", "directory_accounts"}]
    assert finds[:3] == [
        ("started", "threads"),
        ("succeeded", "threads"),
        ("started", "directory_accounts"),
    ], reads.steps
