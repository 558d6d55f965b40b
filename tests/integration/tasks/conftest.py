"""Tasks on real servers: a messaging and a tasks service side by side (tasks learns
threads from messaging's events; messaging shows the lists from tasks' events)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from threadline.contracts import Envelope, decode
from threadline.contracts.topics import Topic

from ..conftest import FirmClient, ServiceFactory, eventually, seed_directory, token_for
from ..messaging.conftest import LEE, PATEL

__all__ = ["LEE", "PATEL", "Platform", "events_of"]

THREAD_WAIT_SECONDS = 15.0
"""How long tasks waits for a thread it has not heard of. Generous here: the shared test
servers carry every helper's events, and one consumer handles them one at a time, so the
projection can lag seconds behind on a loaded machine (see README, Known limits)."""
DIGEST_SECONDS = 8.0
"""The tick-batching window in these tests (K4): wide, so that two ticks in a row share a
batch even when the shared test servers are slow."""


class Platform(FirmClient):
    """A seeded firm on running messaging and tasks services, a token per kind of user."""

    tasks_http: httpx.AsyncClient
    tasks_app: FastAPI

    def token(self, who: str) -> str:
        tokens: dict[str, Callable[[], str]] = {
            "owner": lambda: token_for(self.firm, role="owner", sub="st_olivia", name="Olivia"),
            "admin": lambda: token_for(self.firm, role="admin", sub="st_adam"),
            "assigned member": lambda: token_for(
                self.firm, role="member", sub="st_mia", accounts=[LEE], name="Mia Chen"
            ),
            "unassigned member": lambda: token_for(
                self.firm, role="member", sub="st_noah", accounts=[PATEL]
            ),
            "member with view-all": lambda: token_for(
                self.firm, role="member", sub="st_noah", perms=["view_all_accounts"]
            ),
            "mentioned member": lambda: token_for(
                self.firm, role="member", sub="st_liam", accounts=[PATEL], name="Liam"
            ),
            "client": lambda: token_for(
                self.firm, kind="client", sub="ct_ann_lee", accounts=[LEE], name="Ann"
            ),
            "second client": lambda: token_for(
                self.firm, kind="client", sub="ct_ben_lee", accounts=[LEE], name="Ben"
            ),
            "other client": lambda: token_for(
                self.firm, kind="client", sub="ct_raj_patel", accounts=[PATEL]
            ),
            "other firm": lambda: token_for(f"{self.firm}_other", role="owner", sub="st_olivia"),
        }
        return tokens[who]()

    async def tasks(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.tasks_http.request(method, url, headers=self.auth(who), **kwargs)

    async def new_thread(
        self, who: str = "assigned member", *, tasks: list[str] | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {
            "account_id": LEE,
            "subject": "2025 tax documents",
            "message": {"html": "<p>Hi</p>"},
            "client_tasks": tasks or [],
        }
        response = await self.call(who, "POST", "/v1/threads", json=body | fields)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def thread_row(self, who: str, thread_id: str, **params: Any) -> dict[str, Any] | None:
        response = await self.call(who, "GET", "/v1/threads", params={"limit": 100, **params})
        assert response.status_code == 200, response.text
        rows = [row for row in response.json()["threads"] if row["id"] == thread_id]
        return rows[0] if rows else None

    async def messages(self, who: str, thread_id: str) -> list[dict[str, Any]]:
        response = await self.call(
            who, "GET", f"/v1/threads/{thread_id}/messages", params={"limit": 100}
        )
        assert response.status_code == 200, response.text
        return list(response.json()["messages"])

    async def progress(self, who: str, thread_id: str) -> dict[str, int] | None:
        row = await self.thread_row(who, thread_id)
        return row["tasks"] if row else None

    async def wait_progress(self, thread_id: str, done: int, total: int) -> None:
        await eventually(
            lambda: self.progress("owner", thread_id),
            until=lambda p: p == {"done": done, "total": total},
        )


async def platform(start_service: ServiceFactory, run_id: str) -> Platform:
    messaging_app, messaging_http = await start_service(
        "messaging", task_digest_seconds=DIGEST_SECONDS
    )
    tasks_app, tasks_http = await start_service(
        "tasks", thread_projection_wait_seconds=THREAD_WAIT_SECONDS
    )
    firm = f"firm_{run_id}"
    await seed_directory([messaging_app, tasks_app], firm)
    world = Platform(firm=firm, http=messaging_http, app=messaging_app)
    world.tasks_http, world.tasks_app = tasks_http, tasks_app
    return world


@pytest.fixture
async def firm(start_service: ServiceFactory, run_id: str) -> Platform:
    return await platform(start_service, run_id)


async def events_of(
    world: Platform, key: str, *, until: Callable[[list[Envelope[Any]]], bool], linger: float = 1.0
) -> list[Envelope[Any]]:
    """Every distinct event keyed ``key`` on the tasks topic, read from the start until
    ``until`` holds, then ``linger`` seconds more (so an extra event would be seen).
    Delivery is at least once (the outbox relay may republish an event whose publisher
    had not cleared it yet), so copies of one event id count once, as consumers count them."""
    consumer = AIOKafkaConsumer(
        Topic.TASKS,
        bootstrap_servers=world.app.state.runtime.settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[Envelope[Any]] = []
    seen: set[uuid.UUID] = set()
    clock = asyncio.get_running_loop().time
    deadline, settled_at = clock() + 45, None
    try:
        while clock() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    if record.key and record.key.decode() == key:
                        event = decode(record.value)
                        if event.id not in seen:
                            seen.add(event.id)
                            found.append(event)
            if settled_at is None and until(found):
                settled_at = clock()
            if settled_at is not None and clock() - settled_at >= linger:
                return found
    finally:
        await consumer.stop()
    raise AssertionError(f"condition on the events of {key} not met: {[e.type for e in found]}")
