"""Issue 10: what every service's request pipeline guarantees — bugs become logged
problem+json 500s carrying the correlation id, client correlation ids are sanitised, bodies
are refused past their budget before they are read, and every log line is JSON."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import Response

from threadline.kit.errors import install_problem_handlers
from threadline.kit.limits import body_limit, install_body_limits
from threadline.kit.logs import RequestContextMiddleware, configure_logging
from threadline.kit.settings import ServiceSettings


class Note(BaseModel):
    text: str


def build_app(*, failing_middleware: bool = False) -> tuple[FastAPI, list[str]]:
    settings = ServiceSettings(env="test", max_request_body_bytes=1000)
    app = FastAPI()
    reached: list[str] = []

    @app.post("/notes")
    async def note(body: Note) -> dict[str, int]:
        reached.append("notes")
        return {"length": len(body.text)}

    @app.post("/big", dependencies=[body_limit(lambda s: 10 * s.max_request_body_bytes)])
    async def big(body: Note) -> dict[str, int]:
        reached.append("big")
        return {"length": len(body.text)}

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret internal state")

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    if failing_middleware:

        async def broken(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            raise KeyError("a middleware bug")

        app.add_middleware(BaseHTTPMiddleware, dispatch=broken)
    install_problem_handlers(app)
    install_body_limits(app, settings)
    app.add_middleware(RequestContextMiddleware)
    return app, reached


@pytest.fixture
def log_lines() -> Callable[[], list[dict[str, Any]]]:
    stream = io.StringIO()
    configure_logging(service="unit", level="INFO", stream=stream)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    return lines


async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.mark.parametrize("failing_middleware", [False, True])
async def test_a_bug_is_a_problem_500_with_the_correlation_id_logged_once(
    log_lines: Callable[[], list[dict[str, Any]]], failing_middleware: bool
) -> None:
    app, _ = build_app(failing_middleware=failing_middleware)
    async for http in client_for(app):
        response = await http.get("/bug", headers={"X-Correlation-ID": "req-42"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-correlation-id"] == "req-42"
    assert "secret" not in response.text and "a middleware bug" not in response.text
    # Every error line about this request's failure, tagged with its id or naming its
    # exception (a second, untagged log of it counts): the session's event loop may still
    # run other tests' leftovers, which log into the same stream.
    raised = "a middleware bug" if failing_middleware else "secret internal state"
    errors = [
        line
        for line in log_lines()
        if line.get("level") == "error"
        and (line.get("correlation_id") == "req-42" or raised in json.dumps(line))
    ]
    assert len(errors) == 1, log_lines()
    assert errors[0]["correlation_id"] == "req-42"
    assert errors[0]["event"] == "unhandled error"
    assert "Traceback" in errors[0]["exception"]


@pytest.mark.parametrize(
    "incoming",
    [
        "<script>alert(1)</script>",
        "a" * 129,
        "id with spaces",
        "id\r\nInjected: yes",
        "-leading-dash",
        "ünïcode",
        "",
    ],
)
async def test_a_client_correlation_id_that_is_not_a_short_safe_token_is_replaced(
    incoming: str,
) -> None:
    app, _ = build_app()
    async for http in client_for(app):
        response = await http.get("/ok", headers={"X-Correlation-ID": incoming.encode()})
    minted = response.headers["x-correlation-id"]
    assert minted != incoming
    assert uuid.UUID(minted)


@pytest.mark.parametrize("incoming", ["a", "req-42", "7f1c:1.2_3", "a" * 128])
async def test_a_safe_client_correlation_id_is_kept(incoming: str) -> None:
    app, _ = build_app()
    async for http in client_for(app):
        response = await http.get("/ok", headers={"X-Correlation-ID": incoming})
    assert response.headers["x-correlation-id"] == incoming


async def test_a_declared_body_over_the_default_budget_is_413_before_it_is_read() -> None:
    app, reached = build_app()
    async for http in client_for(app):
        response = await http.post("/notes", json={"text": "x" * 2000})
        fine = await http.post("/notes", json={"text": "x" * 900})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "1000 bytes" in response.json()["detail"]
    assert "x-correlation-id" in response.headers
    assert fine.status_code == 200
    assert reached == ["notes"]


async def test_a_streamed_body_past_its_budget_is_cut_off_with_413() -> None:
    """No Content-Length (chunked): counted as it arrives, never read whole."""
    app, reached = build_app()
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(10_000):
            sent.append(1)
            yield b"x" * 1000
        yield b'"}'

    async for http in client_for(app):
        response = await http.post("/notes", content=chunks())
    assert response.status_code == 413
    assert reached == []


async def test_a_route_declares_a_larger_budget() -> None:
    app, reached = build_app()
    async for http in client_for(app):
        allowed = await http.post("/big", json={"text": "x" * 5000})
        refused = await http.post("/big", json={"text": "x" * 20_000})
    assert allowed.status_code == 200
    assert refused.status_code == 413 and "10000 bytes" in refused.json()["detail"]
    assert reached == ["big"]


def test_every_stdlib_logger_writes_json_and_query_secrets_are_redacted(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    access = logging.getLogger("uvicorn.access")
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/v1/stream?access_token=eyJsecret&x=1",
        "1.1",
        200,
    )
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/v1/stream?token=eyJsecret"
    )
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("some.library").exception("library failed")
    logging.getLogger().warning("root says %s", "hello")
    lines = log_lines()
    assert len(lines) == 4
    assert "eyJsecret" not in json.dumps(lines)
    assert lines[0]["event"] == "http request"
    assert lines[0]["path"] == "/v1/stream" and lines[0]["status"] == 200
    assert lines[0]["query"] == "access_token=[redacted]&x=1"
    assert "token=[redacted]" in lines[1]["event"]
    assert lines[2]["logger"] == "some.library" and "ValueError: boom" in lines[2]["exception"]
    assert lines[3]["event"] == "root says hello" and lines[3]["level"] == "warning"
    assert all(line["service"] == "unit" for line in lines)


@pytest.mark.parametrize(
    "target",
    ["/ok?account_id=%00", "/ok?cursor=a%01b", "/ok?%00=x", "/ok%00", "/bug/%1f"],
)
async def test_control_characters_in_path_or_query_are_a_400_before_any_route(
    target: str,
) -> None:
    """A NUL in an id or filter reached FerretDB on PostgreSQL, which cannot store or
    compare it, and answered 500; it is refused up front instead."""
    app, _ = build_app()
    async for http in client_for(app):
        response = await http.get(target)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "control character" in response.json()["detail"]
    assert response.headers["x-correlation-id"]
