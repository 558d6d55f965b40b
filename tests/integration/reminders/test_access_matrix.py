"""The access matrix of reminders' routes x the nine kinds of user (T7, Q1, N2).

- ``/threads/{id}/reminders``: staff who see the thread (T7: owner, admin, assigned, view-all,
  mentioned) read and change its reminders; its clients see it exist but may not (403);
  everyone else gets 404, as if it did not exist.
- ``/inbox``: every staff member has their own (other firms' staff too: their own, empty);
  clients have none (403). Marking an item read works only for its recipient (404 otherwise).
- ``/firm/notification-settings``: staff only.
Every row refuses a request without a token (401), and no body given to someone who cannot
see the thread names its subject.
"""

from __future__ import annotations

from typing import Any

import pytest

from threadline.contracts import new_event
from threadline.contracts.events.directory import StaffMemberUpserted

from ..conftest import ServiceFactory, eventually, token_for
from .conftest import Firm, SmtpSink, start_firm

pytestmark = pytest.mark.integration

USERS = (
    "owner",
    "admin",
    "assigned member",
    "unassigned member",
    "member with view-all",
    "mentioned member",
    "client",
    "other client",
    "other firm",
)
SUBJECT = "Matrix secret subject"

# fmt: off
MATRIX: dict[str, tuple[int, ...]] = {
    #                                   owner admin assig unass vall  ment  cli   ocli  ofirm
    "GET /v1/threads/{t}/reminders":    (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "PUT /v1/threads/{t}/reminders":    (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "GET /v1/inbox":                    (200,  200,  200,  200,  200,  200,  403,  403,  200),
    "POST /v1/inbox/read-all":          (200,  200,  200,  200,  200,  200,  403,  403,  200),
    "POST /v1/inbox/{i}/read":          (404,  404,  200,  404,  404,  404,  403,  403,  404),
    "GET /v1/firm/notification-settings": (200, 200, 200,  200,  200,  200,  403,  403,  200),
}
# fmt: on


class MatrixFirm(Firm):
    def token(self, who: str) -> str:
        if who == "mentioned member":
            return token_for(self.firm, role="member", sub="st_liam")
        return super().token(who)


async def test_access_matrix_of_reminders_routes(
    start_service: ServiceFactory, run_id: str, smtp: SmtpSink
) -> None:
    base = await start_firm(start_service, run_id, smtp)
    firm = MatrixFirm(
        firm=base.firm,
        http=base.http,
        app=base.app,
        reminders=base.reminders,
        reminders_app=base.reminders_app,
    )
    liam = new_event(
        StaffMemberUpserted(
            user_id="st_liam", name="Liam", email="liam@firm.example", role="member"
        ),
        firm=firm.firm,
        key=firm.firm,
        producer="directory-seed",
    )
    await firm.publish(liam)
    for app in (firm.app, firm.reminders_app):
        staff = app.state.runtime.database["directory_staff"]
        await eventually(
            lambda staff=staff: staff.count_documents({"firm": firm.firm}),
            until=lambda count: count == 5,
            within=120,
        )
    thread = await firm.new_thread(subject=SUBJECT)
    await firm.post("assigned member", thread["id"], html="<p>Liam?</p>", mentions=["st_liam"])
    await firm.post("client", thread["id"], html="<p>reply</p>")  # an inbox item for Mia

    async def mias_items() -> list[dict[str, Any]]:
        return list((await firm.inbox("assigned member"))["items"])

    [item, *_] = await eventually(mias_items, until=lambda items: len(items) >= 1, within=120)
    await eventually(
        lambda: firm.on_reminders("owner", "GET", f"/v1/threads/{thread['id']}/reminders"),
        until=lambda r: r.status_code == 200,
        within=120,
    )
    body = {"enabled": True, "days_between": 3, "max_reminders": 1}
    failures: list[str] = []
    for row, expected in MATRIX.items():
        method, path = row.split(" ", 1)
        url = path.format(t=thread["id"], i=item["id"])
        kwargs: dict[str, Any] = {"json": body} if method == "PUT" else {}
        anonymous = await firm.reminders.request(method, url, **kwargs)
        if anonymous.status_code != 401:
            failures.append(f"{row} | no token: {anonymous.status_code}")
        for who, status in zip(USERS, expected, strict=True):
            response = await firm.on_reminders(who, method, url, **kwargs)
            if response.status_code != status:
                failures.append(f"{row} | {who}: {response.status_code} != {status}")
            if response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json")
                assert SUBJECT not in response.text, f"{row} | {who} leaks the subject"
    assert not failures, "\n".join(failures)


async def test_reminder_settings_reject_bad_input_with_problem_details(firm: Firm) -> None:
    thread = await firm.new_thread()
    url = f"/v1/threads/{thread['id']}/reminders"
    await eventually(
        lambda: firm.on_reminders("owner", "GET", url),
        until=lambda r: r.status_code == 200,
        within=120,
    )
    for body in (
        {"enabled": True, "days_between": 0},
        {"enabled": True, "days_between": 366},
        {"enabled": True, "max_reminders": 51},
        {"enabled": "yes"},
        {"enabled": True, "extra": 1},
        {},
    ):
        response = await firm.on_reminders("owner", "PUT", url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]
    too_long = await firm.on_reminders("owner", "GET", f"/v1/threads/{'x' * 300}/reminders")
    assert too_long.status_code == 422
