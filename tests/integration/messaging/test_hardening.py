"""Issue 10 on real Kafka and the MongoDB-protocol server: bounded integers, bodies and lists,
strict types, plain text without control characters, no-op settings changes, R3 account
names, and sanitised correlation ids."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import LEE, Firm, find_event

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


OUT_OF_RANGE_CURSORS: list[dict[str, Any]] = [
    {"before": 2**63},
    {"after": 2**63},
    {"before": 10**40},
    {"after": -1},
    {"limit": 2**64},
    {"before": "1e3"},
]


async def test_out_of_range_cursors_are_422_not_an_overflow(firm: Firm) -> None:
    thread = await firm.new_thread()
    for query in OUT_OF_RANGE_CURSORS:
        response = await firm.call(
            "owner", "GET", f"/v1/threads/{thread['id']}/messages", params=query
        )
        assert response.status_code == 422, (query, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    response = await firm.call(
        "owner", "GET", f"/v1/threads/{thread['id']}/messages", params={"before": 2**63 - 1}
    )
    assert response.status_code == 200, "the largest 64-bit cursor is fine"


LOOSE_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("/messages", {"html": "x", "internal": "yes"}),
    ("/messages", {"html": "x", "internal": 1}),
    ("/messages", {"html": 5}),
    ("/messages", {"html": "x", "mentions": "st_mia"}),
    ("/read", {"up_to_seq": True}),
    ("/read", {"up_to_seq": "3"}),
    ("/read", {"up_to_seq": 2**63}),
]


async def test_request_types_are_strict(firm: Firm) -> None:
    thread = await firm.new_thread()
    for path, body in LOOSE_TYPES:
        response = await firm.call("owner", "POST", f"/v1/threads/{thread['id']}{path}", json=body)
        assert response.status_code == 422, (body, response.text)
    messages = await firm.call("owner", "GET", f"/v1/threads/{thread['id']}/messages")
    assert len(messages.json()["messages"]) == 1, "nothing stored"


CONTROL_CHARACTERS: list[dict[str, Any]] = [
    {"subject": "Tax\x00 documents"},
    {"subject": "Tax\ndocuments"},
    {"subject": "Tax\u202edocuments"},
    {"client_tasks": ["Upload\x00 W-2"]},
    {"account_id": "acc\x00"},
    {"to_contact_ids": ["ct_ann_lee\x07"]},
]


async def test_plain_text_refuses_control_characters_and_keeps_angle_brackets(
    firm: Firm,
) -> None:
    for fields in CONTROL_CHARACTERS:
        body = {"account_id": LEE, "subject": "s", "message": {"html": "<p>Hi</p>"}} | fields
        response = await firm.call("owner", "POST", "/v1/threads", json=body)
        assert response.status_code == 422, (fields, response.text)
    thread = await firm.new_thread(subject="<b>Q4</b> & <script>")  # text, not HTML
    shown = await firm.call("client", "GET", f"/v1/threads/{thread['id']}")
    assert shown.json()["subject"] == "<b>Q4</b> & <script>"


OVERSIZED: list[tuple[str, dict[str, Any], int]] = [
    ("/messages", {"html": "x", "mentions": ["st_mia"] * 2_000_000}, 413),
    ("/messages", {"html": "x", "mentions": ["st_mia"] * 101}, 422),
    ("/messages", {"html": "x", "video_urls": ["https://youtu.be/x"] * 21}, 422),
    ("/messages", {"html": "x" * (20 * MIB)}, 413),
    ("/draft", {"html": "x" * (20 * MIB)}, 413),
    ("/read", {"up_to_seq": 1, "pad": "x" * (20 * MIB)}, 413),
]
LONG_THREAD_LISTS: list[dict[str, Any]] = [
    {"to_contact_ids": ["ct_ann_lee"] * 101},
    {"client_tasks": ["Upload your W-2"] * 101},
    {"job_ids": ["job_1"] * 51},
]


async def test_bodies_and_lists_are_bounded(firm: Firm) -> None:
    thread = await firm.new_thread()
    for path, body, status in OVERSIZED:
        method = "PUT" if path == "/draft" else "POST"
        url = f"/v1/threads/{thread['id']}{path}"
        response = await firm.call("owner", method, url, json=body)
        assert response.status_code == status, (path, response.text[:300])
        assert response.headers["content-type"] == "application/problem+json"
    for fields in LONG_THREAD_LISTS:
        body = {"account_id": LEE, "subject": "s", "message": {"html": "<p>Hi</p>"}} | fields
        response = await firm.call("owner", "POST", "/v1/threads", json=body)
        assert response.status_code == 422, (list(fields), response.text[:300])


async def test_an_empty_or_same_value_settings_change_changes_nothing(firm: Firm) -> None:
    before = (await firm.call("owner", "GET", "/v1/firm/chat-settings")).json()
    for body in (
        {},
        {"clients_can_create_threads": before["clients_can_create_threads"]},
        {"expected_revision": before["revision"]},
    ):
        response = await firm.call("owner", "PATCH", "/v1/firm/chat-settings", json=body)
        assert response.status_code == 200
        assert response.json() == before
    changed = await firm.call(
        "owner",
        "PATCH",
        "/v1/firm/chat-settings",
        json={"clients_can_create_threads": not before["clients_can_create_threads"]},
    )
    assert changed.json()["revision"] == before["revision"] + 1


async def test_r3_a_client_reply_shows_the_account_as_well_as_the_contact(firm: Firm) -> None:
    thread = await firm.new_thread()
    reply = await firm.post("client", thread["id"], html="<p>Here they are</p>")
    assert reply.status_code == 201, reply.text
    messages = (
        await firm.call("assigned member", "GET", f"/v1/threads/{thread['id']}/messages")
    ).json()["messages"]
    by_client, by_staff = messages[-1]["author"], messages[0]["author"]
    assert by_client["name"] == "Ann Lee" and by_client["account_name"] == "Lee Family"
    assert by_staff["kind"] == "staff" and by_staff["account_name"] is None
    event = await find_event(firm, "messaging.message.posted", reply.json()["id"])
    assert event.data.author.account_name == "Lee Family"


async def test_a_hostile_correlation_id_never_reaches_responses_or_events(firm: Firm) -> None:
    thread = await firm.new_thread()
    response = await firm.call(
        "owner",
        "POST",
        f"/v1/threads/{thread['id']}/messages",
        json={"html": "<p>x</p>"},
        headers={"X-Correlation-ID": "<script>alert(1)</script>"},
    )
    assert response.status_code == 201
    minted = response.headers["x-correlation-id"]
    assert uuid.UUID(minted)
    event = await find_event(firm, "messaging.message.posted", response.json()["id"])
    assert event.correlation_id == minted
