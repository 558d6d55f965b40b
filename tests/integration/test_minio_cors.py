"""Issue 10: MinIO as the local stack runs it answers cross-origin requests (presigned
downloads) for the portal origin only — its default reflects any ``Origin`` with
credentials. Runs the stack's own MinIO spec on spare ports."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from threadline.devtools.ports import free_port
from threadline.devtools.stack.config import StackConfig
from threadline.devtools.stack.install import install_minio
from threadline.devtools.stack.specs import server_spec

pytestmark = pytest.mark.integration

PORTAL = "http://portal.example"


def test_minio_allows_cross_origin_requests_from_the_portal_only(tmp_path: Path) -> None:
    port = free_port()
    cfg = StackConfig.from_env(
        state_dir=tmp_path,
        environ={
            "THREADLINE_MINIO_PORT": str(port),
            "THREADLINE_MINIO_CONSOLE_PORT": str(free_port()),
            "THREADLINE_PORTAL_ORIGIN": PORTAL,
        },
    )
    spec = server_spec(cfg, "minio", install_minio(cfg, say=lambda _: None))
    if spec.prepare is not None:
        spec.prepare()
    server = subprocess.Popen(
        spec.command,
        env=os.environ | spec.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/minio/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "MinIO did not start"
            time.sleep(0.2)

        def preflight(origin: str) -> httpx.Response:
            return httpx.options(
                f"{base}/threadline-documents/any",
                headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
            )

        allowed = preflight(PORTAL)
        assert allowed.headers.get("access-control-allow-origin") == PORTAL
        for other in ("http://evil.example", "null", "http://portal.example.evil.example"):
            refused = preflight(other)
            assert "access-control-allow-origin" not in refused.headers, other
            simple = httpx.get(f"{base}/minio/health/live", headers={"Origin": other})
            assert "access-control-allow-origin" not in simple.headers, other
    finally:
        server.terminate()
        server.wait(timeout=30)
