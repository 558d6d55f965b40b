"""Documents in threads, with the messaging service running too: M4, M6, M11.

Upload into a thread → an attachment message in it (authored by the uploader, internal when
the upload is, images inline); deleting the document shows it removed in its message;
deleting the message deletes its documents (consumed idempotently).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from threadline.contracts import new_event
from threadline.contracts.events.common import Actor
from threadline.contracts.events.messaging import MessageDeleted, ReminderSettings, ThreadCreated
from threadline.devtools.seed import publish

from ..conftest import ServiceFactory, eventually, seed_directory
from ..messaging.conftest import Firm, find_event
from .conftest import LEE, PDF, PNG, Docs

pytestmark = pytest.mark.integration


@pytest.fixture
async def both(start_service: ServiceFactory, run_id: str) -> tuple[Docs, Firm]:
    """Documents and messaging on the same Kafka, one firm, the demo directory seeded."""
    firm = f"firm_{run_id}"
    messaging_app, messaging_http = await start_service("messaging")
    documents_app, documents_http = await start_service("documents")
    await seed_directory([messaging_app, documents_app], firm)
    return (
        Docs(firm=firm, http=documents_http, app=documents_app),
        Firm(firm=firm, http=messaging_http, app=messaging_app),
    )


async def known_thread(docs: Docs, thread_id: str) -> None:
    """Documents learns threads from `messaging.thread.created`."""

    async def status() -> int:
        return (await docs.call("owner", "GET", f"/v1/threads/{thread_id}/documents")).status_code

    await eventually(status, until=lambda code: code == 200)


async def messages_of(firm: Firm, who: str, thread_id: str) -> list[dict[str, Any]]:
    response = await firm.call(who, "GET", f"/v1/threads/{thread_id}/messages")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


async def attachment_in(firm: Firm, who: str, thread_id: str, document_id: str) -> Any:
    async def find() -> dict[str, Any] | None:
        for message in await messages_of(firm, who, thread_id):
            if document_id in message["document_ids"]:
                return message
        return None

    return await eventually(find, until=lambda message: message is not None)


async def test_m4_m6_upload_into_thread_posts_attachment_message(
    both: tuple[Docs, Firm],
) -> None:
    docs, firm = both
    thread = await firm.new_thread()
    await known_thread(docs, thread["id"])
    image = await docs.uploaded("manager", PNG, filename="receipt.png", thread_id=thread["id"])
    assert image["thread_id"] == thread["id"]
    message = await attachment_in(firm, "client", thread["id"], image["id"])
    assert message["author"]["user_id"] == "st_mia" and message["internal"] is False
    [attachment] = message["attachments"]
    assert attachment["inline"] is True and attachment["removed"] is False
    assert attachment["filename"] == "receipt.png"
    tab = await docs.call("client", "GET", f"/v1/threads/{thread['id']}/documents")
    assert [d["id"] for d in tab.json()["documents"]] == [image["id"]]

    by_client = await docs.uploaded("client", PDF, filename="w2.pdf", thread_id=thread["id"])
    client_message = await attachment_in(firm, "assigned member", thread["id"], by_client["id"])
    assert client_message["author"]["kind"] == "client"
    assert client_message["attachments"][0]["inline"] is False


async def test_m3_internal_upload_posts_internal_message(both: tuple[Docs, Firm]) -> None:
    docs, firm = both
    thread = await firm.new_thread()
    await known_thread(docs, thread["id"])
    note = await docs.uploaded(
        "manager", PDF, filename="review.pdf", thread_id=thread["id"], internal=True
    )
    message = await attachment_in(firm, "assigned member", thread["id"], note["id"])
    assert message["internal"] is True
    client_view = await messages_of(firm, "client", thread["id"])
    assert all(note["id"] not in m["document_ids"] for m in client_view)
    tab = await docs.call("client", "GET", f"/v1/threads/{thread['id']}/documents")
    assert tab.json()["documents"] == []


async def test_m4_upload_right_after_creating_the_thread_succeeds_100_times_in_a_row(
    start_service: ServiceFactory, run_id: str
) -> None:
    """A 201 from messaging makes the thread usable in documents at once: the kit's thread
    projection waits (bounded) for an id it has not projected yet instead of answering 404.
    The bound is raised here because the shared test Kafka carries every concurrent run's
    events, so projection lag in tests can exceed a quiet deployment's."""
    messaging_app, messaging_http = await start_service("messaging")
    documents_app, documents_http = await start_service(
        "documents", thread_projection_wait_seconds=30
    )
    await seed_directory([messaging_app, documents_app], f"firm_{run_id}")
    docs = Docs(firm=f"firm_{run_id}", http=documents_http, app=documents_app)
    firm = Firm(firm=f"firm_{run_id}", http=messaging_http, app=messaging_app)
    failures = []
    for attempt in range(100):
        thread = await firm.new_thread(subject=f"Attempt {attempt}")
        response = await docs.upload(
            "manager", PDF, filename=f"{attempt}.pdf", thread_id=thread["id"]
        )
        if response.status_code != 201:
            failures.append((attempt, response.status_code, response.text[:200]))
    assert failures == []


async def test_m4_upload_into_unknown_or_other_accounts_thread_is_404(
    both: tuple[Docs, Firm],
) -> None:
    docs, firm = both
    patel = await firm.new_thread("owner", account_id="acc_patel_llc", subject="Patel")
    await known_thread(docs, patel["id"])
    wrong_account = await docs.upload("manager", PDF, thread_id=patel["id"])
    assert wrong_account.status_code == 404
    unknown = await docs.upload("manager", PDF, thread_id="no-such-thread")
    assert unknown.status_code == 404
    assert await docs.staged_objects() == []


async def test_m4_deleting_a_document_marks_it_removed_in_its_message(
    both: tuple[Docs, Firm],
) -> None:
    docs, firm = both
    thread = await firm.new_thread()
    await known_thread(docs, thread["id"])
    document = await docs.uploaded("manager", PDF, filename="old.pdf", thread_id=thread["id"])
    await attachment_in(firm, "client", thread["id"], document["id"])
    assert (
        await docs.call("manager", "DELETE", f"/v1/documents/{document['id']}")
    ).status_code == 204

    async def removed() -> bool:
        message = await attachment_in(firm, "client", thread["id"], document["id"])
        return bool(message["attachments"][0]["removed"])

    await eventually(removed, until=bool)
    tab = await docs.call("client", "GET", f"/v1/threads/{thread['id']}/documents")
    assert tab.json()["documents"] == []
    message = await attachment_in(firm, "client", thread["id"], document["id"])
    event = await find_event(firm, "messaging.message.attachment_removed", message["id"])
    assert event.data.document_id == document["id"], "the stream and consumers are told"


async def test_m11_deleting_the_message_deletes_its_documents(both: tuple[Docs, Firm]) -> None:
    docs, firm = both
    thread = await firm.new_thread()
    await known_thread(docs, thread["id"])
    document = await docs.uploaded("manager", PDF, filename="draft.pdf", thread_id=thread["id"])
    keep = await docs.uploaded("manager", PDF, filename="keep.pdf", thread_id=thread["id"])
    message = await attachment_in(firm, "assigned member", thread["id"], document["id"])
    deleted = await firm.call(
        "assigned member", "DELETE", f"/v1/threads/{thread['id']}/messages/{message['id']}"
    )
    assert deleted.status_code == 204, deleted.text

    async def tab() -> list[str]:
        response = await docs.call("manager", "GET", f"/v1/threads/{thread['id']}/documents")
        return [d["id"] for d in response.json()["documents"]]

    assert await eventually(tab, until=lambda ids: document["id"] not in ids) == [keep["id"]]
    assert (await docs.call("manager", "GET", document["download"])).status_code == 404


async def test_m11_message_deleted_is_consumed_idempotently_and_only_for_its_thread(
    docs: Docs,
) -> None:
    """Documents alone: the contract events are published as messaging would."""
    bootstrap = os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"]
    threads = {name: f"th_{name}_{docs.firm}" for name in ("a", "b")}
    await publish(
        bootstrap, [_thread_created(docs.firm, thread_id) for thread_id in threads.values()]
    )
    for thread_id in threads.values():
        await known_thread(docs, thread_id)
    in_a = await docs.uploaded("manager", PDF, filename="a.pdf", thread_id=threads["a"])
    in_b = await docs.uploaded("manager", PDF, filename="b.pdf", thread_id=threads["b"])
    deletion = new_event(
        MessageDeleted(
            thread_id=threads["a"],
            account_id=LEE,
            message_id="msg_1",
            internal=False,
            deleted_by=Actor(user_id="st_mia", kind="staff"),
            document_ids=[in_a["id"], in_b["id"]],  # b is in another thread: not touched
        ),
        firm=docs.firm,
        producer="messaging",
    )
    await publish(bootstrap, [deletion, deletion])

    async def remaining() -> list[str]:
        return [d["filename"] for d in await docs.listing("manager")]

    assert await eventually(remaining, until=lambda names: "a.pdf" not in names) == ["b.pdf"]
    tombstones = docs.app.state.runtime.database["documents"]
    assert await tombstones.count_documents({"_id": in_a["id"], "deleted": True}) == 1
    stats = docs.app.state.runtime.events.stats
    await eventually(lambda: _value(stats["duplicates"]), until=lambda n: n >= 1)


async def _value(number: int) -> int:
    return number


def _thread_created(firm: str, thread_id: str) -> Any:
    return new_event(
        ThreadCreated(
            thread_id=thread_id,
            account_id=LEE,
            subject="Docs",
            created_by=Actor(user_id="st_mia", kind="staff"),
            to_contact_ids=["ct_ann_lee"],
            first_message_id=f"{thread_id}_m1",
            reminders=ReminderSettings(enabled=False, days_between=3, max_reminders=1),
        ),
        firm=firm,
        producer="messaging",
    )


async def test_t7_m4_a_mentioned_member_reads_the_threads_documents(
    both: tuple[Docs, Firm],
) -> None:
    """Staff who see a thread only because they were mentioned see its documents tab and
    can read its attachments, but manage nothing of an account they are not assigned to."""
    docs, firm = both
    thread = await firm.new_thread()
    await known_thread(docs, thread["id"])
    document = await docs.uploaded(
        "manager", PDF, filename="engagement.pdf", thread_id=thread["id"]
    )
    guest = "manager of other account"  # st_noah, assigned to another account only
    tab = f"/v1/threads/{thread['id']}/documents"
    assert (await docs.call(guest, "GET", tab)).status_code == 404
    assert (await docs.call(guest, "GET", f"/v1/documents/{document['id']}")).status_code == 404

    mention = await firm.post(
        "owner", thread["id"], html="<p>Noah, see this</p>", mentions=["st_noah"]
    )
    assert mention.status_code == 201, mention.text
    listed = await eventually(
        lambda: docs.call(guest, "GET", tab), until=lambda response: response.status_code == 200
    )
    assert [d["id"] for d in listed.json()["documents"]] == [document["id"]]
    content = await docs.call(guest, "GET", f"/v1/documents/{document['id']}/content")
    assert content.status_code == 200 and content.content == PDF
    delete = await docs.call(guest, "DELETE", f"/v1/documents/{document['id']}")
    assert delete.status_code == 404
    assert (await docs.call("owner", "GET", f"/v1/documents/{document['id']}")).status_code == 200
