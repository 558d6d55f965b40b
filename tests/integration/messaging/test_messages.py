"""Messages, read status and drafts on real servers: M1-M3, M5, M7-M11, R1-R3, D1-D4."""

from datetime import datetime, timedelta
from typing import Any

import pytest

from .conftest import Firm, find_event

pytestmark = pytest.mark.integration


async def messages_of(firm: Firm, who: str, thread_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await firm.call(who, "GET", f"/v1/threads/{thread_id}/messages", params=params)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


async def test_m1_rich_text_is_sanitised_and_rendered_as_text(firm: Firm) -> None:
    thread = await firm.new_thread()
    html = (
        '<p><strong>Hello</strong> 👋 <a href="javascript:alert(1)">x</a>'
        '<script>alert(1)</script><span style="color: red" onclick="x()">red</span></p>'
        '<ul><li>one</li></ul><a href="https://example.com">site</a>'
    )
    posted = await firm.post("assigned member", thread["id"], html=html)
    assert posted.status_code == 201
    message = posted.json()
    assert "<script" not in message["html"] and "javascript:" not in message["html"]
    assert "onclick" not in message["html"]
    assert "<strong>Hello</strong> 👋" in message["html"]
    assert "color" in message["html"]
    assert "- one" in message["text"] and "site (https://example.com)" in message["text"]
    empty = await firm.post("assigned member", thread["id"], html="<script>x</script>")
    assert empty.status_code == 422
    assert empty.headers["content-type"] == "application/problem+json"


async def test_m2_mentions_must_be_staff_and_grant_access(firm: Firm) -> None:
    thread = await firm.new_thread()
    assert (
        await firm.call("unassigned member", "GET", f"/v1/threads/{thread['id']}")
    ).status_code == 404
    unknown = await firm.post(
        "assigned member", thread["id"], html="hi @x", mentions=["ct_ann_lee"]
    )
    assert unknown.status_code == 422 and "ct_ann_lee" in unknown.json()["detail"]
    by_client = await firm.post("client", thread["id"], html="hi", mentions=["st_noah"])
    assert by_client.status_code == 403
    ok = await firm.post("assigned member", thread["id"], html="over to you", mentions=["st_noah"])
    assert ok.status_code == 201 and ok.json()["mentions"] == ["st_noah"]
    assert (
        await firm.call("unassigned member", "GET", f"/v1/threads/{thread['id']}")
    ).status_code == 200


async def test_m3_internal_messages_never_reach_clients(firm: Firm) -> None:
    thread = await firm.new_thread()
    await firm.post("client", thread["id"], html="client question")
    internal = await firm.post("assigned member", thread["id"], html="secret note", internal=True)
    assert internal.status_code == 201 and internal.json()["internal"] is True
    reply = await firm.post("admin", thread["id"], html="agreed", reply_to=internal.json()["id"])
    assert reply.json()["internal"] is True, "M3: a reply to an internal message is internal"
    assert (await firm.post("client", thread["id"], html="x", internal=True)).status_code == 403
    texts = [m["text"] for m in await messages_of(firm, "client", thread["id"])]
    assert texts == ["Hi", "client question"]
    staff_texts = [m["text"] for m in await messages_of(firm, "assigned member", thread["id"])]
    assert staff_texts == ["Hi", "client question", "secret note", "agreed"]
    client_row = (await firm.call("client", "GET", f"/v1/threads/{thread['id']}")).json()
    assert client_row["last_message"]["text"] == "client question"
    assert client_row["unread_count"] == 1  # "Hi" only: internal messages are not counted
    hidden = await firm.call(
        "client", "GET", f"/v1/threads/{thread['id']}/messages/{internal.json()['id']}/context"
    )
    assert hidden.status_code == 404 and "secret" not in hidden.text
    sneaky = await firm.post("client", thread["id"], html="x", reply_to=internal.json()["id"])
    assert sneaky.status_code == 404


async def test_m5_video_links_embed_and_others_are_refused(firm: Firm) -> None:
    thread = await firm.new_thread()
    posted = await firm.post(
        "assigned member",
        thread["id"],
        html="watch",
        video_urls=[
            "https://youtu.be/dQw4w9WgXcQ",
            "https://www.loom.com/share/0123456789abcdef0123456789abcdef",
        ],
    )
    embeds = posted.json()["embeds"]
    assert [e["provider"] for e in embeds] == ["youtube", "loom"]
    assert embeds[0]["embed_url"] == "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"
    bad = await firm.post(
        "assigned member", thread["id"], html="x", video_urls=["https://evil.example/v"]
    )
    assert bad.status_code == 422 and "YouTube" in bad.json()["detail"]


async def test_m7_m9_reply_keeps_a_link_and_permalink_opens_in_context(firm: Firm) -> None:
    thread = await firm.new_thread()
    ids = [(await firm.post("client", thread["id"], html=f"m{i}")).json()["id"] for i in range(6)]
    reply = await firm.post("assigned member", thread["id"], html="re", reply_to=ids[1])
    assert reply.json()["reply_to"] == ids[1]
    target = (await messages_of(firm, "client", thread["id"]))[3]
    assert target["permalink"] == f"/threads/{thread['id']}/messages/{target['id']}"
    context = await firm.call(
        "client",
        "GET",
        f"/v1/threads/{thread['id']}/messages/{target['id']}/context",
        params={"radius": 2},
    )
    around = [m["text"] for m in context.json()["messages"]]
    assert around == ["m0", "m1", "m2", "m3", "m4"]
    assert context.json()["older_cursor"] is not None
    wrong = await firm.post("client", thread["id"], html="x", reply_to="no-such-id")
    assert wrong.status_code == 404


async def test_m8_staff_edit_own_messages_within_24h_and_clients_see_the_mark(firm: Firm) -> None:
    thread = await firm.new_thread()
    message = (await firm.post("assigned member", thread["id"], html="draft one")).json()
    url = f"/v1/threads/{thread['id']}/messages/{message['id']}"
    edited = await firm.call("assigned member", "PATCH", url, json={"html": "final"})
    assert edited.status_code == 200 and edited.json()["edited"] is True
    client_view = (await messages_of(firm, "client", thread["id"]))[-1]
    assert client_view["text"] == "final" and client_view["edited"] is True
    history = await firm.call("owner", "GET", f"{url}/history")
    assert [v["text"] for v in history.json()["versions"]] == ["draft one"]
    assert (await firm.call("client", "GET", f"{url}/history")).status_code == 403
    assert (await firm.call("owner", "PATCH", url, json={"html": "mine"})).status_code == 403
    own = (await firm.post("client", thread["id"], html="client text")).json()
    client_url = f"/v1/threads/{thread['id']}/messages/{own['id']}"
    assert (await firm.call("client", "PATCH", client_url, json={"html": "x"})).status_code == 403
    messages = firm.app.state.runtime.database["messages"]
    await messages.update_one(
        {"_id": message["id"]},
        {"$set": {"posted_at": message_posted_at(edited) - timedelta(hours=25)}},
    )
    late = await firm.call("assigned member", "PATCH", url, json={"html": "too late"})
    assert late.status_code == 403 and "24 hours" in late.json()["detail"]


def message_posted_at(response: Any) -> datetime:
    return datetime.fromisoformat(response.json()["posted_at"])


async def test_m10_pins_are_visible_to_those_who_can_see_the_message(firm: Firm) -> None:
    thread = await firm.new_thread()
    normal = (await firm.post("assigned member", thread["id"], html="pin me")).json()
    internal = (
        await firm.post("assigned member", thread["id"], html="staff pin", internal=True)
    ).json()
    for message in (normal, internal):
        url = f"/v1/threads/{thread['id']}/messages/{message['id']}/pin"
        assert (await firm.call("assigned member", "PUT", url)).json()["pinned"] is True
    staff_pins = await firm.call("owner", "GET", f"/v1/threads/{thread['id']}/pins")
    assert {m["text"] for m in staff_pins.json()["messages"]} == {"pin me", "staff pin"}
    client_pins = await firm.call("client", "GET", f"/v1/threads/{thread['id']}/pins")
    assert [m["text"] for m in client_pins.json()["messages"]] == ["pin me"]
    await firm.call("client", "DELETE", f"/v1/threads/{thread['id']}/messages/{normal['id']}/pin")
    client_pins = await firm.call("client", "GET", f"/v1/threads/{thread['id']}/pins")
    assert client_pins.json()["messages"] == []


async def test_m11_only_the_sender_deletes_and_the_event_says_so(firm: Firm) -> None:
    thread = await firm.new_thread()
    message = (await firm.post("client", thread["id"], html="oops")).json()
    url = f"/v1/threads/{thread['id']}/messages/{message['id']}"
    assert (await firm.call("owner", "DELETE", url)).status_code == 403
    assert (await firm.call("second client", "DELETE", url)).status_code == 403
    assert (await firm.call("client", "DELETE", url)).status_code == 204
    assert "oops" not in [m["text"] for m in await messages_of(firm, "owner", thread["id"])]
    assert (await firm.call("client", "DELETE", url)).status_code == 404
    event = await find_event(firm, "messaging.message.deleted", message["id"])
    assert event.data.deleted_by.user_id == "ct_ann_lee"
    assert event.data.document_ids == []


async def test_m3_clients_number_only_what_they_see(firm: Firm) -> None:
    """Sequence numbers shown to clients skip nothing, so gaps cannot betray internal notes."""
    thread = await firm.new_thread(message={"html": "one"})
    for html, internal in (("note a", True), ("two", False), ("note b", True), ("three", False)):
        assert (await firm.post("owner", thread["id"], html=html, internal=internal)).is_success
    staff = [(m["seq"], m["text"]) for m in await messages_of(firm, "owner", thread["id"])]
    assert staff == [(1, "one"), (2, "note a"), (3, "two"), (4, "note b"), (5, "three")]
    client = [(m["seq"], m["text"]) for m in await messages_of(firm, "client", thread["id"])]
    assert client == [(1, "one"), (2, "two"), (3, "three")]
    older = await firm.call(
        "client", "GET", f"/v1/threads/{thread['id']}/messages", params={"before": 3, "limit": 1}
    )
    assert [m["text"] for m in older.json()["messages"]] == ["two"]
    read = await firm.call(
        "client", "POST", f"/v1/threads/{thread['id']}/read", json={"up_to_seq": 2}
    )
    assert read.json()["last_read_seq"] == 2, "read positions in the client's numbering"
    row = (await firm.call("client", "GET", f"/v1/threads/{thread['id']}")).json()
    assert row["unread_count"] == 1  # "three"
    staff_view = {m["text"]: m for m in await messages_of(firm, "owner", thread["id"])}
    assert staff_view["two"]["status"] == "read" and staff_view["three"]["status"] == "sent"
    read_all = await firm.call("second client", "POST", f"/v1/threads/{thread['id']}/read", json={})
    assert read_all.json()["last_read_seq"] == 3, "the client's numbering: three messages"
    again = {m["text"]: m for m in await messages_of(firm, "owner", thread["id"])}
    assert again["three"]["status"] == "read", "R1: a later read stamps what is new"
    assert again["two"]["read_at"] == staff_view["two"]["read_at"], "R1: the first read counts"
    assert again["note b"]["read_at"] is None, "M3: no client read an internal note"


async def test_m8_m11_thread_previews_follow_edits_and_deletions(firm: Firm) -> None:
    thread = await firm.new_thread(message={"html": "opening"})
    note = (await firm.post("owner", thread["id"], html="staff note", internal=True)).json()
    reply = (await firm.post("client", thread["id"], html="regrettable reply")).json()

    async def previews() -> dict[str, str | None]:
        texts = {}
        for who in ("client", "owner"):
            row = (await firm.call(who, "GET", f"/v1/threads/{thread['id']}")).json()
            texts[who] = row["last_message"]["text"] if row["last_message"] else None
        return texts

    assert await previews() == {"client": "regrettable reply", "owner": "regrettable reply"}
    url = f"/v1/threads/{thread['id']}/messages/{reply['id']}"
    assert (await firm.call("client", "DELETE", url)).status_code == 204
    assert await previews() == {"client": "opening", "owner": "staff note"}, "M11, M3"
    note_url = f"/v1/threads/{thread['id']}/messages/{note['id']}"
    edited = await firm.call("owner", "PATCH", note_url, json={"html": "revised note"})
    assert edited.status_code == 200
    assert await previews() == {"client": "opening", "owner": "revised note"}, "M8"


async def test_r1_r2_read_receipts_for_staff_only(firm: Firm) -> None:
    thread = await firm.new_thread()
    staff_view = (await messages_of(firm, "owner", thread["id"]))[0]
    assert staff_view["status"] == "sent" and staff_view["read_at"] is None
    client_view = (await messages_of(firm, "client", thread["id"]))[0]
    assert "read_at" not in client_view and "status" not in client_view
    assert (
        await firm.call("client", "POST", f"/v1/threads/{thread['id']}/read", json={})
    ).status_code == 200
    first_read = (await messages_of(firm, "admin", thread["id"]))[0]
    assert first_read["status"] == "read" and first_read["read_at"] is not None
    await firm.call("second client", "POST", f"/v1/threads/{thread['id']}/read", json={})
    again = (await messages_of(firm, "assigned member", thread["id"]))[0]
    assert again["read_at"] == first_read["read_at"], "R1: the first time any client read it"
    client_message = (await firm.post("client", thread["id"], html="thanks")).json()
    await firm.call("owner", "POST", f"/v1/threads/{thread['id']}/read", json={})
    client_sees = [
        m
        for m in await messages_of(firm, "client", thread["id"])
        if m["id"] == client_message["id"]
    ]
    assert "read_at" not in client_sees[0], "R2: clients never see whether the firm read"


async def test_r3_client_replies_show_the_contact_person(firm: Firm) -> None:
    thread = await firm.new_thread()
    reply = (await firm.post("client", thread["id"], html="hello")).json()
    assert reply["author"] == {
        "user_id": "ct_ann_lee",
        "kind": "client",
        "name": "Ann Lee",
        "account_name": "Lee Family",
    }


async def test_d1_d4_drafts_are_personal_and_carry_only_text(firm: Firm) -> None:
    thread = await firm.new_thread()
    url = f"/v1/threads/{thread['id']}/draft"
    saved = await firm.call(
        "assigned member", "PUT", url, json={"html": "<p>half a thought</p>", "internal": True}
    )
    assert saved.status_code == 200 and saved.json()["internal"] is True
    assert (await firm.call("assigned member", "GET", url)).json()[
        "html"
    ] == "<p>half a thought</p>"
    assert (await firm.call("owner", "GET", url)).status_code == 404
    assert (
        await firm.call("client", "PUT", url, json={"html": "x", "internal": True})
    ).status_code == 403
    with_reply = await firm.call("client", "PUT", url, json={"html": "x", "reply_to": "m"})
    assert with_reply.status_code == 422, "D4: no reply context in drafts"
    await firm.call("client", "PUT", url, json={"html": "client draft"})
    assert (await firm.call("client", "GET", url)).json()["html"] == "client draft"
    drafts = firm.app.state.runtime.database["drafts"]
    await drafts.update_many(
        {"thread_id": thread["id"]},
        {
            "$set": {
                "expires_at": datetime.fromisoformat(saved.json()["updated_at"]) - timedelta(days=1)
            }
        },
    )
    assert (await firm.call("assigned member", "GET", url)).status_code == 404, "D3: expired"
    assert (await firm.call("client", "PUT", url, json={"html": "  "})).status_code == 204
    assert (await firm.call("client", "GET", url)).status_code == 404


async def test_message_pagination_both_ways_visits_each_message_once(firm: Firm) -> None:
    thread = await firm.new_thread()
    for i in range(9):
        await firm.post("assigned member", thread["id"], html=f"n{i}", internal=i % 3 == 0)
    everything = [m["seq"] for m in await messages_of(firm, "client", thread["id"], limit=100)]
    backwards, cursor = [], None
    while True:
        params = {"limit": 2} | ({"before": cursor} if cursor else {})
        page = (
            await firm.call("client", "GET", f"/v1/threads/{thread['id']}/messages", params=params)
        ).json()
        backwards = [m["seq"] for m in page["messages"]] + backwards
        cursor = page["older_cursor"]
        if cursor is None:
            break
    forwards, cursor = [], 0
    while cursor is not None:
        page = (
            await firm.call(
                "client",
                "GET",
                f"/v1/threads/{thread['id']}/messages",
                params={"limit": 2, "after": cursor},
            )
        ).json()
        forwards += [m["seq"] for m in page["messages"]]
        cursor = page["newer_cursor"]
    assert backwards == forwards == everything
    assert len(everything) == 7  # first message + 6 non-internal


async def test_a_post_retried_with_its_idempotency_key_is_stored_once(firm: Firm) -> None:
    """A client that got no answer (a 503 after the write, a lost connection) retries with
    the same Idempotency-Key: one message, one number, one event; the first try's answer."""
    thread = await firm.new_thread()
    url = f"/v1/threads/{thread['id']}/messages"

    async def post(who: str, key: str, **message: Any) -> Any:
        body = {"html": "<p>My W-2 is attached</p>"} | message
        return await firm.call(who, "POST", url, json=body, headers={"Idempotency-Key": key})

    first = await post("client", "retry-1")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await post("client", "retry-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()

    different = await post("client", "retry-1", html="<p>Something else</p>")
    assert different.status_code == 409, different.text
    assert different.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in different.json()["detail"]

    # the key is the author's own: the same key from a staff member is a new message
    by_staff = await post("assigned member", "retry-1")
    assert by_staff.status_code == 201 and "idempotent-replayed" not in by_staff.headers
    assert by_staff.json()["id"] != first.json()["id"]

    listed = await messages_of(firm, "client", thread["id"])
    assert [m["id"] for m in listed].count(first.json()["id"]) == 1
    assert [m["seq"] for m in listed] == list(range(1, len(listed) + 1))  # no number skipped
    assert len(listed) == 3  # the first message, the client's, the staff member's
    event = await find_event(firm, "messaging.message.posted", first.json()["id"])
    assert event.data.message_id == first.json()["id"]

    bad_key = await firm.call(
        "client", "POST", url, json={"html": "<p>x</p>"}, headers={"Idempotency-Key": "k" * 201}
    )
    assert bad_key.status_code == 422
