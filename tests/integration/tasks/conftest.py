"""Tasks on real servers: a messaging and a tasks service side by side (tasks learns
threads from messaging's events; messaging shows the lists from tasks' events)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from threadline.contracts import Envelope
from threadline.contracts.topics import Topic

from ..conftest import (
    LEE,
    PATEL,
    FirmClient,
    ServiceFactory,
    TopicMark,
    eventually,
    keyed_events,
    mark_topic,
    seed_directory,
)

__all__ = ["LEE", "PATEL", "Platform", "events_of"]

THREAD_WAIT_SECONDS = 15.0
"""How long tasks waits for a thread it has not heard of. Generous here: the shared test
servers carry every helper's events, and one consumer handles them one at a time, so the
projection can lag seconds behind on a loaded machine (see README, Known limits)."""
DIGEST_SECONDS = 8.0
"""The tick-batching window in these tests (K4): wide, so that two ticks in a row share a
batch even when the shared test servers are slow."""


class Platform(FirmClient):
    """A seeded firm on running messaging and tasks services (users: ``DEMO_USERS``)."""

    tasks_http: httpx.AsyncClient
    tasks_app: FastAPI
    tasks_from: TopicMark
    """The tasks topic's end when the firm was set up (``events_of`` reads from there)."""

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
    world.tasks_from = await mark_topic(
        messaging_app.state.runtime.settings.kafka_bootstrap_servers, Topic.TASKS
    )
    return world


@pytest.fixture
async def firm(start_service: ServiceFactory, run_id: str) -> Platform:
    return await platform(start_service, run_id)


async def events_of(
    world: Platform, key: str, *, until: Callable[[list[Envelope[Any]]], bool], linger: float = 1.0
) -> list[Envelope[Any]]:
    """Every distinct event keyed ``key`` on the tasks topic since the firm was set up
    (``keyed_events``)."""
    return await keyed_events(world.tasks_from, key, until=until, linger=linger, within=45)
