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


async def test_m6_active_content_downloads_as_an_attachment_in_a_sandbox(docs: Docs) -> None:
    for filename, (content, expected_type) in ACTIVE.items():
        document = await docs.uploaded(
            "client", content, filename=filename, declared_type="image/png"
        )
        if expected_type is not None:
            assert document["content_type"] == expected_type
        assert document["inline"] is False, filename
        response = await docs.call("owner", "GET", document["download"])
        assert response.status_code == 200
        assert response.headers["content-disposition"].startswith("attachment;"), filename
        content_policy(response)

        link = await docs.call("client", "POST", f"/v1/documents/{document['id']}/download-url")
        query = parse_qs(urlsplit(link.json()["url"]).query)
        assert query["response-content-disposition"][0].startswith("attachment;")

    # Raster images stay inline, sandboxed all the same.
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


MALFORMED_UPLOAD_TYPES = [
    f"multipart/form-data; boundary={'b' * 300}",
    f"multipart/form-data; boundary={'b' * 257}",
    "multipart/form-data; boundary=",
    "multipart/form-data",
    "application/json",
    "",
]


async def test_a_malformed_multipart_header_is_a_4xx_problem(docs: Docs) -> None:
    for content_type in MALFORMED_UPLOAD_TYPES:
        response = await docs.call(
            "manager",
            "POST",
            f"/v1/accounts/{LEE}/documents",
            content=b"--x\r\n\r\n",
            headers={"Content-Type": content_type},
        )
        assert response.status_code in {415, 422}, (content_type, response.text)
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


BAD_CHANGES: list[tuple[dict[str, Any], int]] = [
    ({"filename": "a" * (20 * 1024 * 1024)}, 413),
    ({"folder": "a/" * (10 * 1024 * 1024)}, 413),
    ({"filename": "a" * 2000}, 422),
    ({"folder": "a" * 5000}, 422),
    ({"filename": 5}, 422),
    ({"folder": ["a"]}, 422),
    ({"filename": "a\x00b"}, 422),
]


async def test_issue_10_bad_renames_and_moves_are_refused_before_any_scan(docs: Docs) -> None:
    document = await docs.uploaded("manager", PDF)
    url = f"/v1/documents/{document['id']}"
    for body, status in BAD_CHANGES:
        response = await docs.call("manager", "PATCH", url, json=body)
        assert response.status_code == status, (list(body), response.text[:300])
    unchanged = (await docs.call("manager", "GET", url)).json()
    assert (unchanged["filename"], unchanged["folder"]) == (
        document["filename"],
        document["folder"],
    )


async def test_another_firms_owner_gets_404_for_an_accounts_documents(docs: Docs) -> None:
    """Like uploading to that account: it does not exist for them (not `200 []`)."""
    await docs.uploaded("manager", PDF)
    for path in ("/documents", "/folders"):
        response = await docs.call("other firm", "GET", f"/v1/accounts/{LEE}{path}")
        assert response.status_code == 404, path
        own = await docs.call("owner", "GET", f"/v1/accounts/{LEE}{path}")
        assert own.status_code == 200
