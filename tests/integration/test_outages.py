"""Dependency outages (issue 15): readiness turns false within seconds, requests answer 503
problem+json with ``Retry-After`` (never a 500, never a hang past the configured timeout),
and both recover when the dependency is back.

These tests stop and start servers, so like ``kafka_control`` they run only against
servers this test run started itself (``./threadline test`` or the ``endpoints`` fixture
then set ``THREADLINE_TEST_MAY_RESTART_MONGODB`` / ``_MINIO``; set them by hand for a
private stack of your own); servers that were already running may be shared, and the
tests skip.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest

from .conftest import ServiceFactory, eventually, require_restart_marker, restartable
from .documents.conftest import PDF, documents_service
from .messaging.conftest import find_event, firm_on

pytestmark = [pytest.mark.integration, pytest.mark.restarts_servers]

MONGODB_TIMEOUT = 2.0
READINESS_TIMEOUT = 1.0
RETRY_AFTER = 7
OUTAGE_SETTINGS: dict[str, Any] = {
    "mongodb_timeout_seconds": MONGODB_TIMEOUT,
    "readiness_timeout_seconds": READINESS_TIMEOUT,
    "dependency_retry_after_seconds": RETRY_AFTER,
}
SLACK = 10.0
"""Added to every bound on a loaded 2-core machine: the bounds prove "no hang" (minutes
before), not speed."""


@pytest.fixture
def stack_control(request: pytest.FixtureRequest, endpoints: dict[str, str]) -> Any:
    """The local stack that runs this test's MongoDB and MinIO, to stop and start them."""
    from threadline.devtools.stack import LocalStack  # noqa: PLC0415

    require_restart_marker(request)

    stack = LocalStack(state_dir=endpoints.get("THREADLINE_STATE_DIR"))
    ours = stack.endpoints()
    for variable, server in (
        ("THREADLINE_MONGODB_URL", "mongodb"),
        ("THREADLINE_S3_ENDPOINT", "minio"),
    ):
        if os.environ.get(restartable(server)) != "1":
            pytest.skip(f"{server} was running before this run (may be shared)")
        if ours[variable] != endpoints[variable] or not stack.is_running(server):
            pytest.skip(f"{server} is not run by this machine's local stack for these tests")
    return stack


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, dependency: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(RETRY_AFTER)
    problem = response.json()
    assert problem["dependency"] == dependency
    assert dependency in problem["detail"] and "retry" in problem["detail"]


async def readiness(http: httpx.AsyncClient) -> httpx.Response:
    return await http.get("/readyz")


async def test_mongodb_outage_is_503_with_retry_after_and_readiness_follows_it(
    start_service: ServiceFactory, run_id: str, stack_control: Any
) -> None:
    app, http = await start_service("messaging", **OUTAGE_SETTINGS)
    firm = await firm_on(app, http, f"firm_{run_id}")
    thread = await firm.new_thread(message={"html": "before the outage"})

    await stack_control.astop("mongodb")
    try:
        stopped = time.monotonic()
        down = await eventually(
            lambda: readiness(http), until=lambda r: r.status_code == 503, within=SLACK
        )
        assert down.json()["checks"]["mongodb"] is False
        assert down.json()["checks"]["kafka"] is True
        assert time.monotonic() - stopped < READINESS_TIMEOUT + SLACK

        listing, took = await timed(firm.call("owner", "GET", "/v1/threads"))
        assert_unavailable(listing, "MongoDB")
        assert took < MONGODB_TIMEOUT + SLACK, f"answered after {took:.1f} s"
        posted, took = await timed(firm.post("owner", thread["id"], html="during the outage"))
        assert_unavailable(posted, "MongoDB")
        assert took < MONGODB_TIMEOUT + SLACK, f"answered after {took:.1f} s"
    finally:
        await stack_control.astart("mongodb")

    await eventually(lambda: readiness(http), until=lambda r: r.status_code == 200, within=60)
    after = await firm.post("owner", thread["id"], html="after the outage")
    assert after.status_code == 201, after.text
    assert after.json()["seq"] == 2, "the refused post took no number"


async def test_minio_outage_is_503_for_documents_and_readiness_follows_it(
    start_service: ServiceFactory, run_id: str, stack_control: Any
) -> None:
    docs = await documents_service(
        start_service, run_id, s3_timeout_seconds=2.0, s3_retries=1, **OUTAGE_SETTINGS
    )
    stored = await docs.uploaded("owner", PDF)

    await stack_control.astop("minio")
    try:
        down = await eventually(
            lambda: readiness(docs.http), until=lambda r: r.status_code == 503, within=SLACK
        )
        assert down.json()["checks"]["object_storage"] is False
        assert down.json()["checks"]["mongodb"] is True

        content, took = await timed(
            docs.call("owner", "GET", f"/v1/documents/{stored['id']}/content")
        )
        assert_unavailable(content, "object storage")
        assert took < 2 * 2.0 + SLACK, f"answered after {took:.1f} s"
        upload, took = await timed(docs.upload("owner", PDF, filename="during.pdf"))
        assert_unavailable(upload, "object storage")
        assert took < 2 * 2.0 + SLACK, f"answered after {took:.1f} s"
        metadata = await docs.call("owner", "GET", f"/v1/documents/{stored['id']}")
        assert metadata.status_code == 200, "what needs only MongoDB keeps working"
    finally:
        await stack_control.astart("minio")

    await eventually(lambda: readiness(docs.http), until=lambda r: r.status_code == 200, within=60)
    names = [document["filename"] for document in await docs.listing("owner")]
    assert "during.pdf" not in names, "nothing half-written is visible"
    again = await docs.call("owner", "GET", f"/v1/documents/{stored['id']}/content")
    assert again.status_code == 200 and again.content == PDF


async def test_kafka_outage_keeps_posting_201_through_the_outbox_while_readiness_says_so(
    start_service: ServiceFactory, run_id: str, stack_control: Any, kafka_control: Any
) -> None:
    app, http = await start_service("messaging", **OUTAGE_SETTINGS)
    firm = await firm_on(app, http, f"firm_{run_id}")
    thread = await firm.new_thread(message={"html": "before the outage"})

    await kafka_control.astop("kafka")
    try:
        down = await eventually(
            lambda: readiness(http), until=lambda r: r.status_code == 503, within=SLACK + 5
        )
        assert down.json()["checks"]["kafka"] is False
        posted = await firm.post("owner", thread["id"], html="during the outage")
        assert posted.status_code == 201, posted.text
    finally:
        await kafka_control.astart("kafka")
    await eventually(lambda: readiness(http), until=lambda r: r.status_code == 200, within=120)
    event = await find_event(firm, "messaging.message.posted", posted.json()["id"])
    assert event.data.seq == 2
