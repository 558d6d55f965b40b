"""The staff inbox on real servers (N2, K5, K6, M2): who gets which item, nobody for their
own action, read marks, and staff e-mails for client messages and mentions."""

from __future__ import annotations

from typing import Any

import pytest

from threadline.contracts import new_event
from threadline.contracts.events.documents import DocumentUploaded

from ..conftest import eventually
from .conftest import ANN_ACTOR, LEE, MIA, Firm, SmtpSink

pytestmark = pytest.mark.integration

MIA_TOKEN, NOAH_TOKEN = "assigned member", "member with view-all"


async def items_of(firm: Firm, who: str, count: int, thread_id: str) -> list[dict[str, Any]]:
    """Wait for ``count`` inbox items of ``who`` about ``thread_id``; return them oldest first."""

    async def found() -> list[dict[str, Any]]:
        page = await firm.inbox(who, limit=100)
        return [i for i in reversed(page["items"]) if i["thread_id"] == thread_id]

    return await eventually(found, until=lambda items: len(items) >= count, within=120)


async def test_n2_k5_k6_inbox_items_per_action_and_none_for_ones_own(
    firm: Firm, smtp: SmtpSink
) -> None:
    thread = await firm.new_thread(MIA_TOKEN)
    tid = thread["id"]
    await firm.post("client", tid, html="<p>Here you go</p>")  # N2: client reply
    await firm.post(NOAH_TOKEN, tid, html="<p>Thanks Ann</p>")  # N2: staff reply
    await firm.post(MIA_TOKEN, tid, html="<p>@Adam please check</p>", mentions=["st_adam"])
    # Tasks and documents events travel on other topics than the replies: publish them once
    # reminders has seen the replies, so Noah counts as a staff member who replied (N2).
    await items_of(firm, NOAH_TOKEN, 1, tid)
    await firm.publish(
        firm.tasks_event(tid, done=[True, False], change="completed", by=ANN_ACTOR),  # K5
        firm.tasks_event(tid, done=[True, True], change="completed", by=MIA),  # own: none
        firm.all_completed_event(tid, 2, ANN_ACTOR),  # K6
        new_event(
            DocumentUploaded(
                document_id="doc_1",
                account_id=LEE,
                folder="",
                filename="w2 <2025>.pdf",
                content_type="application/pdf",
                size=10,
                sha256="0" * 64,
                permission="client_view",
                internal=False,
                thread_id=tid,
                uploaded_by=ANN_ACTOR,
            ),
            firm=firm.firm,
            producer="documents",
        ),
    )
    mia = await items_of(firm, MIA_TOKEN, 5, tid)
    assert sorted(i["type"] for i in mia) == sorted(
        [
            "client_reply",
            "staff_reply",
            "task_change",
            "tasks_completed",
            "documents_uploaded",
        ]
    )
    by_type = {i["type"]: i for i in mia}
    assert by_type["client_reply"]["actor"]["kind"] == "client"
    assert by_type["staff_reply"]["actor"] == {  # the directory's name, not the token's
        "user_id": "st_noah",
        "kind": "staff",
        "name": "Noah Berg",
    }
    task_change = by_type["task_change"]
    assert task_change["actor"] == {"user_id": "ct_ann_lee", "kind": "client", "name": "Ann Lee"}
    assert task_change["detail"]["progress"] == {"done": 1, "total": 2}
    assert by_type["tasks_completed"]["detail"]["total"] == 2
    assert by_type["documents_uploaded"]["detail"]["filename"] == "w2 <2025>.pdf"
    assert all(i["account_name"] == "Lee Family" and not i["read"] for i in mia)

    # Noah replied after the client's reply: he hears of Mia's later reply and the upload
    noah = await items_of(firm, NOAH_TOKEN, 2, tid)
    assert sorted(i["type"] for i in noah) == ["documents_uploaded", "staff_reply"]
    adam = await items_of(firm, "admin", 1, tid)
    assert [i["type"] for i in adam] == ["mention"]
    assert adam[0]["detail"]["excerpt"].startswith("@Adam")

    # read marks: one, then all
    before = (await firm.inbox(MIA_TOKEN))["unread_count"]
    one = await firm.on_reminders(MIA_TOKEN, "POST", f"/v1/inbox/{mia[0]['id']}/read")
    assert one.status_code == 200 and one.json()["unread_count"] == before - 1
    assert (await firm.inbox(MIA_TOKEN, unread_only=True))["unread_count"] == before - 1
    everything = await firm.on_reminders(MIA_TOKEN, "POST", "/v1/inbox/read-all")
    assert everything.status_code == 200 and everything.json()["marked"] == before - 1
    assert (await firm.inbox(MIA_TOKEN))["unread_count"] == 0
    assert (await firm.inbox(MIA_TOKEN, unread_only=True))["items"] == []

    # staff e-mails: Mia for the client's reply, Adam for the mention; nobody for their own
    async def staff_mails() -> list[str]:
        return sorted(
            str(m["X-RcptTo"])
            for m in smtp.mails(thread=tid)
            if str(m["X-RcptTo"]).endswith("@firm.example")
        )

    mails = await eventually(staff_mails, until=lambda found: len(found) >= 2)
    assert mails == ["adam@firm.example", "mia@firm.example"]


async def test_n2_inbox_pages_newest_first_with_a_cursor(firm: Firm) -> None:
    thread = await firm.new_thread(MIA_TOKEN)
    for n in range(3):
        await firm.post("client", thread["id"], html=f"<p>reply {n}</p>")
    await items_of(firm, MIA_TOKEN, 3, thread["id"])
    first = await firm.inbox(MIA_TOKEN, limit=2)
    assert len(first["items"]) == 2 and first["next_before"] == first["items"][-1]["id"]
    rest = await firm.inbox(MIA_TOKEN, limit=2, before=first["next_before"])
    assert [i["detail"]["excerpt"] for i in first["items"] + rest["items"]][:3] == [
        "reply 2",
        "reply 1",
        "reply 0",
    ]


async def test_inbox_rejects_bad_input_with_problem_details(firm: Firm) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"before": "x" * 500}):
        response = await firm.on_reminders(MIA_TOKEN, "GET", "/v1/inbox", params=params)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
    missing = await firm.on_reminders(MIA_TOKEN, "POST", "/v1/inbox/nope/read")
    assert missing.status_code == 404
