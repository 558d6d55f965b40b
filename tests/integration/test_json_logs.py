"""Issue 10: a service run the way the local stack runs it (``python -m uvicorn --factory``)
writes nothing but JSON lines — uvicorn's access and error lines, FastStream's consumer
lines, tracebacks, warnings — never a bearer token from a query string, and never a
client's raw correlation id. Messaging is the service: it has Kafka consumers, a stream
and validation errors to log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pymongo
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from threadline.devtools.ports import free_port

from .conftest import token_for

pytestmark = pytest.mark.integration


async def stream_with_a_binary_first_frame(url: str) -> int | None:
    async with connect(url) as ws:
        await ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        return ws.close_code


def test_every_line_a_running_service_logs_is_json_without_secrets(
    tmp_path: Path, endpoints: dict[str, str], run_id: str
) -> None:
    port = free_port()
    log = tmp_path / "messaging.log"
    env = (
        os.environ
        | endpoints
        | {
            "THREADLINE_ENV": "test",
            "PYTHONUNBUFFERED": "1",
            "MESSAGING_MONGODB_DATABASE": f"it_logs_{run_id}",
            "MESSAGING_CONSUMER_GROUP": f"it-logs-{run_id}",
            "MESSAGING_CONSUMER_START": "latest",
        }
    )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "threadline.messaging.main:create_app",
    ]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                assert server.poll() is None, log.read_text()
                time.sleep(0.2)
            secret = token_for("firm_logs", role="owner")
            httpx.get(f"{base}/v1/me?access_token={secret}&x=1")
            httpx.get(f"{base}/v1/me", headers={"X-Correlation-ID": "<script>alert(1)</script>"})
            httpx.get(f"{base}/no-such-route?token={secret}")
            httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {secret}"})
            httpx.get(
                f"{base}/v1/threads/x/messages?before={2**63}",
                headers={"Authorization": f"Bearer {secret}"},
            )
            stream = f"ws://127.0.0.1:{port}/v1/stream?access_token={secret}"
            assert asyncio.run(stream_with_a_binary_first_frame(stream)) == 1008
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert len(lines) >= 5, lines
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    text = log.read_text()
    assert secret not in text, "a token from a query string reached the log"
    assert "<script>" not in text
    access = [entry for entry in parsed if entry.get("event") == "http request"]
    assert {entry["path"] for entry in access} >= {"/v1/me", "/no-such-route", "/readyz"}
    assert any(entry["logger"] == "threadline.kafka" for entry in parsed), "FastStream's"
    assert any(entry["logger"].startswith("aiokafka") for entry in parsed)
    assert any(entry["logger"].startswith("threadline.") for entry in parsed), "structlog's"
    assert all(entry["service"] == "messaging" for entry in parsed)
    with pymongo.MongoClient(endpoints["THREADLINE_MONGODB_URL"]) as mongo:
        mongo.drop_database(f"it_logs_{run_id}")
