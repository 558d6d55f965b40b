"""The tasks access matrix: every tasks endpoint x the nine kinds of user (K2, M12, T7).

Same shape as messaging's matrix: ``MATRIX`` has one row per endpoint and one column per
user with the exact status each must get; every cell is its own test, named
"<endpoint> | <user>". One messaging and one tasks service serve the module; thread X
(account LEE) has tasks and mentions Liam (who is assigned to PATEL only), request R
belongs to LEE.

Who may do what:

- T7: a thread's tasks are visible to the account's clients, owners, admins, staff with
  access to the account or view-all, and staff mentioned in the thread; for everyone else
  the thread does not exist (404) and no body names anything of it.
- K2: whoever sees the thread ticks and unticks; staff add, edit, reorder, delete and
  resend (K3); clients get 403 for those.
- M12: a request belongs to its account (no access through a mention): staff with access
  to the account create, edit and attach; its clients (or staff for them) complete it;
  clients may not create, edit or attach (403).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ..access_matrix import (
    ADMIN,
    ASSIGNED,
    CLIENT,
    MENTIONED,
    OTHER_CLIENT,
    OWNER,
    VIEW_ALL,
    AccessMatrix,
)
from ..conftest import LIAM, eventually, liam_upserted, seed_directory, start_app
from .conftest import LEE, Platform

pytestmark = pytest.mark.integration

SEES_X = frozenset({OWNER, ADMIN, ASSIGNED, VIEW_ALL, MENTIONED, CLIENT})
SEES_LEE = frozenset({OWNER, ADMIN, ASSIGNED, VIEW_ALL, CLIENT})  # account access (M12)
CLIENTS = frozenset({CLIENT, OTHER_CLIENT})

# fmt: off
MATRIX: dict[str, tuple[int, ...]] = {
    #                                   owner admin assig unass vall  ment  cli   ocli  ofirm
    "GET /threads/{id}/tasks":           (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "POST /threads/{id}/tasks":          (201,  201,  201,  404,  201,  201,  403,  404,  404),
    "PUT /threads/{id}/tasks/order":     (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "POST /threads/{id}/tasks/resend":   (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "PUT /threads/{id}/tasks/{t}/done":  (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "DELETE /threads/{id}/tasks/{t}/done": (200, 200, 200,  404,  200,  200,  200,  404,  404),
    "PATCH /threads/{id}/tasks/{t}":     (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "DELETE /threads/{id}/tasks/{t}":    (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "GET /tasks":                        (200,  200,  200,  200,  200,  200,  200,  200,  200),
    "POST /accounts/{a}/requests":       (201,  201,  201,  404,  201,  404,  403,  404,  404),
    "GET /requests":                     (200,  200,  200,  200,  200,  200,  200,  200,  200),
    "GET /requests/{r}":                 (200,  200,  200,  404,  200,  404,  200,  404,  404),
    "PATCH /requests/{r}":               (200,  200,  200,  404,  200,  404,  403,  404,  404),
    "POST /requests/{r}/complete":       (200,  200,  200,  404,  200,  404,  200,  404,  404),
    "POST /threads/{id}/requests/{r}":   (200,  200,  200,  404,  200,  404,  403,  404,  404),
    "GET /me":                           (200,  200,  200,  200,  200,  200,  200,  200,  200),
}
# fmt: on


@dataclass
class World:
    platform: Platform
    tag: str
    x: str = ""  # thread X (LEE), mentions Liam, has tasks
    request_id: str = ""  # request R (LEE), attached to nothing
    secrets: list[str] = field(default_factory=list)

    async def tasks(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.platform.tasks(who, method, url, **kwargs)

    async def task_ids(self) -> list[str]:
        response = await self.tasks(OWNER, "GET", f"/v1/threads/{self.x}/tasks")
        return [task["task_id"] for task in response.json()["tasks"]]

    async def new_task(self, text: str) -> str:
        response = await self.tasks(
            OWNER, "POST", f"/v1/threads/{self.x}/tasks", json={"tasks": [{"text": text}]}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["tasks"][-1]["task_id"])

    async def new_request(self, title: str) -> str:
        response = await self.tasks(
            OWNER, "POST", f"/v1/accounts/{LEE}/requests", json={"title": title}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["request_id"])


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    run_id = uuid.uuid4().hex[:10]
    async with AsyncExitStack() as stack:
        messaging, http = await start_app(stack, "messaging", run_id)
        tasks_app, tasks_http = await start_app(
            stack, "tasks", run_id, thread_projection_wait_seconds=0.5
        )
        name = f"firm_{run_id}"
        await seed_directory([messaging, tasks_app], name, extra=[liam_upserted(name)])
        platform = Platform(firm=name, http=http, app=messaging)
        platform.tasks_http, platform.tasks_app = tasks_http, tasks_app
        w = World(platform=platform, tag=run_id)
        w.secrets = [f"Secret task {run_id}", f"X subject {run_id}", f"Secret request {run_id}"]
        thread = await platform.new_thread(
            ASSIGNED,
            tasks=[w.secrets[0]],
            subject=w.secrets[1],
            message={"html": "<p>Liam, have a look</p>", "mentions": [LIAM]},
        )
        w.x = thread["id"]
        await eventually(
            lambda: w.tasks(MENTIONED, "GET", f"/v1/threads/{w.x}/tasks"),
            until=lambda r: r.status_code == 200,
        )
        w.request_id = await w.new_request(w.secrets[2])
        yield w


def route_of(row: str) -> str:
    method, _, path = row.partition(" ")
    path = (
        path.replace("{id}", "{thread_id}")
        .replace("{t}", "{task_id}")
        .replace("{r}", "{request_id}")
        .replace("{a}", "{account_id}")
    )
    return f"{method} /v1{path}"


ACCESS = AccessMatrix[World](MATRIX, route_of=route_of)
probe = ACCESS.probe


@probe("GET /threads/{id}/tasks")
async def _list(w: World, who: str) -> httpx.Response:
    response = await w.tasks(who, "GET", f"/v1/threads/{w.x}/tasks")
    if response.status_code == 200:
        assert w.secrets[0] in [task["text"] for task in response.json()["tasks"]]
    return response


@probe("POST /threads/{id}/tasks")
async def _add(w: World, who: str) -> httpx.Response:
    text = f"added by {who}"
    response = await w.tasks(
        who, "POST", f"/v1/threads/{w.x}/tasks", json={"tasks": [{"text": text}]}
    )
    listed = (await w.tasks(OWNER, "GET", f"/v1/threads/{w.x}/tasks")).json()["tasks"]
    assert (text in [task["text"] for task in listed]) == (response.status_code == 201)
    return response


@probe("PUT /threads/{id}/tasks/order")
async def _reorder(w: World, who: str) -> httpx.Response:
    before = await w.task_ids()
    wanted = list(reversed(before))
    response = await w.tasks(
        who, "PUT", f"/v1/threads/{w.x}/tasks/order", json={"task_ids": wanted}
    )
    assert await w.task_ids() == (wanted if response.status_code == 200 else before)
    return response


@probe("POST /threads/{id}/tasks/resend")
async def _resend(w: World, who: str) -> httpx.Response:
    return await w.tasks(who, "POST", f"/v1/threads/{w.x}/tasks/resend")


async def tick(w: World, who: str, *, done: bool) -> httpx.Response:
    task_id = await w.new_task(f"tick target for {who}")
    url = f"/v1/threads/{w.x}/tasks/{task_id}/done"
    if not done:
        assert (await w.tasks(OWNER, "PUT", url)).status_code == 200
    response = await w.tasks(who, "PUT" if done else "DELETE", url)
    listed = (await w.tasks(OWNER, "GET", f"/v1/threads/{w.x}/tasks")).json()["tasks"]
    (task,) = [task for task in listed if task["task_id"] == task_id]
    changed = response.status_code == 200
    assert task["done"] is (done if changed else not done)
    if changed and done:
        assert task["done_by"]["kind"] == ("client" if who in CLIENTS else "staff")
    return response


@probe("PUT /threads/{id}/tasks/{t}/done")
async def _tick(w: World, who: str) -> httpx.Response:
    return await tick(w, who, done=True)


@probe("DELETE /threads/{id}/tasks/{t}/done")
async def _untick(w: World, who: str) -> httpx.Response:
    return await tick(w, who, done=False)


@probe("PATCH /threads/{id}/tasks/{t}")
async def _edit(w: World, who: str) -> httpx.Response:
    task_id = await w.new_task(f"to edit for {who}")
    response = await w.tasks(
        who, "PATCH", f"/v1/threads/{w.x}/tasks/{task_id}", json={"text": f"edited by {who}"}
    )
    listed = (await w.tasks(OWNER, "GET", f"/v1/threads/{w.x}/tasks")).json()["tasks"]
    (task,) = [task for task in listed if task["task_id"] == task_id]
    expected = f"edited by {who}" if response.status_code == 200 else f"to edit for {who}"
    assert task["text"] == expected
    return response


@probe("DELETE /threads/{id}/tasks/{t}")
async def _delete(w: World, who: str) -> httpx.Response:
    task_id = await w.new_task(f"to delete for {who}")
    response = await w.tasks(who, "DELETE", f"/v1/threads/{w.x}/tasks/{task_id}")
    assert (task_id in await w.task_ids()) == (response.status_code != 200)
    return response


@probe("GET /tasks")
async def _my_tasks(w: World, who: str) -> httpx.Response:
    response = await w.tasks(who, "GET", "/v1/tasks", params={"status": "all"})
    if response.status_code == 200:
        texts = [row["task"]["text"] for row in response.json()["items"] if row["task"]]
        assert (w.secrets[0] in texts) == (who in SEES_LEE)
    return response


@probe("POST /accounts/{a}/requests")
async def _create_request(w: World, who: str) -> httpx.Response:
    title = f"request by {who} {w.tag}"
    response = await w.tasks(who, "POST", f"/v1/accounts/{LEE}/requests", json={"title": title})
    listed = (await w.tasks(OWNER, "GET", "/v1/requests")).json()["requests"]
    assert (title in [r["title"] for r in listed]) == (response.status_code == 201)
    return response


@probe("GET /requests")
async def _requests(w: World, who: str) -> httpx.Response:
    response = await w.tasks(who, "GET", "/v1/requests")
    if response.status_code == 200:
        ids = [request["request_id"] for request in response.json()["requests"]]
        assert (w.request_id in ids) == (who in SEES_LEE)
    return response


@probe("GET /requests/{r}")
async def _request(w: World, who: str) -> httpx.Response:
    return await w.tasks(who, "GET", f"/v1/requests/{w.request_id}")


@probe("PATCH /requests/{r}")
async def _change_request(w: World, who: str) -> httpx.Response:
    description = f"described by {who}"
    response = await w.tasks(
        who, "PATCH", f"/v1/requests/{w.request_id}", json={"description": description}
    )
    after = (await w.tasks(OWNER, "GET", f"/v1/requests/{w.request_id}")).json()
    assert (after["description"] == description) == (response.status_code == 200)
    return response


@probe("POST /requests/{r}/complete")
async def _complete(w: World, who: str) -> httpx.Response:
    request_id = await w.new_request(f"to complete for {who}")
    response = await w.tasks(who, "POST", f"/v1/requests/{request_id}/complete")
    after = (await w.tasks(OWNER, "GET", f"/v1/requests/{request_id}")).json()
    assert after["status"] == ("completed" if response.status_code == 200 else "open")
    return response


@probe("POST /threads/{id}/requests/{r}")
async def _attach(w: World, who: str) -> httpx.Response:
    request_id = await w.new_request(f"to attach for {who}")
    response = await w.tasks(who, "POST", f"/v1/threads/{w.x}/requests/{request_id}")
    after = (await w.tasks(OWNER, "GET", f"/v1/requests/{request_id}")).json()
    assert (after["thread_ids"] == [w.x]) == (response.status_code == 200)
    return response


@probe("GET /me")
async def _me(w: World, who: str) -> httpx.Response:
    return await w.tasks(who, "GET", "/v1/me")


def check_no_leak(w: World, who: str, response: httpx.Response) -> list[str]:
    """T7: nothing of thread X or request R for users who cannot see them; clients never
    see who was mentioned."""
    problems = []
    if who not in SEES_X:
        problems += [f"leaks {s!r}" for s in w.secrets[:2] if s in response.text]
    if who not in SEES_LEE:
        problems += [f"leaks {w.secrets[2]!r}" for _ in [1] if w.secrets[2] in response.text]
    if who in CLIENTS and "mentioned_staff" in response.text:
        problems.append("shows mentioned staff to a client")
    return problems


def test_the_matrix_has_a_probe_per_row() -> None:
    ACCESS.assert_every_row_probed()


async def test_every_tasks_route_is_in_the_matrix(world: World) -> None:
    ACCESS.assert_covers(world.platform.tasks_app, include=lambda path: path.startswith("/v1/"))


@pytest.mark.parametrize(("row", "who", "expected"), ACCESS.cases())
async def test_access(world: World, row: str, who: str, expected: int) -> None:
    await ACCESS.check_cell(world, row, who, expected, leaks=check_no_leak)


@pytest.mark.parametrize("row", list(MATRIX))
async def test_no_token_is_401(world: World, row: str) -> None:
    await ACCESS.check_anonymous(
        world.platform.tasks_http,
        row,
        path_values={
            "thread_id": world.x,
            "task_id": "t",
            "request_id": world.request_id,
            "account_id": LEE,
        },
        secrets=world.secrets,
    )
