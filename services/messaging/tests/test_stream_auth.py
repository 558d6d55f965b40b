"""Issue 10: the stream's first frame never crashes the connection handler — a binary or
oversized frame closes with 1008 (policy), a bad token (even a validly signed one with an
unusable ``exp``) with 4401, and a good one is accepted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from threadline.kit.auth import TokenVerifier
from threadline.messaging.stream import (
    MAX_AUTH_FRAME,
    POLICY_VIOLATION,
    UNAUTHORISED,
    StreamHub,
    router,
)

SECRET = "unit-test-secret-that-is-long-enough-000"


async def no_mentions(firm: str, thread_id: str) -> frozenset[str]:
    return frozenset()


async def live_at_once() -> None:
    """The feed is not under test here: every subscriber is live at once."""


def token(**overrides: Any) -> str:
    claims: dict[str, Any] = {
        "sub": "st_mia",
        "firm": "firm_a",
        "kind": "staff",
        "role": "member",
        "iss": "threadline",
        "aud": "threadline",
        "exp": int(time.time()) + 60,
    }
    return jwt.encode(claims | overrides, SECRET, algorithm="HS256")


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """The stream router alone, served by uvicorn on a loopback port."""
    app = FastAPI()
    app.include_router(router)
    app.state.stream = StreamHub(mentions=no_mentions, queue_size=10)
    app.state.stream_feed = SimpleNamespace(live=live_at_once)
    app.state.runtime = SimpleNamespace(
        verifier=TokenVerifier(issuer="threadline", audience="threadline", secret=SECRET),
        settings=SimpleNamespace(stream_auth_timeout_seconds=5.0),
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no start-up event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"ws://127.0.0.1:{port}/v1/stream"
    server.should_exit = True
    await task


async def close_code(url: str, first: str | bytes | None, **headers: str) -> int:
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        if first is not None:
            await ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None, "closed abnormally"
    return closed.value.rcvd.code


@pytest.mark.parametrize(
    "first",
    [b'{"type": "auth", "token": "x"}', b"", b"\x00\xff", "x" * (MAX_AUTH_FRAME + 1)],
)
async def test_a_binary_or_oversized_first_frame_closes_with_policy_violation(
    url: str, first: str | bytes
) -> None:
    assert await close_code(url, first) == POLICY_VIOLATION


@pytest.mark.parametrize(
    "first",
    [
        "not json",
        "[" * 5000,
        '{"type": "auth"}',
        '{"type": "auth", "token": 5}',
        '["auth"]',
        '{"type": "auth", "token": "' + token(exp="9999999999") + '"}',
        '{"type": "auth", "token": "' + token(exp=10**20) + '"}',
        '{"type": "auth", "token": "' + token(perms=7) + '"}',
    ],
)
async def test_a_bad_first_text_frame_closes_as_unauthorised(url: str, first: str) -> None:
    assert await close_code(url, first) == UNAUTHORISED


@pytest.mark.parametrize("exp", ["9999999999", 10**20])
async def test_a_header_token_with_an_unusable_exp_closes_as_unauthorised(
    url: str, exp: object
) -> None:
    assert await close_code(url, None, Authorization=f"Bearer {token(exp=exp)}") == UNAUTHORISED


async def test_a_good_first_frame_subscribes(url: str) -> None:
    async with connect(url) as ws:
        await ws.send('{"type": "auth", "token": "' + token() + '"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"type":"stream.ready","user_id":"st_mia"}'
