"""Graceful shutdown of a real uvicorn messaging process: SIGTERM in the middle of a burst
of posts loses nothing (every 201 is stored) and leaves nothing pending in the outbox."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from threadline.devtools.seed import demo_directory, publish

from .conftest import eventually, token_for

pytestmark = pytest.mark.integration

OUTBOX_COLLECTIONS = ("threads", "messages", "read_cursors", "firm_settings")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_sigterm_during_a_burst_of_posts_loses_nothing_and_leaves_nothing_pending(
    run_id: str,
) -> None:
    port, database = free_port(), f"it_shutdown_{run_id}"
    env = os.environ | {
        "MESSAGING_MONGODB_DATABASE": database,
        "MESSAGING_CONSUMER_GROUP": f"it-shutdown-{run_id}",
        "MESSAGING_CONSUMER_START": "latest",
        "MESSAGING_SHUTDOWN_DEADLINE_SECONDS": "20",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "--factory", "threadline.messaging.main:create_app",
        "--port", str(port), "--timeout-graceful-shutdown", "15", env=env,
    )  # fmt: skip
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["THREADLINE_MONGODB_URL"])
    firm = f"firm_{run_id}"
    headers = {"Authorization": "Bearer " + token_for(firm, role="owner", sub="st_olivia")}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def ready() -> int:
                try:
                    return (await http.get("/readyz")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(ready, until=lambda code: code == 200, within=90)
            await publish(env["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"], demo_directory(firm))
            body = {"account_id": "acc_lee_family", "subject": "Burst", "message": {"html": "x"}}

            async def created() -> httpx.Response:
                return await http.post("/v1/threads", json=body, headers=headers)

            thread = (await eventually(created, until=lambda r: r.status_code == 201)).json()
            answered: list[int] = []

            async def post(number: int) -> tuple[int, str | None]:
                try:
                    response = await http.post(
                        f"/v1/threads/{thread['id']}/messages",
                        json={"html": f"<p>{number}</p>"},
                        headers=headers,
                    )
                except httpx.TransportError:
                    return 0, None  # refused: the server had stopped taking requests
                answered.append(response.status_code)
                ok = response.status_code == 201
                return response.status_code, response.json()["id"] if ok else None

            burst = [asyncio.create_task(post(number)) for number in range(80)]
            await eventually(lambda: _count(answered), until=lambda n: n >= 10)
            process.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*burst)
        # uvicorn re-raises the captured SIGTERM once its shutdown completed
        assert await asyncio.wait_for(process.wait(), timeout=60) in (0, -signal.SIGTERM)

        stored_ids = [message_id for status, message_id in results if status == 201]
        assert stored_ids, "some posts were answered before the shutdown"
        assert all(status in (0, 201, 503) for status, _ in results), results
        messages = mongo[database]["messages"]
        assert await messages.count_documents({"_id": {"$in": stored_ids}}) == len(stored_ids)
        for name in OUTBOX_COLLECTIONS:
            pending = await mongo[database][name].count_documents({"_outbox.0": {"$exists": True}})
            assert pending == 0, f"{name} still holds unpublished events"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await mongo.drop_database(database)
        await mongo.close()


async def _count(items: list[int]) -> int:
    return len(items)
