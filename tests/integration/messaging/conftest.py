"""Messaging on real servers: one messaging app, a seeded directory, tokens per role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from threadline.contracts import decode
from threadline.contracts.topics import Topic
from threadline.kit.directory import MongoDirectory
from threadline.kit.outbox import Outbox
from threadline.messaging.service import Composer, MessageService
from threadline.messaging.store import MongoMessageStore, MongoReadStore, MongoThreadStore

from ..conftest import (
    LEE,
    PATEL,
    FirmClient,
    ServiceFactory,
    TopicMark,
    find_record,
    mark_topic,
    seed_directory,
)

__all__ = ["DORMANT", "LEE", "PATEL", "Firm", "find_event", "firm_on", "unpublished_service"]

DORMANT = "acc_dormant_co"  # no contact with portal access


@dataclass
class Firm(FirmClient):
    """A seeded firm on a running messaging service, calling it as any of ``DEMO_USERS``.
    ``events_from`` marks the messaging topic's end when the firm was set up."""

    events_from: TopicMark | None = None

    async def new_thread(self, who: str = "assigned member", **fields: Any) -> dict[str, Any]:
        body = {
            "account_id": LEE,
            "subject": "2025 tax documents",
            "message": {"html": "<p>Hi</p>"},
        }
        response = await self.call(who, "POST", "/v1/threads", json=body | fields)
        assert response.status_code == 201, response.text
        return response.json()

    async def post(self, who: str, thread_id: str, **message: Any) -> httpx.Response:
        return await self.call(who, "POST", f"/v1/threads/{thread_id}/messages", json=message)


async def firm_on(app: FastAPI, http: httpx.AsyncClient, name: str) -> Firm:
    """Firm ``name`` seeded on a running messaging service, its topic position marked."""
    await seed_directory([app], name)
    bootstrap = app.state.runtime.settings.kafka_bootstrap_servers
    return Firm(
        firm=name, http=http, app=app, events_from=await mark_topic(bootstrap, Topic.MESSAGING)
    )


@pytest.fixture
async def firm(start_service: ServiceFactory, run_id: str) -> Firm:
    """A firm on a messaging service of this test's own (see ``module_services`` for why
    seeded services are not shared)."""
    app, http = await start_service("messaging")
    return await firm_on(app, http, f"firm_{run_id}")


async def find_event(firm: Firm, event_type: str, message_id: str) -> Any:
    """The first event of ``event_type`` about ``message_id`` on the messaging topic since
    the firm was set up."""
    assert firm.events_from is not None

    def matches(record: Any) -> bool:
        if dict(record.headers).get("event-type") != event_type.encode():
            return False
        return bool(decode(record.value).data.message_id == message_id)

    return decode((await find_record(firm.events_from, matches)).value)


class _NoPublishing:
    """The outbox is never run in these tests: if anything tried to publish, they fail."""

    async def publish_record(self, **_: Any) -> None:
        raise AssertionError("nothing may be published in this test")


def unpublished_service(database: AsyncDatabase[dict[str, Any]]) -> MessageService:
    """The real message service and stores on ``database``, without an app: its outbox
    publishes nothing (for tests that call the service itself, example after example)."""
    outbox = Outbox(_NoPublishing())
    return MessageService(
        threads=MongoThreadStore(database, outbox=outbox),
        messages=MongoMessageStore(database, outbox=outbox),
        reads=MongoReadStore(database, outbox=outbox),
        composer=Composer(directory=MongoDirectory(database), max_body_bytes=1024),
    )
