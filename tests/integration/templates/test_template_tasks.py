"""A template's client tasks reach the tasks service (P1, P2, K1): a thread that messaging
answered 201 for — or that a bulk job reported created — shows its rendered tasks through
the tasks service's own API at once (no polling: tasks waits for a thread it has not
heard of yet)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ..conftest import ServiceFactory, eventually, seed_directory
from ..tasks.conftest import LEE, Platform

pytestmark = pytest.mark.integration

TASKS = ["Upload the [[date.last_year]] W-2 of [[contact.full_name]]", "Sign for [[account.name]]"]


THREAD_WAIT_SECONDS = 30.0
"""How long tasks waits for a thread it has not heard of. Longer than the tasks tests' 15 s:
on the shared test servers its one consumer also reads every other suite's events, and
one event that keeps failing there holds it ~15 s in retries (seen in this test)."""


@pytest.fixture
async def world(start_service: ServiceFactory, run_id: str) -> Platform:
    messaging_app, messaging_http = await start_service("messaging")
    tasks_app, tasks_http = await start_service(
        "tasks", thread_projection_wait_seconds=THREAD_WAIT_SECONDS
    )
    firm = f"firm_{run_id}"
    await seed_directory([messaging_app, tasks_app], firm)
    world = Platform(firm=firm, http=messaging_http, app=messaging_app)
    world.tasks_http, world.tasks_app = tasks_http, tasks_app
    return world


async def new_template(world: Platform) -> str:
    created = await world.call(
        "owner",
        "POST",
        "/v1/templates",
        json={
            "name": "Year end",
            "subject": "Documents for [[account.name]]",
            "html": "<p>Dear [[contact.first_name]]</p>",
            "client_tasks": TASKS,
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def rendered_tasks() -> list[str]:
    last_year = datetime.now(UTC).year - 1
    return [f"Upload the {last_year} W-2 of Ann Lee, Ben Lee", "Sign for Lee Family"]


async def task_texts(world: Platform, who: str, thread_id: str) -> list[str]:
    response = await world.tasks(who, "GET", f"/v1/threads/{thread_id}/tasks")
    assert response.status_code == 200, response.text
    return [task["text"] for task in response.json()["tasks"]]


async def test_p1_k1_a_thread_from_a_template_shows_its_tasks_in_the_tasks_service_at_once(
    world: Platform,
) -> None:
    template_id = await new_template(world)
    created = await world.call(
        "assigned member",
        "POST",
        "/v1/threads",
        json={"account_id": LEE, "template_id": template_id},
    )
    assert created.status_code == 201, created.text
    thread_id = created.json()["id"]
    assert await task_texts(world, "client", thread_id) == rendered_tasks()
    assert await task_texts(world, "assigned member", thread_id) == rendered_tasks()


async def test_p2_k1_a_bulk_created_thread_shows_its_tasks_in_the_tasks_service_at_once(
    world: Platform,
) -> None:
    template_id = await new_template(world)
    started = await world.call(
        "owner",
        "POST",
        "/v1/bulk-messages",
        json={"account_ids": [LEE], "template_id": template_id},
    )
    assert started.status_code == 202, started.text

    async def job() -> dict[str, Any]:
        response = await world.call("owner", "GET", f"/v1/bulk-messages/{started.json()['id']}")
        return dict(response.json())

    done = await eventually(job, until=lambda body: body["status"] == "done", within=90)
    [result] = done["results"]
    assert result["outcome"] == "created", result
    assert await task_texts(world, "client", result["thread_id"]) == rendered_tasks()
