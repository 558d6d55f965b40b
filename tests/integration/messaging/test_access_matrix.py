"""The access matrix: every messaging endpoint x every kind of user (SPEC T7, M3, R2).

One messaging service and one seeded firm serve the whole module. ``MATRIX`` is the
table under test: one row per endpoint (a method and path, sometimes with a variant
such as "internal message"), one column per user, the exact status each user must
get. Every cell is its own test case, named "<endpoint> | <user>", so a failure says
which endpoint and which user.

Who may do what (SPEC):

- T7: a thread is visible to the client users of its account, owners, admins, staff with
  access to the account or view-all access, and staff mentioned in it (M2). For everyone
  else it does not exist: 404, and the body names nothing of it.
- T1/T3: staff with access to the account and (by default) its clients create threads;
  a mention gives access to one thread, not to its account.
- T5: staff who see a thread archive and reopen it; clients cannot (403).
- M3: internal messages are staff-only: to a client they do not exist (404), and they
  never show in lists, context, pins, previews, last-message snippets or unread counts.
- M8: staff edit their own messages; nobody edits someone else's; clients never edit;
  the edit history is for staff.
- M10: whoever sees a message may pin and unpin it; internal pins stay staff-only.
- M11: only the sender deletes a message.
- R2: clients never see read status. D1-D3: a draft is its owner's alone.
- T3/K7: firm chat settings are read by every user of the firm, changed only by owners
  and admins, and one firm's change never touches another firm.
- ``GET /v1/me`` (the kit's identity echo) answers every valid token with its own claims.

Besides each cell's status, every response goes through ``check_no_leak``: users who
cannot see the matrix threads find none of their subjects or texts in any body (200 lists
included), and clients find no internal text, no pre-edit text, no one else's draft and
no read status in any body. Also here: every row refuses a request without a token
(401), every route the app publishes has a row, and a client's read never marks an
internal message as read by the client (R1, M3).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ..access_matrix import (
    ADMIN,
    ASSIGNED,
    CLIENT,
    MENTIONED,
    OTHER_CLIENT,
    OTHER_FIRM,
    OWNER,
    UNASSIGNED,
    VIEW_ALL,
    AccessMatrix,
)
from ..conftest import LIAM, liam_upserted, seed_directory, start_app
from .conftest import LEE, PATEL, Firm

pytestmark = pytest.mark.integration

STAFF_SEEING = frozenset({OWNER, ADMIN, ASSIGNED, VIEW_ALL, MENTIONED})
SEES_LEE_THREADS = STAFF_SEEING | {CLIENT}  # the matrix threads A and B (account LEE)
SEES_PATEL_THREAD = frozenset({OWNER, ADMIN, UNASSIGNED, VIEW_ALL, MENTIONED, OTHER_CLIENT})
CLIENTS = frozenset({CLIENT, OTHER_CLIENT})

# Expected status per user; None = the case cannot be set up for that user (see STAND_IN).
# fmt: off
MATRIX: dict[str, tuple[int | None, ...]] = {
    #                                        owner admin assig unass vall  ment  cli   ocli  ofirm
    "POST /threads":                         (201,  201,  201,  404,  201,  404,  201,  404,  404),
    "POST /threads [internal first message]": (201, 201,  201,  404,  201,  404,  403,  404,  404),
    "GET /threads":                          (200,  200,  200,  200,  200,  200,  200,  200,  200),
    "GET /threads?account_id=LEE":           (200,  200,  200,  200,  200,  200,  200,  200,  200),
    "GET /threads/{id}":                     (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "POST /threads/{id}/archive":            (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "POST /threads/{id}/reopen":             (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "POST /messages":                        (201,  201,  201,  404,  201,  201,  201,  404,  404),
    "POST /messages [internal]":             (201,  201,  201,  404,  201,  201,  403,  404,  404),
    "POST /messages [reply to internal]":    (201,  201,  201,  404,  201,  201,  404,  404,  404),
    "GET /messages":                         (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "GET /messages/{m}/context":             (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "GET /messages/{m}/context [internal]":  (200,  200,  200,  404,  200,  200,  404,  404,  404),
    "GET /messages/{m}/context [via other thread]": (404, 404, 404, 404, 404, 404, 404, 404, 404),
    "PATCH /messages/{m} [Mia's]":           (403,  403,  200,  404,  403,  403,  403,  404,  404),
    "PATCH /messages/{m} [Mia's internal]":  (403,  403,  200,  404,  403,  403,  404,  404,  404),
    "PATCH /messages/{m} [own]":             (200,  200,  200,  404,  200,  200,  403,  None, 404),
    "GET /messages/{m}/history":             (200,  200,  200,  404,  200,  200,  403,  403,  404),
    "GET /messages/{m}/history [internal]":  (200,  200,  200,  404,  200,  200,  403,  403,  404),
    "DELETE /messages/{m} [Mia's]":          (403,  403,  204,  404,  403,  403,  403,  404,  404),
    "DELETE /messages/{m} [Mia's internal]": (403,  403,  204,  404,  403,  403,  404,  404,  404),
    "DELETE /messages/{m} [own]":            (204,  204,  204,  404,  204,  204,  204,  None, 404),
    "PUT /messages/{m}/pin":                 (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "PUT /messages/{m}/pin [internal]":      (200,  200,  200,  404,  200,  200,  404,  404,  404),
    "PUT /messages/{m}/pin [via other thread]": (404, 404, 404, 404,  404,  404,  404,  404,  404),
    "DELETE /messages/{m}/pin":              (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "DELETE /messages/{m}/pin [internal]":   (200,  200,  200,  404,  200,  200,  404,  404,  404),
    "GET /pins":                             (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "POST /read":                            (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "PUT /draft":                            (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "PUT /draft [internal]":                 (200,  200,  200,  404,  200,  200,  403,  404,  404),
    "GET /draft [own]":                      (200,  200,  200,  404,  200,  200,  200,  404,  404),
    "GET /draft [Mia's]":                    (404,  404,  200,  404,  404,  404,  404,  404,  404),
    "DELETE /draft":                         (204,  204,  204,  404,  204,  204,  204,  404,  404),
    "GET /firm/chat-settings":               (200,  200,  200,  200,  200,  200,  200,  200,  200),
    "PATCH /firm/chat-settings":             (200,  200,  403,  403,  403,  403,  403,  403,  200),
    "GET /me":                               (200,  200,  200,  200,  200,  200,  200,  200,  200),
    "GET /me/summary":                       (403,  403,  403,  403,  403,  403,  200,  200,  403),
}
# fmt: on

# For "own message/draft" rows: whose token authors it. The unassigned member is st_noah,
# who authors as the member with view-all; the other firm's owner is st_olivia, who
# authors as this firm's owner. The other client has no way to author anything there.
STAND_IN: dict[str, str | None] = {UNASSIGNED: VIEW_ALL, OTHER_FIRM: OWNER, OTHER_CLIENT: None}


@dataclass
class World:
    """The module's firm and what was seeded in it."""

    firm: Firm
    tag: str
    a: str = ""  # thread A (LEE): the read-only thread the read rows look at
    b: str = ""  # thread B (LEE): where the rows that change things act
    p: str = ""  # a PATEL thread: visible to the other client, not to the client
    ids: dict[str, str] = field(default_factory=dict)  # message ids by name
    at: dict[str, str] = field(default_factory=dict)  # message posted_at by name
    texts: dict[str, str] = field(default_factory=dict)  # text by name

    def text(self, name: str) -> str:
        return self.texts[name]

    @property
    def staff_only(self) -> list[str]:
        """Texts no client may ever read (M3, M8 history, D3)."""
        names = ("a_internal_pin", "a_internal_last", "a_mention_v1", "mia_draft", "b_internal")
        return [self.texts[name] for name in names]

    @property
    def all_secrets(self) -> list[str]:
        """Everything of threads A and B: nothing for users who cannot see them (T7)."""
        return list(self.texts.values())

    async def call(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.firm.call(who, method, url, **kwargs)

    async def post(self, who: str, thread_id: str, html: str, **fields: Any) -> dict[str, Any]:
        response = await self.firm.post(who, thread_id, html=html, **fields)
        assert response.status_code == 201, response.text
        return response.json()

    async def staff_view(self, thread_id: str, message_id: str) -> dict[str, Any] | None:
        """The message as the owner sees it, or None once it is gone."""
        response = await self.call(
            OWNER,
            "GET",
            f"/v1/threads/{thread_id}/messages/{message_id}/context",
            params={"radius": 0},
        )
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()["messages"][0]


# --- the service and the seeded firm, once per module -------------------------------------


async def _seed_threads(w: World) -> None:
    tag = w.tag
    w.texts = {
        "a_subject": f"Lee estate plan {tag}",
        "a_opening": f"Opening note {tag}",
        "a_client": f"Client question {tag}",
        "a_mention_v1": f"Liam please review first version {tag}",
        "a_mention": f"Liam please review {tag}",
        "a_internal_pin": f"Internal pinned secret {tag}",
        "a_public_pin": f"Public pinned note {tag}",
        "a_internal_last": f"Internal last word {tag}",
        "mia_draft": f"Mia private draft {tag}",
        "b_subject": f"Lee payroll {tag}",
        "b_opening": f"Payroll opening {tag}",
        "b_internal": f"Payroll internal {tag}",
        "b_public": f"Payroll public {tag}",
    }
    t = w.texts
    changed = await w.call(
        OWNER,
        "PATCH",
        "/v1/firm/chat-settings",
        json={"show_message_context_in_notifications": True},
    )
    assert changed.status_code == 200, changed.text

    # Thread A: public, client, mention (edited), internal pinned, public pinned, internal last.
    a = await w.firm.new_thread(
        ASSIGNED, subject=t["a_subject"], message={"html": f"<p>{t['a_opening']}</p>"}
    )
    w.a = a["id"]
    w.ids["a_opening"] = a["last_message"]["message_id"]
    for name, who, fields in (
        ("a_client", CLIENT, {}),
        ("a_mention", ASSIGNED, {"mentions": [LIAM]}),
        ("a_internal_pin", ASSIGNED, {"internal": True}),
        ("a_public_pin", ASSIGNED, {}),
        ("a_internal_last", ADMIN, {"internal": True}),
    ):
        html = t["a_mention_v1"] if name == "a_mention" else t[name]
        posted = await w.post(who, w.a, f"<p>{html}</p>", **fields)
        w.ids[name], w.at[name] = posted["id"], posted["posted_at"]
    edited = await w.call(
        ASSIGNED,
        "PATCH",
        f"/v1/threads/{w.a}/messages/{w.ids['a_mention']}",
        json={"html": t["a_mention"]},
    )
    assert edited.status_code == 200, edited.text
    for name in ("a_internal_pin", "a_public_pin"):
        url = f"/v1/threads/{w.a}/messages/{w.ids[name]}/pin"
        assert (await w.call(OWNER, "PUT", url)).status_code == 200
    assert (await w.call(OWNER, "POST", f"/v1/threads/{w.a}/read", json={})).status_code == 200
    saved = await w.call(ASSIGNED, "PUT", f"/v1/threads/{w.a}/draft", json={"html": t["mia_draft"]})
    assert saved.status_code == 200, saved.text

    # Thread B: Liam mentioned from the first message; one internal and one public message.
    b = await w.firm.new_thread(
        ASSIGNED,
        subject=t["b_subject"],
        message={"html": t["b_opening"], "mentions": [LIAM]},
    )
    w.b = b["id"]
    w.ids["b_internal"] = (await w.post(ASSIGNED, w.b, t["b_internal"], internal=True))["id"]
    w.ids["b_public"] = (await w.post(ASSIGNED, w.b, t["b_public"]))["id"]

    p = await w.firm.new_thread(
        OWNER,
        account_id=PATEL,
        subject=f"Patel books {tag}",
        message={"html": "Patel opening"},
        to_contact_ids=["ct_raj_patel"],
    )
    w.p = p["id"]


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    run_id = uuid.uuid4().hex[:10]
    async with AsyncExitStack() as stack:
        app, http = await start_app(stack, "messaging", run_id)
        name = f"firm_{run_id}"
        await seed_directory([app], name, extra=[liam_upserted(name)])  # the mentioned member
        w = World(firm=Firm(firm=name, http=http, app=app), tag=run_id)
        await _seed_threads(w)
        yield w


# --- one probe per matrix row ------------------------------------------------------------
# A probe makes the call for ``who`` (setting up and restoring whatever it needs) and
# asserts what follows from the status it got; the status itself is checked by the test.


def route_of(row: str) -> str:
    """The full route a MATRIX row names, e.g. "GET /v1/threads/{thread_id}/pins"."""
    endpoint = row.partition(" [")[0].partition("?")[0]
    method, _, path = endpoint.partition(" ")
    path = path.replace("{id}", "{thread_id}").replace("{m}", "{message_id}")
    if path != "/me" and not path.startswith(("/threads", "/firm/", "/me/")):
        path = "/threads/{thread_id}" + path
    return f"{method} /v1{path}"


ACCESS = AccessMatrix[World](MATRIX, route_of=route_of)
probe = ACCESS.probe


def thread_ids(response: httpx.Response) -> list[str]:
    return [row["id"] for row in response.json()["threads"]]


def texts_of(response: httpx.Response) -> list[str]:
    return [message["text"] for message in response.json()["messages"]]


A_STAFF_TEXTS = (
    "a_opening",
    "a_client",
    "a_mention",
    "a_internal_pin",
    "a_public_pin",
    "a_internal_last",
)
A_CLIENT_TEXTS = ("a_opening", "a_client", "a_mention", "a_public_pin")
# Unread in thread A: the owner read everything; nobody counts their own messages; clients
# do not count internal messages (M3).
A_UNREAD = {OWNER: 0, ADMIN: 5, ASSIGNED: 2, VIEW_ALL: 6, MENTIONED: 6, CLIENT: 3}


def expected_a_texts(w: World, who: str) -> list[str]:
    names = A_CLIENT_TEXTS if who in CLIENTS else A_STAFF_TEXTS
    return [w.text(name) for name in names]


def same_instant(a: str, b: str) -> bool:
    """Equal to the millisecond (MongoDB keeps milliseconds)."""

    def parse(value: str) -> datetime:
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    return abs(parse(a) - parse(b)) < timedelta(milliseconds=1)


def check_a_row(w: World, who: str, row: dict[str, Any]) -> None:
    """Thread A as a list row or header: snippet, activity and unread count per user (M3)."""
    assert row["subject"] == w.text("a_subject")
    if who in CLIENTS:
        assert row["last_message"]["text"] == w.text("a_public_pin")
        assert same_instant(row["last_activity_at"], w.at["a_public_pin"])
    else:
        assert row["last_message"]["text"] == w.text("a_internal_last")
        assert same_instant(row["last_activity_at"], w.at["a_internal_last"])
    assert row["unread_count"] == A_UNREAD[who]


async def create_thread(w: World, who: str, *, internal: bool) -> httpx.Response:
    body = {
        "account_id": LEE,
        "subject": f"created by {who} {w.tag}",
        "message": {"html": f"first message by {who}", "internal": internal},
    }
    response = await w.call(who, "POST", "/v1/threads", json=body)
    if response.status_code == 201:
        assert response.json()["account_id"] == LEE
        assert response.json()["last_message"]["text"] == f"first message by {who}"
    return response


@probe("POST /threads")
async def _create(w: World, who: str) -> httpx.Response:
    return await create_thread(w, who, internal=False)


@probe("POST /threads [internal first message]")
async def _create_internal(w: World, who: str) -> httpx.Response:
    return await create_thread(w, who, internal=True)


@probe("GET /threads")
async def _list(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "GET", "/v1/threads", params={"limit": 100})
    if response.status_code == 200:
        ids = thread_ids(response)
        assert (w.a in ids) == (who in SEES_LEE_THREADS), f"thread A listed: {w.a in ids}"
        assert (w.b in ids) == (who in SEES_LEE_THREADS), f"thread B listed: {w.b in ids}"
        assert (w.p in ids) == (who in SEES_PATEL_THREAD), f"PATEL thread listed: {w.p in ids}"
        if w.a in ids:
            check_a_row(w, who, response.json()["threads"][ids.index(w.a)])
    return response


@probe("GET /threads?account_id=LEE")
async def _list_account(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "GET", "/v1/threads", params={"limit": 100, "account_id": LEE})
    if response.status_code == 200:
        ids = thread_ids(response)
        assert (w.a in ids) == (who in SEES_LEE_THREADS), f"thread A listed: {w.a in ids}"
        assert w.p not in ids
    return response


@probe("GET /threads/{id}")
async def _get(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "GET", f"/v1/threads/{w.a}")
    if response.status_code == 200:
        check_a_row(w, who, response.json())
    return response


async def thread_status(w: World, thread_id: str) -> str:
    return str((await w.call(OWNER, "GET", f"/v1/threads/{thread_id}")).json()["status"])


@probe("POST /threads/{id}/archive")
async def _archive(w: World, who: str) -> httpx.Response:
    try:
        response = await w.call(who, "POST", f"/v1/threads/{w.b}/archive")
        if response.status_code == 200:
            assert response.json()["status"] == "archived"
        else:
            assert await thread_status(w, w.b) == "active"
        return response
    finally:
        await w.call(OWNER, "POST", f"/v1/threads/{w.b}/reopen")


@probe("POST /threads/{id}/reopen")
async def _reopen(w: World, who: str) -> httpx.Response:
    assert (await w.call(OWNER, "POST", f"/v1/threads/{w.b}/archive")).status_code == 200
    try:
        response = await w.call(who, "POST", f"/v1/threads/{w.b}/reopen")
        if response.status_code == 200:
            assert response.json()["status"] == "active"
        else:
            assert await thread_status(w, w.b) == "archived"
        return response
    finally:
        await w.call(OWNER, "POST", f"/v1/threads/{w.b}/reopen")


@probe("POST /messages")
async def _post(w: World, who: str) -> httpx.Response:
    response = await w.firm.post(who, w.b, html=f"reply by {who}")
    if response.status_code == 201:
        assert response.json()["text"] == f"reply by {who}"
        assert response.json()["internal"] is False
    return response


@probe("POST /messages [internal]")
async def _post_internal(w: World, who: str) -> httpx.Response:
    response = await w.firm.post(who, w.b, html=f"note by {who}", internal=True)
    if response.status_code == 201:
        assert response.json()["internal"] is True
    return response


@probe("POST /messages [reply to internal]")
async def _post_reply_to_internal(w: World, who: str) -> httpx.Response:
    response = await w.firm.post(who, w.b, html="re", reply_to=w.ids["b_internal"])
    if response.status_code == 201:
        assert response.json()["internal"] is True, "M3: a reply to an internal message"
    return response


@probe("GET /messages")
async def _messages(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "GET", f"/v1/threads/{w.a}/messages", params={"limit": 200})
    if response.status_code == 200:
        assert texts_of(response) == expected_a_texts(w, who)
    return response


@probe("GET /messages/{m}/context")
async def _context(w: World, who: str) -> httpx.Response:
    url = f"/v1/threads/{w.a}/messages/{w.ids['a_mention']}/context"
    response = await w.call(who, "GET", url, params={"radius": 10})
    if response.status_code == 200:
        assert texts_of(response) == expected_a_texts(w, who)
    return response


@probe("GET /messages/{m}/context [internal]")
async def _context_internal(w: World, who: str) -> httpx.Response:
    url = f"/v1/threads/{w.a}/messages/{w.ids['a_internal_pin']}/context"
    response = await w.call(who, "GET", url, params={"radius": 10})
    if response.status_code == 200:
        assert texts_of(response) == expected_a_texts(w, who)
    return response


@probe("GET /messages/{m}/context [via other thread]")
async def _context_elsewhere(w: World, who: str) -> httpx.Response:
    """A's message asked for through the PATEL thread: messages belong to their thread."""
    return await w.call(who, "GET", f"/v1/threads/{w.p}/messages/{w.ids['a_opening']}/context")


async def edit(w: World, who: str, author: str | None, *, internal: bool) -> httpx.Response:
    assert author is not None
    target = await w.post(author, w.b, f"to edit, by {author}", internal=internal)
    url = f"/v1/threads/{w.b}/messages/{target['id']}"
    response = await w.call(who, "PATCH", url, json={"html": f"edited by {who}"})
    after = await w.staff_view(w.b, target["id"])
    assert after is not None
    if response.status_code == 200:
        assert response.json()["edited"] is True
        assert after["text"] == f"edited by {who}" and after["edited"] is True
    else:
        assert after["text"] == f"to edit, by {author}" and after["edited"] is False
    return response


@probe("PATCH /messages/{m} [Mia's]")
async def _edit_mias(w: World, who: str) -> httpx.Response:
    return await edit(w, who, ASSIGNED, internal=False)


@probe("PATCH /messages/{m} [Mia's internal]")
async def _edit_mias_internal(w: World, who: str) -> httpx.Response:
    return await edit(w, who, ASSIGNED, internal=True)


@probe("PATCH /messages/{m} [own]")
async def _edit_own(w: World, who: str) -> httpx.Response:
    return await edit(w, who, STAND_IN.get(who, who), internal=False)


@probe("GET /messages/{m}/history")
async def _history(w: World, who: str) -> httpx.Response:
    url = f"/v1/threads/{w.a}/messages/{w.ids['a_mention']}/history"
    response = await w.call(who, "GET", url)
    if response.status_code == 200:
        assert [v["text"] for v in response.json()["versions"]] == [w.text("a_mention_v1")]
    return response


@probe("GET /messages/{m}/history [internal]")
async def _history_internal(w: World, who: str) -> httpx.Response:
    url = f"/v1/threads/{w.a}/messages/{w.ids['a_internal_pin']}/history"
    response = await w.call(who, "GET", url)
    if response.status_code == 200:
        assert response.json()["versions"] == []
    return response


async def delete(w: World, who: str, author: str | None, *, internal: bool) -> httpx.Response:
    assert author is not None
    target = await w.post(author, w.b, f"to delete, by {author}", internal=internal)
    response = await w.call(who, "DELETE", f"/v1/threads/{w.b}/messages/{target['id']}")
    after = await w.staff_view(w.b, target["id"])
    if response.status_code == 204:
        assert after is None, "M11: a deleted message is gone"
    else:
        assert after is not None and after["text"] == f"to delete, by {author}"
    return response


@probe("DELETE /messages/{m} [Mia's]")
async def _delete_mias(w: World, who: str) -> httpx.Response:
    return await delete(w, who, ASSIGNED, internal=False)


@probe("DELETE /messages/{m} [Mia's internal]")
async def _delete_mias_internal(w: World, who: str) -> httpx.Response:
    return await delete(w, who, ASSIGNED, internal=True)


@probe("DELETE /messages/{m} [own]")
async def _delete_own(w: World, who: str) -> httpx.Response:
    return await delete(w, who, STAND_IN.get(who, who), internal=False)


async def pin(w: World, who: str, *, internal: bool, pinned: bool) -> httpx.Response:
    target = await w.post(ASSIGNED, w.b, "pin target", internal=internal)
    url = f"/v1/threads/{w.b}/messages/{target['id']}/pin"
    if not pinned:  # unpinning: start from a pinned message
        assert (await w.call(OWNER, "PUT", url)).status_code == 200
    response = await w.call(who, "PUT" if pinned else "DELETE", url)
    after = await w.staff_view(w.b, target["id"])
    assert after is not None
    changed = response.status_code == 200
    assert after["pinned"] is (pinned if changed else not pinned)
    if changed:
        assert response.json()["pinned"] is pinned
    return response


@probe("PUT /messages/{m}/pin")
async def _pin(w: World, who: str) -> httpx.Response:
    return await pin(w, who, internal=False, pinned=True)


@probe("PUT /messages/{m}/pin [internal]")
async def _pin_internal(w: World, who: str) -> httpx.Response:
    return await pin(w, who, internal=True, pinned=True)


@probe("DELETE /messages/{m}/pin")
async def _unpin(w: World, who: str) -> httpx.Response:
    return await pin(w, who, internal=False, pinned=False)


@probe("DELETE /messages/{m}/pin [internal]")
async def _unpin_internal(w: World, who: str) -> httpx.Response:
    return await pin(w, who, internal=True, pinned=False)


@probe("PUT /messages/{m}/pin [via other thread]")
async def _pin_elsewhere(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "PUT", f"/v1/threads/{w.p}/messages/{w.ids['a_opening']}/pin")
    assert (await w.staff_view(w.a, w.ids["a_opening"]) or {}).get("pinned") is False
    return response


@probe("GET /pins")
async def _pins(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "GET", f"/v1/threads/{w.a}/pins")
    if response.status_code == 200:
        names = ["a_public_pin"] if who in CLIENTS else ["a_internal_pin", "a_public_pin"]
        assert sorted(texts_of(response)) == sorted(w.text(name) for name in names)
    return response


@probe("POST /read")
async def _read(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "POST", f"/v1/threads/{w.b}/read", json={})
    if response.status_code == 200:
        assert response.json()["thread_id"] == w.b
        assert response.json()["last_read_seq"] >= 3
    return response


async def save_draft(w: World, who: str, *, internal: bool) -> httpx.Response:
    url = f"/v1/threads/{w.b}/draft"
    html = f"draft by {who} {w.tag}"
    try:
        response = await w.call(who, "PUT", url, json={"html": html, "internal": internal})
        if response.status_code == 200:
            assert response.json()["html"] == html
            assert response.json()["internal"] is internal
            assert (await w.call(who, "GET", url)).json()["html"] == html
        return response
    finally:
        await w.call(who, "DELETE", url)


@probe("PUT /draft")
async def _save_draft(w: World, who: str) -> httpx.Response:
    return await save_draft(w, who, internal=False)


@probe("PUT /draft [internal]")
async def _save_internal_draft(w: World, who: str) -> httpx.Response:
    return await save_draft(w, who, internal=True)


@probe("GET /draft [own]")
async def _get_own_draft(w: World, who: str) -> httpx.Response:
    """D1: a draft comes back to its owner; the same user id without access gets 404."""
    url = f"/v1/threads/{w.b}/draft"
    author = STAND_IN.get(who, who)
    html = f"own draft {author} {w.tag}"
    if author is not None:
        assert (await w.call(author, "PUT", url, json={"html": html})).status_code == 200
    try:
        response = await w.call(who, "GET", url)
        if response.status_code == 200:
            assert response.json()["html"] == html
        else:
            assert html not in response.text
        return response
    finally:
        if author is not None:
            await w.call(author, "DELETE", url)


@probe("GET /draft [Mia's]")
async def _get_mias_draft(w: World, who: str) -> httpx.Response:
    """D3: only Mia has a draft in thread A; nobody else sees it."""
    response = await w.call(who, "GET", f"/v1/threads/{w.a}/draft")
    if who != ASSIGNED:
        assert w.text("mia_draft") not in response.text
    elif response.status_code == 200:
        assert response.json()["html"] == w.text("mia_draft")
    return response


@probe("DELETE /draft")
async def _delete_draft(w: World, who: str) -> httpx.Response:
    url = f"/v1/threads/{w.b}/draft"
    author = STAND_IN.get(who, who)
    if author is not None:
        assert (await w.call(author, "PUT", url, json={"html": "to delete"})).status_code == 200
    try:
        response = await w.call(who, "DELETE", url)
        if author is not None:
            left = (await w.call(author, "GET", url)).status_code
            assert left == (404 if response.status_code == 204 else 200), f"draft left: {left}"
        return response
    finally:
        if author is not None:
            await w.call(author, "DELETE", url)


@probe("GET /firm/chat-settings")
async def _get_settings(w: World, who: str) -> httpx.Response:
    response = await w.call(who, "GET", "/v1/firm/chat-settings")
    if response.status_code == 200:
        # This firm turned the K7 setting on; the other firm sees its own (default) settings.
        ours = response.json()["show_message_context_in_notifications"]
        assert ours is (who != OTHER_FIRM)
    return response


@probe("PATCH /firm/chat-settings")
async def _change_settings(w: World, who: str) -> httpx.Response:
    async def current() -> dict[str, Any]:
        settings: dict[str, Any] = (await w.call(OWNER, "GET", "/v1/firm/chat-settings")).json()
        return settings

    before = await current()
    flipped = not before["clients_can_create_threads"]  # a real change (no-ops keep revision)
    response = await w.call(
        who, "PATCH", "/v1/firm/chat-settings", json={"clients_can_create_threads": flipped}
    )
    changed_here = response.status_code == 200 and who != OTHER_FIRM
    assert (await current())["revision"] == before["revision"] + (1 if changed_here else 0)
    return response


@probe("GET /me")
async def _me(w: World, who: str) -> httpx.Response:
    """The kit's identity echo: the caller's own token, nothing else."""
    response = await w.call(who, "GET", "/v1/me")
    if response.status_code == 200:
        me = response.json()
        assert me["kind"] == ("client" if who in CLIENTS else "staff")
        assert me["firm"] == (f"{w.firm.firm}_other" if who == OTHER_FIRM else w.firm.firm)
    return response


@probe("GET /me/summary")
async def _summary(w: World, who: str) -> httpx.Response:
    """N3: a client's own counts; numbers only, nothing of any thread."""
    response = await w.call(who, "GET", "/v1/me/summary")
    if response.status_code == 200:
        assert set(response.json()) == {
            "threads_with_unread",
            "unread_messages",
            "threads_with_open_tasks",
            "open_tasks",
        }
    return response


# --- what no response may contain ----------------------------------------------------------


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def check_no_leak(w: World, who: str, response: httpx.Response) -> list[str]:
    """T7: nothing of threads A/B for users who cannot see them; M3/R2/D3 for clients."""
    problems = []
    body = response.text
    if who not in SEES_LEE_THREADS:
        problems += [f"leaks {text!r}" for text in w.all_secrets if text in body]
    if who in CLIENTS:
        problems += [f"leaks staff-only {text!r}" for text in w.staff_only if text in body]
        # An id the client itself sent may come back in an error; any other is a leak.
        sent = str(response.request.url) + response.request.content.decode()
        internal_ids = (w.ids["a_internal_pin"], w.ids["a_internal_last"], w.ids["b_internal"])
        problems += [
            f"leaks internal message id {i}" for i in internal_ids if i in body and i not in sent
        ]
        if body and response.headers.get("content-type", "").startswith("application/json"):
            for node in _walk(response.json()):
                leaked = {"read_at", "mentioned_staff"} & node.keys()
                if "author" in node and "seq" in node and "status" in node:
                    leaked.add("status")
                problems += [f"R2: shows {key!r} to a client" for key in sorted(leaked)]
    return problems


# --- the tests -----------------------------------------------------------------------------


def test_the_matrix_has_a_probe_per_row() -> None:
    ACCESS.assert_every_row_probed()


async def test_every_messaging_route_is_in_the_matrix(world: World) -> None:
    """Every HTTP endpoint the messaging app publishes (its OpenAPI paths) has a row
    (templates and bulk messages: in tests/integration/templates/test_access_matrix.py)."""
    ACCESS.assert_covers(
        world.firm.app,
        include=lambda path: (
            path.startswith("/v1/") and not path.startswith(("/v1/templates", "/v1/bulk-messages"))
        ),
    )


@pytest.mark.parametrize(("row", "who", "expected"), ACCESS.cases())
async def test_access(world: World, row: str, who: str, expected: int) -> None:
    """One cell of MATRIX: the exact status, what follows from it, and no leak (T7, M3, R2)."""
    await ACCESS.check_cell(world, row, who, expected, leaks=check_no_leak)


@pytest.mark.parametrize("row", list(MATRIX))
async def test_no_token_is_401(world: World, row: str) -> None:
    """Every endpoint refuses a request without a bearer token, before anything else."""
    await ACCESS.check_anonymous(
        world.firm.http,
        row,
        path_values={"thread_id": world.a, "message_id": world.ids["a_opening"]},
        secrets=world.all_secrets,
    )


async def test_m3_r1_a_client_reading_marks_only_what_the_client_could_read(
    world: World,
) -> None:
    """R1 "read" means a client read it; a client never reads an internal message (M3)."""
    thread = await world.firm.new_thread(ASSIGNED, subject=f"R1 {world.tag}")
    internal = await world.post(ASSIGNED, thread["id"], "staff note", internal=True)
    public = await world.post(ASSIGNED, thread["id"], "for the client")
    assert (
        await world.call(CLIENT, "POST", f"/v1/threads/{thread['id']}/read", json={})
    ).status_code == 200
    seen = await world.staff_view(thread["id"], public["id"])
    assert seen is not None and seen["status"] == "read" and seen["read_at"] is not None
    unseen = await world.staff_view(thread["id"], internal["id"])
    assert unseen is not None and unseen["status"] == "sent" and unseen["read_at"] is None
