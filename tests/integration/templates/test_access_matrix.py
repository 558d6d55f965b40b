"""The access matrix of templates and bulk messages: every route x nine kinds of user (P1, P2).

Same style as tests/integration/messaging/test_access_matrix.py: ``MATRIX`` has one row per
endpoint (sometimes with a variant), one column per user, the exact status each must get;
every cell is its own test case. Who may do what:

- P1: every staff member lists, reads, previews and uses the firm's templates; owners,
  admins and staff with ``manage_templates`` create, change, duplicate and delete them.
  Clients never see templates: every template route answers them 403 before any lookup.
  Another firm's template does not exist (404).
- A preview, and a thread from a template, need access to the account (404 otherwise, T7).
- P2: staff start bulk messages (per-account access is checked per account, in the job);
  a job is seen, and cancelled, by its sender and the firm's owners and admins (404 for
  anyone else); clients get 403.

Every response also goes through ``check_no_leak``: users outside the firm, and clients,
find none of the template's text in any body.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from threadline.kit.leases import Leases
from threadline.messaging.service.bulk import derived_id

from ..access_matrix import (
    ADMIN,
    ASSIGNED,
    CLIENT,
    OTHER_CLIENT,
    OTHER_FIRM,
    OWNER,
    UNASSIGNED,
    VIEW_ALL,
    AccessMatrix,
)
from ..conftest import seed_directory, start_app
from ..messaging.conftest import LEE
from .conftest import TEMPLATE_MANAGER, TemplateFirm

pytestmark = pytest.mark.integration

MANAGER = TEMPLATE_MANAGER
USERS = (OWNER, ADMIN, ASSIGNED, UNASSIGNED, VIEW_ALL, MANAGER, CLIENT, OTHER_CLIENT, OTHER_FIRM)
OUTSIDERS = frozenset({CLIENT, OTHER_CLIENT, OTHER_FIRM})

# fmt: off
MATRIX: dict[str, tuple[int, ...]] = {
    #                                   owner admin assig unass vall  mgr   cli   ocli  ofirm
    "GET /templates/shortcodes":        (200,  200,  200,  200,  200,  200,  403,  403,  200),
    "GET /templates":                   (200,  200,  200,  200,  200,  200,  403,  403,  200),
    "POST /templates":                  (201,  201,  403,  403,  403,  201,  403,  403,  201),
    "GET /templates/{id}":              (200,  200,  200,  200,  200,  200,  403,  403,  404),
    "PATCH /templates/{id}":            (200,  200,  403,  403,  403,  200,  403,  403,  404),
    "POST /templates/{id}/duplicate":   (201,  201,  403,  403,  403,  201,  403,  403,  404),
    "DELETE /templates/{id}":           (204,  204,  403,  403,  403,  204,  403,  403,  404),
    "POST /templates/{id}/preview":     (200,  200,  200,  404,  200,  200,  403,  403,  404),
    "POST /threads [template]":         (201,  201,  201,  404,  201,  201,  403,  404,  404),
    "POST /bulk-messages":              (202,  202,  202,  202,  202,  202,  403,  403,  202),
    "GET /bulk-messages/{id}":          (200,  200,  200,  404,  404,  200,  403,  403,  404),
    "POST /bulk-messages/{id}/cancel":  (200,  200,  200,  404,  404,  200,  403,  403,  404),
}
# fmt: on


@dataclass
class World:
    firm: TemplateFirm
    tag: str
    template_id: str = ""
    job_id: str = ""

    @property
    def secrets(self) -> list[str]:
        return [f"Secret subject {self.tag}", f"Secret body {self.tag}"]

    async def call(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.firm.call(who, method, url, **kwargs)

    async def template(self) -> str:
        """A fresh template to change or delete."""
        created = await self.firm.new_template(OWNER, name=f"scratch {uuid.uuid4().hex[:6]}")
        return str(created["id"])


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    run_id = uuid.uuid4().hex[:10]
    async with AsyncExitStack() as stack:
        app, http = await start_app(stack, "messaging", run_id)
        name = f"firm_{run_id}"
        await seed_directory([app], name)
        w = World(firm=TemplateFirm(firm=name, http=http, app=app), tag=run_id)
        template = await w.firm.new_template(
            OWNER,
            name=f"Matrix {run_id}",
            subject=w.secrets[0],
            html=f"<p>{w.secrets[1]} [[contact.first_name]]</p>",
        )
        w.template_id = template["id"]
        started = await w.call(
            ASSIGNED,
            "POST",
            "/v1/bulk-messages",
            json={"account_ids": [LEE], "template_id": template["id"]},
        )
        assert started.status_code == 202, started.text
        w.job_id = started.json()["id"]
        yield w


def route_of(row: str) -> str:
    endpoint = row.partition(" [")[0]
    method, _, path = endpoint.partition(" ")
    parameter = "{job_id}" if path.startswith("/bulk") else "{template_id}"
    return f"{method} /v1{path.replace('{id}', parameter)}"


ACCESS = AccessMatrix[World](MATRIX, users=USERS, route_of=route_of)
probe = ACCESS.probe


@probe("GET /templates/shortcodes")
async def _shortcodes(w: World, who: str) -> httpx.Response:
    return await w.call(who, "GET", "/v1/templates/shortcodes")


@probe("GET /templates")
async def _list(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "GET", "/v1/templates", params={"limit": 100})
    if response.status_code == 200:
        ids = [t["id"] for t in response.json()["templates"]]
        assert (w.template_id in ids) is (who != OTHER_FIRM)
    return response


@probe("POST /templates")
async def _create(w: World, who: str) -> httpx.Response:
    name = f"created by {who} {w.tag}"
    response = await w.call(
        who, "POST", "/v1/templates", json={"name": name, "subject": "s", "html": "h"}
    )
    listed = (await w.call(OWNER, "GET", "/v1/templates", params={"limit": 100})).json()
    in_firm = name in [t["name"] for t in listed["templates"]]
    assert in_firm is (response.status_code == 201 and who != OTHER_FIRM)
    return response


@probe("GET /templates/{id}")
async def _get(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "GET", f"/v1/templates/{w.template_id}")
    if response.status_code == 200:
        assert response.json()["subject"] == w.secrets[0]
    return response


@probe("PATCH /templates/{id}")
async def _patch(w: World, who: str) -> httpx.Response:
    template_id = await w.template()
    url = f"/v1/templates/{template_id}"
    response = await w.call(who, "PATCH", url, json={"name": f"renamed by {who}"})
    after = (await w.call(OWNER, "GET", url)).json()
    assert (after["name"] == f"renamed by {who}") is (response.status_code == 200)
    return response


@probe("POST /templates/{id}/duplicate")
async def _duplicate(w: World, who: str) -> httpx.Response:
    return await w.call(who, "POST", f"/v1/templates/{w.template_id}/duplicate")


@probe("DELETE /templates/{id}")
async def _delete(w: World, who: str) -> httpx.Response:
    template_id = await w.template()
    response = await w.call(who, "DELETE", f"/v1/templates/{template_id}")
    left = (await w.call(OWNER, "GET", f"/v1/templates/{template_id}")).status_code
    assert left == (404 if response.status_code == 204 else 200)
    return response


@probe("POST /templates/{id}/preview")
async def _preview(w: World, who: str) -> httpx.Response:
    response = await w.call(
        who, "POST", f"/v1/templates/{w.template_id}/preview", params={"account_id": LEE}
    )
    if response.status_code == 200:
        assert response.json()["text"] == f"{w.secrets[1]} Ann, Ben"
    return response


@probe("POST /threads [template]")
async def _thread(w: World, who: str) -> httpx.Response:
    response = await w.call(
        who, "POST", "/v1/threads", json={"account_id": LEE, "template_id": w.template_id}
    )
    if response.status_code == 201:
        assert response.json()["subject"] == w.secrets[0]
    return response


@probe("POST /bulk-messages")
async def _bulk(w: World, who: str) -> httpx.Response:
    return await w.call(
        who,
        "POST",
        "/v1/bulk-messages",
        json={"account_ids": [LEE], "subject": f"bulk by {who}", "html": "<p>hi</p>"},
    )


@probe("GET /bulk-messages/{id}")
async def _job(w: World, who: str) -> httpx.Response:
    return await w.call(who, "GET", f"/v1/bulk-messages/{w.job_id}")


@probe("POST /bulk-messages/{id}/cancel")
async def _cancel(w: World, who: str) -> httpx.Response:
    """A fresh job of the assigned member, held by a lease nobody renews (so no worker
    finishes it first): the cancel is asked, and the job shows it only when it answered 200."""
    key = f"matrix-cancel-{uuid.uuid4().hex}"
    job_id = derived_id("job", w.firm.firm, "st_mia", key)
    assert await Leases(w.firm.app.state.runtime.database, holder="matrix").claim(
        f"bulk:{job_id}", seconds=600
    )
    started = await w.call(
        ASSIGNED,
        "POST",
        "/v1/bulk-messages",
        json={"account_ids": [LEE], "subject": "s", "html": "<p>h</p>"},
        headers={"Idempotency-Key": key},
    )
    assert started.status_code == 202 and started.json()["id"] == job_id, started.text
    response = await w.call(who, "POST", f"/v1/bulk-messages/{job_id}/cancel")
    status = (await w.call(OWNER, "GET", f"/v1/bulk-messages/{job_id}")).json()["status"]
    assert (status == "cancelling") is (response.status_code == 200)
    return response


def check_no_leak(w: World, who: str, response: httpx.Response) -> list[str]:
    if who not in OUTSIDERS:
        return []
    return [f"leaks {text!r}" for text in w.secrets if text in response.text]


def test_the_matrix_has_a_probe_per_row() -> None:
    ACCESS.assert_every_row_probed()


async def test_every_template_and_bulk_route_is_in_the_matrix(world: World) -> None:
    """Thread creation from a template is a row here, the route is in messaging's matrix."""
    ACCESS.assert_covers(
        world.firm.app,
        include=lambda path: path.startswith(("/v1/templates", "/v1/bulk-messages")),
        beyond={"POST /v1/threads"},
    )


@pytest.mark.parametrize(("row", "who", "expected"), ACCESS.cases())
async def test_access(world: World, row: str, who: str, expected: int) -> None:
    await ACCESS.check_cell(world, row, who, expected, leaks=check_no_leak)


@pytest.mark.parametrize("row", list(MATRIX))
async def test_no_token_is_401(world: World, row: str) -> None:
    await ACCESS.check_anonymous(
        world.firm.http,
        row,
        path_values={"template_id": world.template_id, "job_id": world.job_id},
        secrets=world.secrets,
    )
