"""``/readyz`` answers within the readiness timeout whatever its checks do."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI

from threadline.kit.app import _health_router


async def _absorbs_its_cancel() -> bool:
    """A client that swallows the cancel of its timeout and waits again (aiokafka's stop)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(3600)
    return True


async def _fine() -> bool:
    return True


async def test_readyz_answers_in_time_when_a_check_absorbs_its_cancel() -> None:
    runtime: Any = SimpleNamespace(
        settings=SimpleNamespace(readiness_timeout_seconds=0.2, service_name="test"),
        draining=False,
        events=SimpleNamespace(positioned=_fine),
        database=None,
        broker=SimpleNamespace(ping=lambda timeout: _fine()),
    )
    app = FastAPI()
    app.include_router(_health_router(runtime, {"stuck": _absorbs_its_cancel}))
    started = time.monotonic()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await asyncio.wait_for(client.get("/readyz"), 5)
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["stuck"] is False and checks["kafka"] is True and checks["consumer"] is True
