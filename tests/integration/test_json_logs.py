"""Issue 10: a service run the way the local stack runs it (``python -m uvicorn --factory``)
writes nothing but JSON lines — uvicorn's access and error lines, tracebacks, warnings —
never a bearer token from a query string, and never a client's raw correlation id."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import token_for

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_line_a_running_service_logs_is_json_without_secrets(
    tmp_path: Path, endpoints: dict[str, str]
) -> None:
    port = free_port()
    log = tmp_path / "tasks.log"
    env = os.environ | endpoints | {"THREADLINE_ENV": "test", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "uvicorn", "--factory", "threadline.tasks.main:create_app"]
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
                    if httpx.get(f"{base}/healthz").status_code == 200:
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
    assert {entry["path"] for entry in access} >= {"/v1/me", "/no-such-route", "/healthz"}
    assert all(entry["service"] == "tasks" for entry in parsed)
