"""The access matrix: every pipeline route x nine kinds of user (SPEC J1-J4, T7).

Who may do what:

- Pipelines belong to the firm: every staff member reads them; owners and admins create
  and change them (members 403). Clients see nothing of pipelines or jobs: 404 everywhere,
  lists included. Another firm finds nothing (404) — except that its owner may create a
  pipeline in its own firm (201).
- Jobs are worked by staff with access to the job's account (owner, admin, assigned,
  view-all): create, read, move, link and unlink threads, the link picker. Other staff get
  404, and the pipeline board lists only jobs of accounts they see.

Each cell checks the exact status; every response other than a 2xx names nothing of the
job or the pipeline (no leak), and every route refuses a request without a token (401).
The matrix thread is made known to pipeline by publishing messaging's contract event.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from threadline.contracts import new_event
from threadline.contracts.events.common import Actor
from threadline.contracts.events.messaging import ReminderSettings, ThreadCreated
from threadline.devtools.seed import publish

from ..access_matrix import (
    CLIENT,
    MENTIONED,
    OTHER_CLIENT,
    OTHER_FIRM,
    OWNER,
    UNASSIGNED,
    AccessMatrix,
)
from ..conftest import eventually, start_app
from ..tasks.conftest import LEE, Platform

pytestmark = pytest.mark.integration

_MANAGE = (200, 200, 403, 403, 403, 403, 404, 404, 404)
_WORK = (200, 200, 200, 404, 200, 404, 404, 404, 404)
# fmt: off
MATRIX: dict[str, tuple[int, ...]] = {
    # owner, admin, assigned, unassigned, view-all, mentioned, client, other client, other firm
    "POST /v1/pipelines": (201, 201, 403, 403, 403, 403, 404, 404, 201),
    "GET /v1/pipelines": (200, 200, 200, 200, 200, 200, 404, 404, 200),
    "GET /v1/pipelines/{pipeline_id}": (200, 200, 200, 200, 200, 200, 404, 404, 404),
    "PATCH /v1/pipelines/{pipeline_id}": _MANAGE,
    "POST /v1/pipelines/{pipeline_id}/stages": (201, 201, 403, 403, 403, 403, 404, 404, 404),
    "PATCH /v1/pipelines/{pipeline_id}/stages/{stage_id}": _MANAGE,
    "PUT /v1/pipelines/{pipeline_id}/stage-order": _MANAGE,
    "DELETE /v1/pipelines/{pipeline_id}/stages/{stage_id}": _MANAGE,
    "GET /v1/pipelines/{pipeline_id}/jobs": (200, 200, 200, 200, 200, 200, 404, 404, 404),
    "POST /v1/jobs": (201, 201, 201, 404, 201, 404, 404, 404, 404),
    "GET /v1/jobs/{job_id}": _WORK,
    # Another firm's owner sees every account of their own firm: none of this firm's jobs.
    "GET /v1/accounts/{account_id}/jobs": (200, 200, 200, 404, 200, 404, 404, 404, 200),
    "POST /v1/jobs/{job_id}/move": _WORK,
    "GET /v1/jobs/{job_id}/link-candidates": _WORK,
    "PUT /v1/jobs/{job_id}/threads/{thread_id}": _WORK,
    "DELETE /v1/jobs/{job_id}/threads/{thread_id}": _WORK,
}
# fmt: on


@dataclass
class World:
    firm: Platform
    tag: str
    pipeline_id: str = ""
    first_stage: str = ""
    second_stage: str = ""
    job_id: str = ""
    thread_id: str = ""

    @property
    def secrets(self) -> list[str]:
        return [f"Job {self.tag}", f"Matrix thread {self.tag}", f"Matrix {self.tag}"]

    async def call(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.firm.call(who, method, url, **kwargs)

    async def ok(self, response: httpx.Response, status: int = 200) -> dict[str, Any]:
        assert response.status_code == status, response.text
        return dict(response.json())

    async def empty_stage(self) -> str:
        """A fresh stage holding no job (for the rows that remove one)."""
        body = {"name": f"Spare {uuid.uuid4().hex[:6]}"}
        pipeline = await self.ok(
            await self.call(OWNER, "POST", f"/v1/pipelines/{self.pipeline_id}/stages", json=body),
            201,
        )
        return str(pipeline["stages"][-1]["stage_id"])

    async def stage_order(self) -> list[str]:
        pipeline = await self.ok(await self.call(OWNER, "GET", f"/v1/pipelines/{self.pipeline_id}"))
        return [stage["stage_id"] for stage in pipeline["stages"]]


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    run_id = uuid.uuid4().hex[:10]
    async with AsyncExitStack() as stack:
        app, http = await start_app(stack, "pipeline", run_id)
        firm = Platform(firm=f"firm_{run_id}", http=http, app=app)
        w = World(firm=firm, tag=run_id)
        pipeline = await w.ok(
            await w.call(
                OWNER,
                "POST",
                "/v1/pipelines",
                json={"name": f"Matrix {run_id}", "stages": [{"name": "One"}, {"name": "Two"}]},
            ),
            201,
        )
        w.pipeline_id = pipeline["pipeline_id"]
        w.first_stage, w.second_stage = (s["stage_id"] for s in pipeline["stages"])
        job = await w.ok(
            await w.call(
                OWNER,
                "POST",
                "/v1/jobs",
                json={"account_id": LEE, "pipeline_id": w.pipeline_id, "name": f"Job {run_id}"},
            ),
            201,
        )
        w.job_id = job["job_id"]
        w.thread_id = f"th_matrix_{run_id}"
        created = ThreadCreated(
            thread_id=w.thread_id,
            account_id=LEE,
            subject=f"Matrix thread {run_id}",
            created_by=Actor(user_id="st_mia", kind="staff"),
            to_contact_ids=["ct_ann_lee"],
            first_message_id=f"msg_{run_id}",
            reminders=ReminderSettings(enabled=False),
        )
        await publish(
            app.state.runtime.settings.kafka_bootstrap_servers,
            [new_event(created, firm=firm.firm, producer="messaging")],
        )
        await eventually(
            lambda: w.call(OWNER, "GET", f"/v1/jobs/{w.job_id}/link-candidates"),
            until=lambda r: len(r.json()["threads"]) == 1,
        )
        yield w


Probe = Callable[[World, str], Awaitable[httpx.Response]]


async def _move(w: World, who: str) -> httpx.Response:
    job = await w.ok(await w.call(OWNER, "GET", f"/v1/jobs/{w.job_id}"))
    target = w.second_stage if job["stage_id"] == w.first_stage else w.first_stage
    return await w.call(who, "POST", f"/v1/jobs/{w.job_id}/move", json={"to_stage_id": target})


async def _reorder(w: World, who: str) -> httpx.Response:
    order = list(reversed(await w.stage_order()))
    return await w.call(
        who, "PUT", f"/v1/pipelines/{w.pipeline_id}/stage-order", json={"stage_ids": order}
    )


async def _remove_stage(w: World, who: str) -> httpx.Response:
    stage = await w.empty_stage()
    return await w.call(who, "DELETE", f"/v1/pipelines/{w.pipeline_id}/stages/{stage}")


async def _unlink(w: World, who: str) -> httpx.Response:
    await w.ok(await w.call(OWNER, "PUT", f"/v1/jobs/{w.job_id}/threads/{w.thread_id}"))
    return await w.call(who, "DELETE", f"/v1/jobs/{w.job_id}/threads/{w.thread_id}")


ACCESS = AccessMatrix[World](MATRIX)
ACCESS.probes |= {
    "POST /v1/pipelines": lambda w, who: w.call(
        who, "POST", "/v1/pipelines", json={"name": "New", "stages": [{"name": "Only"}]}
    ),
    "GET /v1/pipelines": lambda w, who: w.call(who, "GET", "/v1/pipelines"),
    "GET /v1/pipelines/{pipeline_id}": lambda w, who: w.call(
        who, "GET", f"/v1/pipelines/{w.pipeline_id}"
    ),
    "PATCH /v1/pipelines/{pipeline_id}": lambda w, who: w.call(
        who, "PATCH", f"/v1/pipelines/{w.pipeline_id}", json={"name": f"Matrix {w.tag}"}
    ),
    "POST /v1/pipelines/{pipeline_id}/stages": lambda w, who: w.call(
        who, "POST", f"/v1/pipelines/{w.pipeline_id}/stages", json={"name": "Added"}
    ),
    "PATCH /v1/pipelines/{pipeline_id}/stages/{stage_id}": lambda w, who: w.call(
        who,
        "PATCH",
        f"/v1/pipelines/{w.pipeline_id}/stages/{w.second_stage}",
        json={"automove": True},
    ),
    "PUT /v1/pipelines/{pipeline_id}/stage-order": _reorder,
    "DELETE /v1/pipelines/{pipeline_id}/stages/{stage_id}": _remove_stage,
    "GET /v1/pipelines/{pipeline_id}/jobs": lambda w, who: w.call(
        who, "GET", f"/v1/pipelines/{w.pipeline_id}/jobs"
    ),
    "POST /v1/jobs": lambda w, who: w.call(
        who,
        "POST",
        "/v1/jobs",
        json={"account_id": LEE, "pipeline_id": w.pipeline_id, "name": "Another job"},
    ),
    "GET /v1/jobs/{job_id}": lambda w, who: w.call(who, "GET", f"/v1/jobs/{w.job_id}"),
    "GET /v1/accounts/{account_id}/jobs": lambda w, who: w.call(
        who, "GET", f"/v1/accounts/{LEE}/jobs"
    ),
    "POST /v1/jobs/{job_id}/move": _move,
    "GET /v1/jobs/{job_id}/link-candidates": lambda w, who: w.call(
        who, "GET", f"/v1/jobs/{w.job_id}/link-candidates"
    ),
    "PUT /v1/jobs/{job_id}/threads/{thread_id}": lambda w, who: w.call(
        who, "PUT", f"/v1/jobs/{w.job_id}/threads/{w.thread_id}"
    ),
    "DELETE /v1/jobs/{job_id}/threads/{thread_id}": _unlink,
}


def test_the_matrix_has_a_probe_per_row() -> None:
    ACCESS.assert_every_row_probed()


async def test_every_pipeline_route_is_in_the_matrix(world: World) -> None:
    ACCESS.assert_covers(
        world.firm.app, include=lambda path: path.startswith("/v1/") and path != "/v1/me"
    )


def check_no_leak(w: World, who: str, response: httpx.Response) -> list[str]:
    """An error names nothing of the job, the thread or the pipeline; boards and lists hide
    the job from users without access to its account."""
    secrets = w.secrets if response.status_code >= 300 else []
    if who in (CLIENT, OTHER_CLIENT, UNASSIGNED, MENTIONED, OTHER_FIRM) and response.is_success:
        secrets = [f"Job {w.tag}"]
    return [f"leaks {secret!r}" for secret in secrets if secret in response.text]


@pytest.mark.parametrize(("row", "who", "expected"), ACCESS.cases())
async def test_access(world: World, row: str, who: str, expected: int) -> None:
    await ACCESS.check_cell(world, row, who, expected, leaks=check_no_leak)


@pytest.mark.parametrize("row", list(MATRIX))
async def test_no_token_is_401(world: World, row: str) -> None:
    await ACCESS.check_anonymous(
        world.firm.http,
        row,
        path_values={
            "pipeline_id": world.pipeline_id,
            "stage_id": world.first_stage,
            "job_id": world.job_id,
            "account_id": LEE,
            "thread_id": world.thread_id,
        },
        secrets=world.secrets,
    )


async def test_bad_input_is_a_problem_not_a_500(world: World) -> None:
    too_many = {"name": "x", "stages": [{"name": f"s{i}"} for i in range(51)]}
    unknown_field = {"name": "x", "stages": [{"name": "s"}], "colour": "red"}
    long_name = {"name": "x" * 201, "stages": [{"name": "s"}]}
    wrong_type = {"name": 5, "stages": [{"name": "s"}]}
    for body in (too_many, unknown_field, long_name, wrong_type):
        response = await world.call(OWNER, "POST", "/v1/pipelines", json=body)
        assert response.status_code == 422, response.text
    bad_move = await world.call(
        OWNER, "POST", f"/v1/jobs/{world.job_id}/move", json={"to_stage_id": "stg_nope"}
    )
    assert bad_move.status_code == 422, bad_move.text
    bad_choice = await world.call(
        OWNER,
        "POST",
        f"/v1/jobs/{world.job_id}/move",
        json={"to_stage_id": world.second_stage, "unfinished": "delete"},
    )
    assert bad_choice.status_code == 422, bad_choice.text
