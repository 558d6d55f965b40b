"""The real-time stream on real Kafka, over real WebSockets, with two messaging replicas.

Issue "Messaging service", Real time: events of the threads a user may see (T7), filtered
per user (M3, R2), in per-thread order, reaching subscribers of any replica.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..conftest import ServiceFactory, eventually, token_for
from .conftest import PATEL, Firm, find_event

POSTED = "messaging.message.posted"
FRAME_TIMEOUT = 30.0


async def ready(http: Any) -> None:
    """Both the API and the stream feed (positioned at the topic's end) answer /readyz."""
    await eventually(lambda: http.get("/readyz"), until=lambda r: r.status_code == 200)


async def frames_until(
    ws: ClientConnection, done: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Frames received up to and including the first for which ``done`` holds."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(FRAME_TIMEOUT):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if done(frame):
                return frames


def is_posted(seq: int, thread_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] == POSTED and f["thread_id"] == thread_id and f["data"]["seq"] == seq


@pytest.fixture
async def second_replica(
    firm: Firm,
    start_service: ServiceFactory,
    serve_http: Callable[[FastAPI], Awaitable[str]],
) -> str:
    """A second messaging replica on the same database and consumer group, served on a real
    port; returns its WebSocket stream URL. The ``firm`` fixture's app is replica one."""
    app, http = await start_service("messaging")
    await ready(http)
    await ready(firm.http)
    url = await serve_http(app)
    return url.replace("http://", "ws://") + "/v1/stream"


@asynccontextmanager
async def subscribers(
    url: str, tokens: dict[str, str]
) -> AsyncIterator[dict[str, ClientConnection]]:
    async with AsyncExitStack() as stack:
        connections = {}
        for name, token in tokens.items():
            ws = await stack.enter_async_context(
                connect(url, additional_headers={"Authorization": f"Bearer {token}"})
            )
            hello = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
            assert hello["type"] == "stream.ready", hello
            connections[name] = ws
        yield connections


async def test_a_message_posted_through_one_replica_reaches_subscribers_of_the_other(
    firm: Firm, second_replica: str
) -> None:
    who = ("owner", "assigned member", "client", "other client", "unassigned member")
    async with subscribers(second_replica, {w: firm.token(w) for w in who}) as ws:
        thread = await firm.new_thread()  # replica one, through its HTTP API
        internal = await firm.post(
            "assigned member", thread["id"], html="<p>Staff note</p>", internal=True
        )
        public = await firm.post("assigned member", thread["id"], html="<p>Ann, see above 👋</p>")
        assert internal.status_code == public.status_code == 201
        await firm.call("client", "POST", f"/v1/threads/{thread['id']}/read", json={})
        await firm.call("assigned member", "POST", f"/v1/threads/{thread['id']}/read", json={})
        patel = await firm.new_thread("owner", account_id=PATEL, to_contact_ids=["ct_raj_patel"])

        staff = await frames_until(ws["owner"], is_posted(1, patel["id"]))
        lee = [f for f in staff if f["thread_id"] == thread["id"]]
        assert [f["type"] for f in lee[:4]] == [
            "messaging.thread.created",
            POSTED,
            POSTED,
            POSTED,
        ]
        assert [f["data"]["seq"] for f in lee if f["type"] == POSTED] == [1, 2, 3]
        assert lee[2]["data"]["internal"] is True
        assert {
            f["data"]["reader"]["kind"] for f in lee if f["type"] == "messaging.messages.read"
        } == {
            "client",
            "staff",
        }
        member = await frames_until(ws["assigned member"], is_posted(3, thread["id"]))
        assert [f["data"]["seq"] for f in member if f["type"] == POSTED] == [1, 2, 3]

        # M3 and R2: the client gets the thread and its client-visible messages, in order,
        # and neither the internal note nor the fact that staff read the thread.
        client = await frames_until(ws["client"], lambda f: f["type"] == "messaging.messages.read")
        assert [(f["type"], f["data"].get("seq")) for f in client] == [
            ("messaging.thread.created", None),
            (POSTED, 1),
            (POSTED, 2),  # the client's own numbering: no gap where the internal note sits
            ("messaging.messages.read", None),
        ]
        assert client[2]["data"]["message_id"] == public.json()["id"]
        assert "Staff note" not in json.dumps(client)
        assert "reminders" not in client[0]["data"]
        # T7: the other account's client and the unassigned member see only what is theirs.
        other = await frames_until(ws["other client"], is_posted(1, patel["id"]))
        assert {f["thread_id"] for f in other} == {patel["id"]}
        unassigned = await frames_until(ws["unassigned member"], is_posted(1, patel["id"]))
        assert {f["thread_id"] for f in unassigned} == {patel["id"]}
        for leftover in ("client", "other client"):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws[leftover].recv(), 1.0)


async def test_a_mention_opens_the_stream_of_that_thread_to_the_mentioned_member(
    firm: Firm, second_replica: str
) -> None:
    watchers = {"noah": firm.token("unassigned member"), "owner": firm.token("owner")}
    async with subscribers(second_replica, watchers) as ws:
        thread = await firm.new_thread()
        await firm.post("assigned member", thread["id"], html="<p>No mention</p>")
        # The replica dispatches its events in order, each to every subscriber at once, and
        # decides access when it dispatches: once the owner has the first post, Noah's
        # stream has been denied it. Without this wait its dispatch could come after the
        # mention (under load) — when Noah may see the thread, as he may through the API.
        await frames_until(ws["owner"], is_posted(2, thread["id"]))
        await firm.post("assigned member", thread["id"], html="<p>Noah?</p>", mentions=["st_noah"])
        frames = await frames_until(ws["noah"], is_posted(3, thread["id"]))
        assert [f["data"]["seq"] for f in frames] == [3], "T7: access starts with the mention"


async def test_the_stream_refuses_missing_invalid_and_expired_tokens(
    firm: Firm, second_replica: str
) -> None:
    async with connect(second_replica) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    expired = token_for(firm.firm, role="owner", sub="st_olivia", ttl_seconds=-120)
    async with connect(second_replica) as ws:
        await ws.send(json.dumps({"type": "auth", "token": expired}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert "expired" in closed.value.rcvd.reason


async def test_browsers_authenticate_with_a_first_frame(firm: Firm, second_replica: str) -> None:
    async with connect(second_replica) as ws:
        await ws.send(json.dumps({"type": "auth", "token": firm.token("client")}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
        assert hello == {"type": "stream.ready", "user_id": "ct_ann_lee"}
        thread = await firm.new_thread()
        frames = await frames_until(ws, is_posted(1, thread["id"]))
        assert frames[-1]["data"]["text"] == "Hi"


async def test_a_replica_nobody_subscribed_to_streams_from_the_topic_end_once_someone_does(
    firm: Firm, second_replica: str
) -> None:
    """Replica two has had no subscriber, so its feed fetched nothing while a message was
    posted (through replica one). Its first subscriber gets what is posted after
    ``stream.ready`` — and not the message from before, which had nobody to go to: the feed
    went on from the topic's end, not from where it paused."""
    thread = await firm.new_thread()
    earlier = await firm.post("assigned member", thread["id"], html="<p>Before anyone</p>")
    assert earlier.status_code == 201
    await find_event(firm, POSTED, earlier.json()["id"])  # on the topic before anyone listens
    async with subscribers(second_replica, {"owner": firm.token("owner")}) as ws:
        later = await firm.post("assigned member", thread["id"], html="<p>Now</p>")
        assert later.status_code == 201
        frames = await frames_until(ws["owner"], is_posted(3, thread["id"]))
    # Seq 1 is the thread's first message, seq 2 the one posted before anyone subscribed.
    assert [f["type"] for f in frames if f["thread_id"] == thread["id"]] == [POSTED]
