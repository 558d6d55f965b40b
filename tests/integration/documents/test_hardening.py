"""Issue 10 on real MinIO, Kafka and the MongoDB-protocol server: active content is never
served inline, malformed uploads are refused (never a 500), bodies and names are bounded
before any work, and another firm's account is 404 everywhere."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ..conftest import ServiceFactory
from ..messaging.conftest import Firm
from .conftest import LEE, PDF, PNG, Docs, documents_service
from .test_threads import attachment_in, both, known_thread  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
ACTIVE = {
    "invoice.svg": (SVG, "image/svg+xml"),
    "page.html": (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "text/html"),
    "feed.xml": (
        b'<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)'
        b"</x:script>",
        None,
    ),
    "w2.pdf": (PDF, "application/pdf"),
}


def content_policy(response: httpx.Response) -> None:
    assert "sandbox" in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("filename", list(ACTIVE))
async def test_m6_active_content_downloads_as_an_attachment_in_a_sandbox(
    docs: Docs, filename: str
) -> None:
    content, expected_type = ACTIVE[filename]
    document = await docs.uploaded("client", content, filename=filename, declared_type="image/png")
    if expected_type is not None:
        assert document["content_type"] == expected_type
    assert document["inline"] is False
    response = await docs.call("owner", "GET", document["download"])
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    content_policy(response)

    link = await docs.call("client", "POST", f"/v1/documents/{document['id']}/download-url")
    query = parse_qs(urlsplit(link.json()["url"]).query)
    assert query["response-content-disposition"][0].startswith("attachment;")


async def test_m6_raster_images_stay_inline_but_sandboxed(docs: Docs) -> None:
    document = await docs.uploaded("manager", PNG, filename="receipt.png")
    assert document["inline"] is True
    response = await docs.call("client", "GET", document["download"])
    assert response.headers["content-disposition"].startswith("inline;")
    content_policy(response)


async def test_m6_an_svg_attachment_message_is_not_inline_and_escapes_its_name(
    both: tuple[Docs, Firm],  # noqa: F811 - the fixture
) -> None:
    docs, firm = both
    thread = await firm.new_thread()
    await known_thread(docs, thread["id"])
    name = "<img src=x onerror=alert(1)>.svg"
    svg = await docs.uploaded("client", SVG, filename=name, thread_id=thread["id"])
    message = await attachment_in(firm, "assigned member", thread["id"], svg["id"])
    assert message["attachments"][0]["inline"] is False
    assert message["attachments"][0]["filename"] == name, "plain text, kept as typed"
    assert "<img" not in message["html"] and "&lt;img" in message["html"], "escaped in HTML"
    assert message["author"]["account_name"] == "Lee Family", "R3: the client's account"


@pytest.mark.parametrize(
    "content_type",
    [
        f"multipart/form-data; boundary={'b' * 300}",
        f"multipart/form-data; boundary={'b' * 257}",
        "multipart/form-data; boundary=",
        "multipart/form-data",
        "application/json",
        "",
    ],
)
async def test_a_malformed_multipart_header_is_a_4xx_problem(docs: Docs, content_type: str) -> None:
    response = await docs.call(
        "manager",
        "POST",
        f"/v1/accounts/{LEE}/documents",
        content=b"--x\r\n\r\n",
        headers={"Content-Type": content_type},
    )
    assert response.status_code in {415, 422}, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-correlation-id"]


async def test_a_declared_length_over_the_upload_limit_is_413_before_the_body_is_read(
    start_service: ServiceFactory, run_id: str
) -> None:
    small = await documents_service(start_service, run_id, max_upload_bytes=1024 * 1024)
    read: list[int] = []

    async def body() -> Any:
        read.append(1)
        yield b"--b\r\n"

    response = await small.call(
        "manager",
        "POST",
        f"/v1/accounts/{LEE}/documents",
        content=body(),
        headers={
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(50 * 1024 * 1024),
        },
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert await small.staged_objects() == []


@pytest.mark.parametrize(
    ("field", "size", "status"),
    [
        ("filename", 20 * 1024 * 1024, 413),
        ("folder", 20 * 1024 * 1024, 413),
        ("filename", 2000, 422),
        ("folder", 5000, 422),
    ],
)
async def test_issue_10_oversized_names_in_a_patch_are_refused_before_any_scan(
    docs: Docs, field: str, size: int, status: int
) -> None:
    document = await docs.uploaded("manager", PDF)
    response = await docs.call(
        "manager", "PATCH", f"/v1/documents/{document['id']}", json={field: "a" * size}
    )
    assert response.status_code == status, response.text[:300]
    assert (await docs.call("manager", "GET", f"/v1/documents/{document['id']}")).json()[
        "filename"
    ] == document["filename"]


@pytest.mark.parametrize("body", [{"filename": 5}, {"folder": ["a"]}, {"filename": "a\x00b"}])
async def test_rename_takes_only_strings_without_control_characters(
    docs: Docs, body: dict[str, Any]
) -> None:
    document = await docs.uploaded("manager", PDF)
    response = await docs.call("manager", "PATCH", f"/v1/documents/{document['id']}", json=body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("path", ["/documents", "/folders"])
async def test_another_firms_owner_gets_404_for_an_accounts_documents(
    docs: Docs, path: str
) -> None:
    """Like uploading to that account: it does not exist for them (not `200 []`)."""
    await docs.uploaded("manager", PDF)
    response = await docs.call("other firm", "GET", f"/v1/accounts/{LEE}{path}")
    assert response.status_code == 404
    own = await docs.call("owner", "GET", f"/v1/accounts/{LEE}{path}")
    assert own.status_code == 200
