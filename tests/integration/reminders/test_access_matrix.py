"""The access matrix of reminders' routes x the nine kinds of user (T7, Q1, N2).

- ``/threads/{id}/reminders``: staff who see the thread (T7: owner, admin, assigned, view-all,
  mentioned) read and change its reminders; its clients see it exist but may not (403);
  everyone else gets 404, as if it did not exist.
- ``/inbox``: every staff member has their own (other firms' staff too: their own, empty);
  clients have none (403). Marking an item read works only for its recipient (404 otherwise).
- ``/firm/notification-settings``: staff only.
Every row refuses a request without a token (401), and no body given to someone who cannot
see the thread names its subject. One messaging and one reminders service serve the module.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from threadline.contracts.topics import Topic

from ..access_matrix import AccessMatrix
from ..conftest import LIAM, eventually, liam_upserted, mark_topic, seed_directory, start_app
from .conftest import FAST, Firm, SmtpSink

pytestmark = pytest.mark.integration

SUBJECT = "Matrix secret subject"

# fmt: off
MATRIX: dict[str, tuple[int | None, ...]] = {
    #                                   owner admin assig unass vall  ment  cli   ocli  ofirm
    "GET /v1/threads/{t}/reminders":    (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "PUT /v1/threads/{t}/reminders":    (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "GET /v1/inbox":                    (200,  200,  200,  200,  200,  200,  403,  403,  200),
    "POST /v1/inbox/read-all":          (200,  200,  200,  200,  200,  200,  403,  403,  200),
    "POST /v1/inbox/{i}/read":          (404,  404,  200,  404,  404,  404,  403,  403,  404),
    "GET /v1/firm/notification-settings": (200, 200, 200,  200,  200,  200,  403,  403,  200),
}
# fmt: on
SETTINGS = {"enabled": True, "days_between": 3, "max_reminders": 1}


def route_of(row: str) -> str:
    return row.replace("{t}", "{thread_id}").replace("{i}", "{item_id}")


@dataclass
class World:
    firm: Firm
    thread_id: str
    item_id: str  # an inbox item of Mia's (the client replied in her thread)

    async def call(self, who: str, row: str) -> httpx.Response:
        method, path = row.split(" ", 1)
        url = path.format(t=self.thread_id, i=self.item_id)
        kwargs: dict[str, Any] = {"json": SETTINGS} if method == "PUT" else {}
        return await self.firm.on_reminders(who, method, url, **kwargs)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    run_id = uuid.uuid4().hex[:10]
    smtp = SmtpSink(mail_dir=Path(tmp_path_factory.mktemp("mail")))
    await smtp.start()
    try:
        async with AsyncExitStack() as stack:
            messaging_app, messaging = await start_app(stack, "messaging", run_id)
            # The thread is known to reminders before any cell runs (below), so only ids
            # unknown to the caller's firm would wait: no need to wait long for them.
            reminders_app, reminders = await start_app(
                stack,
                "reminders",
                run_id,
                smtp_port=smtp.port,
                **(FAST | {"thread_projection_wait_seconds": 0.5}),
            )
            name = f"firm_{run_id}"
            apps = [messaging_app, reminders_app]
            await seed_directory(apps, name, extra=[liam_upserted(name)])
            bootstrap = messaging_app.state.runtime.settings.kafka_bootstrap_servers
            firm = Firm(
                firm=name,
                http=messaging,
                app=messaging_app,
                reminders=reminders,
                reminders_app=reminders_app,
                reminders_from=await mark_topic(bootstrap, Topic.REMINDERS),
            )
            thread = await firm.new_thread(subject=SUBJECT)
            await firm.post("assigned member", thread["id"], html="<p>Liam?</p>", mentions=[LIAM])
            await firm.post("client", thread["id"], html="<p>reply</p>")  # an item for Mia

            async def mias_items() -> list[dict[str, Any]]:
                return list((await firm.inbox("assigned member"))["items"])

            [item, *_] = await eventually(
                mias_items, until=lambda items: len(items) >= 1, within=120
            )
            url = f"/v1/threads/{thread['id']}/reminders"
            await eventually(
                lambda: firm.on_reminders("owner", "GET", url),
                until=lambda r: r.status_code == 200,
                within=120,
            )
            yield World(firm=firm, thread_id=thread["id"], item_id=item["id"])
    finally:
        await smtp.stop()


ACCESS = AccessMatrix[World](MATRIX, route_of=route_of)


def _plain_call(row: str) -> Any:
    """The probe of a row whose call needs no setup: the route as it is, settings for PUT."""

    async def call(w: World, who: str) -> httpx.Response:
        return await w.call(who, row)

    return call


for _row in MATRIX:
    ACCESS.probe(_row)(_plain_call(_row))


def check_no_leak(w: World, who: str, response: httpx.Response) -> list[str]:
    if response.status_code >= 400 and SUBJECT in response.text:
        return ["leaks the thread's subject"]
    return []


def test_the_matrix_has_a_probe_per_row() -> None:
    ACCESS.assert_every_row_probed()


async def test_every_reminders_route_is_in_the_matrix(world: World) -> None:
    ACCESS.assert_covers(
        world.firm.reminders_app, include=lambda path: path.startswith("/v1/") and path != "/v1/me"
    )


@pytest.mark.parametrize(("row", "who", "expected"), ACCESS.cases())
async def test_access(world: World, row: str, who: str, expected: int) -> None:
    await ACCESS.check_cell(world, row, who, expected, leaks=check_no_leak)


@pytest.mark.parametrize("row", list(MATRIX))
async def test_no_token_is_401(world: World, row: str) -> None:
    await ACCESS.check_anonymous(
        world.firm.reminders,
        row,
        path_values={"thread_id": world.thread_id, "item_id": world.item_id},
        secrets=[SUBJECT],
    )


async def test_reminder_settings_reject_bad_input_with_problem_details(world: World) -> None:
    url = f"/v1/threads/{world.thread_id}/reminders"
    for body in (
        {"enabled": True, "days_between": 0},
        {"enabled": True, "days_between": 366},
        {"enabled": True, "max_reminders": 51},
        {"enabled": "yes"},
        {"enabled": True, "extra": 1},
        {},
    ):
        response = await world.firm.on_reminders("owner", "PUT", url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]
    too_long = await world.firm.on_reminders("owner", "GET", f"/v1/threads/{'x' * 300}/reminders")
    assert too_long.status_code == 422
