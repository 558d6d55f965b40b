"""Property: walking a thread page by page, either way, yields every message the caller may
see exactly once, in order — whatever the mix of internal and deleted messages and the page
size (issue "Messaging service": cursor pagination both ways; M3).

Runs the real message service and store against the real MongoDB-protocol server; the
messages are inserted directly so each example stays fast.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from threadline.kit.auth import Principal
from threadline.messaging.service import MessageService

from .conftest import unpublished_service

FIRM = "firm_paging"
ACCOUNT = "acc_paging"
STAFF = Principal(sub="st_olivia", firm=FIRM, kind="staff", role="owner")
CLIENT = Principal(sub="ct_ann", firm=FIRM, kind="client", accounts={ACCOUNT})
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _message(
    thread_id: str, seq: int, client_seq: int, *, internal: bool, deleted: bool
) -> dict[str, Any]:
    return {
        "_id": f"msg_{seq:04d}",
        "thread_id": thread_id,
        "firm": FIRM,
        "account_id": ACCOUNT,
        "seq": seq,
        "client_seq": client_seq,
        "author": {"user_id": "st_mia", "kind": "staff", "name": "Mia"},
        "internal": internal,
        "deleted": deleted,
        "html": f"<p>{seq}</p>",
        "text": str(seq),
        "mentions": [],
        "embeds": [],
        "document_ids": [],
        "posted_at": NOW,
    }


async def _walk(
    service: MessageService, principal: Principal, thread_id: str, limit: int
) -> tuple[list[int], list[int]]:
    """Seqs seen walking back from the latest page, and forward from the start."""
    pages_allowed = 2 + 50 // limit  # a cursor that stops advancing fails instead of looping
    max_pages = pages_allowed
    backward: list[int] = []
    page = await service.page(principal, thread_id, before=None, after=None, limit=limit)
    while True:
        seqs = [m["seq"] for m in page["messages"]]
        assert len(seqs) <= limit
        backward = seqs + backward
        if page["older_cursor"] is None:
            break
        max_pages -= 1
        assert max_pages > 0, f"walking back does not end: {backward[:20]}…"
        page = await service.page(
            principal, thread_id, before=page["older_cursor"], after=None, limit=limit
        )
    forward: list[int] = []
    cursor = 0
    max_pages = pages_allowed
    while True:
        page = await service.page(principal, thread_id, before=None, after=cursor, limit=limit)
        seqs = [m["seq"] for m in page["messages"]]
        assert len(seqs) <= limit
        forward += seqs
        if page["newer_cursor"] is None:
            break
        max_pages -= 1
        assert max_pages > 0, f"walking forward does not end: {forward[:20]}…"
        cursor = page["newer_cursor"]
    return backward, forward


async def _check(flags: list[tuple[bool, bool]], limit: int, client: bool) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ["THREADLINE_MONGODB_URL"], tz_aware=True
    )
    database = mongo[f"it_paging_{uuid.uuid4().hex[:10]}"]
    try:
        service = unpublished_service(database)
        thread_id = "th_paging"
        await database["threads"].insert_one(
            {"_id": thread_id, "firm": FIRM, "account_id": ACCOUNT, "subject": "Paging"}
            | {"status": "active", "mentioned_staff": [], "seq": len(flags), "client_seq": 0}
        )
        client_numbers = itertools.count(1)
        documents = [
            _message(
                thread_id,
                seq,
                -seq if internal else next(client_numbers),
                internal=internal,
                deleted=deleted,
            )
            for seq, (internal, deleted) in enumerate(flags, start=1)
        ]
        if documents:
            await database["messages"].insert_many(documents)
        # Clients page by their own numbering, which skips internal messages (M3).
        numbering = "client_seq" if client else "seq"
        expected = [
            d[numbering] for d in documents if not d["deleted"] and not (client and d["internal"])
        ]
        backward, forward = await _walk(service, CLIENT if client else STAFF, thread_id, limit)
        assert backward == expected, "walking back skipped or repeated a message"
        assert forward == expected, "walking forward skipped or repeated a message"
    finally:
        await mongo.drop_database(database.name)
        await mongo.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    flags=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40),
    limit=st.integers(min_value=1, max_value=7),
    client=st.booleans(),
)
def test_pagination_never_skips_or_repeats_a_message(
    flags: list[tuple[bool, bool]], limit: int, client: bool
) -> None:
    asyncio.run(_check(flags, limit, client))
