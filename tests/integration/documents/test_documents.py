"""Documents on real MinIO, Kafka and the MongoDB-protocol server: M4, M6 (upload, folders,
permissions, content sniffing, download, presigned links, rename, move, delete)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pymongo.errors import AutoReconnect

from threadline.contracts import decode, new_event
from threadline.contracts.events.directory import AccountRemoved
from threadline.contracts.topics import Topic
from threadline.devtools.seed import publish

from ..conftest import ServiceFactory, eventually, run_topic
from .conftest import LEE, PATEL, PDF, PNG, Docs, documents_service

pytestmark = pytest.mark.integration


async def test_m4_upload_stores_bytes_sniffed_type_and_sha256(docs: Docs) -> None:
    content = PDF + os.urandom(3 * 1024 * 1024)  # several chunks of the request stream
    document = await docs.uploaded(
        "manager", content, filename="w2 2025.pdf", declared_type="image/png", folder="Tax/2025"
    )
    assert document["content_type"] == "application/pdf", "sniffed, not the declared image/png"
    assert document["sha256"] == hashlib.sha256(content).hexdigest()
    assert document["size"] == len(content)
    assert document["folder"] == "Tax/2025" and document["filename"] == "w2 2025.pdf"
    assert document["permission"] == "client_view" and document["inline"] is False
    downloaded = await docs.call("client", "GET", document["download"])
    assert downloaded.status_code == 200
    assert downloaded.content == content
    assert downloaded.headers["content-type"] == "application/pdf"
    assert "w2%202025.pdf" in downloaded.headers["content-disposition"]


async def test_m6_images_are_marked_inline_and_text_is_recognised(docs: Docs) -> None:
    image = await docs.uploaded("manager", PNG, filename="receipt.png")
    assert image["content_type"] == "image/png" and image["inline"] is True
    text = await docs.uploaded("manager", "naïve notes\n".encode(), filename="notes.txt")
    assert text["content_type"].startswith("text/plain")
    disguised = await docs.uploaded("manager", PDF, filename="photo.png")
    assert disguised["content_type"] == "application/pdf", "a name cannot change the bytes' type"


@pytest.mark.parametrize(
    ("who", "params", "status"),
    [
        ("owner", {}, 201),
        ("admin", {}, 201),
        ("manager", {"internal": True}, 201),
        ("client", {}, 201),
        ("member without permission", {}, 403),
        ("manager of other account", {}, 404),
        ("other client", {}, 404),
        ("client", {"internal": True}, 403),
        ("client", {"permission": "client_view"}, 403),
    ],
)
async def test_m4_who_may_upload(docs: Docs, who: str, params: dict[str, Any], status: int) -> None:
    response = await docs.upload(who, PDF, **params)
    assert response.status_code == status, response.text
    if status != 201:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]
        assert await docs.listing("owner") == []
        assert await docs.staged_objects() == []


async def test_m4_client_uploads_are_editable_by_the_client(docs: Docs) -> None:
    document = await docs.uploaded("client", PDF, filename="passport.pdf")
    assert document["permission"] == "client_view_edit"
    assert document["uploaded_by"] == {"user_id": "ct_ann_lee", "kind": "client"}
    renamed = await docs.call(
        "client", "PATCH", f"/v1/documents/{document['id']}", json={"filename": "id.pdf"}
    )
    assert renamed.status_code == 200 and renamed.json()["filename"] == "id.pdf"


async def test_m3_clients_never_see_internal_documents(docs: Docs) -> None:
    internal = await docs.uploaded("manager", PDF, filename="notes.pdf", internal=True)
    shared = await docs.uploaded("manager", PDF, filename="shared.pdf")
    assert [d["filename"] for d in await docs.listing("client")] == ["shared.pdf"]
    assert {d["filename"] for d in await docs.listing("manager")} == {"notes.pdf", "shared.pdf"}
    for method, suffix in [("GET", ""), ("GET", "/content"), ("POST", "/download-url")]:
        response = await docs.call("client", method, f"/v1/documents/{internal['id']}{suffix}")
        assert response.status_code == 404, (method, suffix)
        assert "notes.pdf" not in response.text
    assert (await docs.call("client", "GET", shared["download"])).status_code == 200
    assert "internal" not in (await docs.listing("client"))[0]


async def test_m4_another_accounts_document_does_not_exist(docs: Docs) -> None:
    document = await docs.uploaded("manager", PDF, filename="lee.pdf")
    for who in ["other client", "manager of other account", "other firm"]:
        for method, suffix in [("GET", ""), ("GET", "/content"), ("DELETE", "")]:
            response = await docs.call(who, method, f"/v1/documents/{document['id']}{suffix}")
            assert response.status_code == 404, (who, method, suffix)
    listing = await docs.call("other client", "GET", f"/v1/accounts/{LEE}/documents")
    assert listing.status_code == 404
    own = await docs.call("other client", "GET", f"/v1/accounts/{PATEL}/documents")
    assert own.status_code == 200 and own.json()["documents"] == []


async def test_m4_folders_list_move_and_rename(docs: Docs) -> None:
    first = await docs.uploaded("manager", PDF, filename="a.pdf", folder="/Tax/2025/")
    await docs.uploaded("manager", PDF, filename="b.pdf", folder="Tax")
    await docs.uploaded("manager", PDF, filename="c.pdf")
    assert [d["filename"] for d in await docs.listing("client", folder="Tax")] == ["b.pdf"]
    recursive = await docs.listing("client", folder="Tax", recursive=True)
    assert [d["filename"] for d in recursive] == ["b.pdf", "a.pdf"]
    assert [d["filename"] for d in await docs.listing("client")] == ["c.pdf"]
    folders = await docs.call("client", "GET", f"/v1/accounts/{LEE}/folders")
    assert folders.json()["folders"] == ["", "Tax", "Tax/2025"]
    moved = await docs.call(
        "manager",
        "PATCH",
        f"/v1/documents/{first['id']}",
        json={"folder": "Archive", "filename": "w2.pdf"},
    )
    assert moved.status_code == 200, moved.text
    assert [d["filename"] for d in await docs.listing("client", folder="Archive")] == ["w2.pdf"]
    bad_changes = [{"folder": "a/../b"}, {"folder": "a//b"}, {"filename": "x/y"}, {"filename": " "}]
    for bad in [*bad_changes, {"name": "typo.pdf"}]:
        refused = await docs.call("manager", "PATCH", f"/v1/documents/{first['id']}", json=bad)
        assert refused.status_code == 422 and refused.json()["detail"], bad
    bad_folder = await docs.upload("manager", PDF, folder="..")
    assert bad_folder.status_code == 422


async def test_m4_client_changes_only_documents_marked_view_and_edit(docs: Docs) -> None:
    view_only = await docs.uploaded("manager", PDF, filename="view.pdf")
    editable = await docs.uploaded(
        "manager", PDF, filename="edit.pdf", permission="client_view_edit"
    )
    for method, body in [("PATCH", {"filename": "x.pdf"}), ("PATCH", {"folder": "x"})]:
        refused = await docs.call("client", method, f"/v1/documents/{view_only['id']}", json=body)
        assert refused.status_code == 403
    assert (
        await docs.call("client", "DELETE", f"/v1/documents/{view_only['id']}")
    ).status_code == 403
    assert (
        await docs.call("member without permission", "DELETE", f"/v1/documents/{view_only['id']}")
    ).status_code == 403
    moved = await docs.call(
        "client", "PATCH", f"/v1/documents/{editable['id']}", json={"folder": "Mine"}
    )
    assert moved.status_code == 200
    assert (
        await docs.call("client", "DELETE", f"/v1/documents/{editable['id']}")
    ).status_code == 204
    assert [d["filename"] for d in await docs.listing("manager", recursive=True)] == ["view.pdf"]


async def test_m4_delete_removes_metadata_object_and_publishes_event(docs: Docs) -> None:
    consumer = AIOKafkaConsumer(
        run_topic(Topic.DOCUMENTS),
        bootstrap_servers=os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"],
        auto_offset_reset="latest",
    )
    await consumer.start()
    try:
        await consumer.seek_to_end()
        document = await docs.uploaded("manager", PDF, filename="gone.pdf")
        assert len(await docs.staged_objects()) == 1
        deleted = await docs.call("manager", "DELETE", f"/v1/documents/{document['id']}")
        assert deleted.status_code == 204
        assert (await docs.call("manager", "GET", document["download"])).status_code == 404
        assert await docs.staged_objects() == []
        seen: dict[str, Any] = {}
        while len(seen) < 2:
            batch = await consumer.getmany(timeout_ms=30_000)
            assert batch, f"events missing; saw {sorted(seen)}"
            for records in batch.values():
                for record in records:
                    event = decode(record.value)
                    if event.firm == docs.firm:
                        seen[event.type] = event
    finally:
        await consumer.stop()
    uploaded = seen["documents.document.uploaded"]
    assert uploaded.key == LEE and uploaded.data.sha256 == document["sha256"]
    assert uploaded.data.thread_id is None
    removed = seen["documents.document.deleted"]
    assert removed.data.reason == "deleted_by_user" and removed.data.document_id == document["id"]


async def test_m4_presigned_link_downloads_without_a_token(docs: Docs) -> None:
    content = PDF + os.urandom(100_000)
    document = await docs.uploaded("manager", content, filename="big.pdf")
    link = await docs.call("client", "POST", f"/v1/documents/{document['id']}/download-url")
    assert link.status_code == 200
    assert "X-Amz-Expires=300" in link.json()["url"]
    async with httpx.AsyncClient() as plain:
        fetched = await plain.get(link.json()["url"])
    assert fetched.status_code == 200 and fetched.content == content
    assert "big.pdf" in fetched.headers["content-disposition"]


async def test_m4_presigned_links_name_the_public_storage_address(
    start_service: ServiceFactory, run_id: str
) -> None:
    internal = os.environ["THREADLINE_S3_ENDPOINT"]
    public = internal.replace("127.0.0.1", "localhost")  # same MinIO, another host name
    docs = await documents_service(start_service, run_id, s3_public_endpoint=public)
    document = await docs.uploaded("manager", PDF, filename="w2.pdf")
    link = await docs.call("client", "POST", f"/v1/documents/{document['id']}/download-url")
    url = link.json()["url"]
    assert url.startswith(public + "/"), url
    async with httpx.AsyncClient() as plain:
        fetched = await plain.get(url)
    assert fetched.status_code == 200 and fetched.content == PDF, "signed for the public host"


async def test_m4_upload_over_the_limit_is_413_and_leaves_nothing(
    start_service: ServiceFactory, run_id: str
) -> None:
    small = await documents_service(start_service, run_id, max_upload_bytes=1024 * 1024)
    response = await small.upload("manager", PDF + b"\0" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "1048576" in response.json()["detail"]
    assert await small.staged_objects() == []
    assert await small.listing("manager") == []
    assert (await small.upload("manager", PDF)).status_code == 201


async def test_m4_malformed_uploads_are_problems_not_errors(docs: Docs) -> None:
    not_multipart = await docs.call(
        "manager", "POST", f"/v1/accounts/{LEE}/documents", content=b"raw bytes"
    )
    assert not_multipart.status_code == 415
    no_file = await docs.call(
        "manager",
        "POST",
        f"/v1/accounts/{LEE}/documents",
        files={"note": (None, b"just a field")},
    )
    assert no_file.status_code == 422 and "no file part" in no_file.json()["detail"]
    boundary = "XyZ"
    truncated = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        f"Content-Type: application/pdf\r\n\r\n"
    ).encode() + PDF
    cut = await docs.call(
        "manager",
        "POST",
        f"/v1/accounts/{LEE}/documents",
        content=truncated,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert cut.status_code == 422 and "complete" in cut.json()["detail"]
    assert await docs.staged_objects() == []


async def test_an_account_removed_from_the_directory_loses_its_documents(docs: Docs) -> None:
    kept = await docs.uploaded("manager of other account", PDF, account=PATEL)
    gone = [
        await docs.uploaded("manager", PDF, filename="a.pdf"),
        await docs.uploaded("manager", PNG, filename="b.png", internal=True),
    ]
    removed = new_event(AccountRemoved(account_id=LEE), firm=docs.firm, producer="directory")
    await publish(os.environ["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"], [removed, removed])

    async def visible() -> list[int]:
        return [
            (await docs.call("owner", "GET", f"/v1/documents/{d['id']}")).status_code for d in gone
        ]

    await eventually(visible, until=lambda codes: codes == [404, 404])
    assert (await docs.call("owner", "GET", f"/v1/documents/{kept['id']}")).status_code == 200
    assert [key.rsplit("/", 1)[-1] for key in await docs.staged_objects()] == [kept["id"]]
    refused = await docs.upload("owner", PDF)  # the account is gone from the directory
    assert refused.status_code == 404 and LEE in refused.json()["detail"]
    unknown = await docs.upload("owner", PDF, account="acc_never_heard_of")
    assert unknown.status_code == 404 and "does not exist" in unknown.json()["detail"]


async def test_uploads_cut_short_by_a_crash_are_swept_and_finished_ones_kept(docs: Docs) -> None:
    """A crash between storing objects and writing their metadata leaves objects nothing
    refers to; the sweeper removes them once the upload is old enough, and nothing else."""
    service = docs.app.state.documents
    kept = await docs.uploaded("manager", PDF)
    crashed = f"{docs.firm}/crashed-upload/"

    async def one_chunk() -> Any:
        yield PDF

    await docs.app.state.blobs.put_stream(crashed + "orphan", one_chunk(), content_type="x/y")
    ledger = docs.app.state.runtime.database["uploads_in_progress"]
    long_ago = datetime.now(UTC) - timedelta(days=2)
    await ledger.insert_one({"_id": crashed, "started_at": long_ago})
    kept_prefix = kept_object = None
    for key in await docs.staged_objects():
        if key.endswith(kept["id"]):
            kept_object, kept_prefix = key, key.rsplit("/", 1)[0] + "/"
    assert kept_prefix is not None
    await ledger.insert_one({"_id": kept_prefix, "started_at": long_ago})  # crash after commit
    await ledger.insert_one({"_id": f"{docs.firm}/in-flight/", "started_at": datetime.now(UTC)})

    assert await service.sweep_abandoned_uploads(older_than=timedelta(hours=1)) == 1
    assert await docs.staged_objects() == [kept_object]

    # A crash between the tombstone and the object's removal: the sweep finishes the job.
    deleted = await docs.uploaded("manager", PNG)
    documents = docs.app.state.runtime.database["documents"]
    await documents.update_one(
        {"_id": deleted["id"]}, {"$set": {"deleted": True, "object_removed": False}}
    )
    assert len(await docs.staged_objects()) == 2
    assert await service.sweep_abandoned_uploads(older_than=timedelta(hours=1)) == 1
    assert await docs.staged_objects() == [kept_object]
    ours = [u["_id"] async for u in ledger.find({}) if u["_id"].startswith(f"{docs.firm}/")]
    assert ours == [f"{docs.firm}/in-flight/"]


async def test_an_upload_whose_insert_was_applied_but_answered_an_error_keeps_its_content(
    docs: Docs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the chaos run (MongoDB killed mid-upload): the metadata insert reached the
    server but the connection died before the answer. The upload answers 503, and the
    document it did store still downloads whole; an insert that stored nothing leaves no
    object behind."""
    store = docs.app.state.documents._documents
    insert_all = store.insert_all

    async def applied_then_connection_lost(*args: Any) -> None:
        await insert_all(*args)
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(store, "insert_all", applied_then_connection_lost)
    refused = await docs.upload("owner", PDF, filename="applied.pdf")
    assert refused.status_code == 503, refused.text
    stored = [d for d in await docs.listing("owner") if d["filename"] == "applied.pdf"]
    assert len(stored) == 1
    content = await docs.call("owner", "GET", f"/v1/documents/{stored[0]['id']}/content")
    assert content.status_code == 200 and content.content == PDF

    async def lost_before_applied(*args: Any) -> None:
        raise AutoReconnect("connection refused")

    monkeypatch.setattr(store, "insert_all", lost_before_applied)
    before = set(await docs.staged_objects())
    refused = await docs.upload("owner", PDF, filename="never.pdf")
    assert refused.status_code == 503, refused.text
    assert set(await docs.staged_objects()) == before


async def test_an_upload_retried_with_its_idempotency_key_is_stored_once(docs: Docs) -> None:
    """A client that got no answer retries its upload with the same Idempotency-Key: the
    documents of the first try come back, and nothing is stored twice."""
    key = {"Idempotency-Key": "upload-w2-1"}
    first = await docs.upload("manager", PDF, filename="w2.pdf", headers=key)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await docs.upload("manager", PDF, filename="w2.pdf", headers=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # another uploader's key is theirs alone: the same key from the client is a new upload
    by_client = await docs.upload("client", PDF, filename="w2.pdf", headers=key)
    assert by_client.status_code == 201 and "idempotent-replayed" not in by_client.headers
    names = [d["filename"] for d in await docs.listing("manager", recursive=True)]
    assert sorted(names) == ["w2.pdf", "w2.pdf"]
    [document] = first.json()["documents"]
    link = await docs.call("manager", "POST", f"/v1/documents/{document['id']}/download-url")
    assert link.status_code == 200, link.text
    async with httpx.AsyncClient() as http:
        assert (await http.get(link.json()["url"])).content == PDF


async def test_a_keyed_upload_answered_503_after_storing_is_found_by_its_retry(
    docs: Docs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos run's case with a key: the metadata was stored, the answer was a 503. The
    retry finds that document instead of storing the file twice; a retry while the first
    try is still writing is 409."""
    store = docs.app.state.documents._documents
    insert_all = store.insert_all
    key = {"Idempotency-Key": "retry-after-503"}

    async def applied_then_connection_lost(*args: Any) -> None:
        await insert_all(*args)
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(store, "insert_all", applied_then_connection_lost)
    refused = await docs.upload("owner", PDF, filename="once.pdf", headers=key)
    assert refused.status_code == 503, refused.text
    monkeypatch.setattr(store, "insert_all", insert_all)
    retried = await docs.upload("owner", PDF, filename="once.pdf", headers=key)
    assert retried.status_code == 201 and retried.headers["idempotent-replayed"] == "true"
    assert [d["filename"] for d in await docs.listing("owner")].count("once.pdf") == 1

    writing, release = asyncio.Event(), asyncio.Event()

    async def slow_insert(*args: Any) -> None:
        writing.set()
        await release.wait()
        await insert_all(*args)

    monkeypatch.setattr(store, "insert_all", slow_insert)
    slow_key = {"Idempotency-Key": "still-writing"}
    first = asyncio.create_task(docs.upload("owner", PDF, filename="slow.pdf", headers=slow_key))
    await asyncio.wait_for(writing.wait(), 30)
    meanwhile = await docs.upload("owner", PDF, filename="slow.pdf", headers=slow_key)
    assert meanwhile.status_code == 409, meanwhile.text
    assert "in progress" in meanwhile.json()["detail"]
    release.set()
    assert (await first).status_code == 201
