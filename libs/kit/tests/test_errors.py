"""RFC 9457 problem details for expected errors, bad input and bugs."""

import httpx
import pytest
from fastapi import FastAPI
from minio.error import S3Error, ServerError
from pydantic import BaseModel
from pymongo.errors import AutoReconnect, OperationFailure, ServerSelectionTimeoutError
from urllib3.exceptions import MaxRetryError, NewConnectionError

from threadline.kit.errors import (
    Conflict,
    DependencyUnavailable,
    NotFound,
    install_problem_handlers,
    unavailable_dependency,
)
from threadline.kit.logs import RequestContextMiddleware


class Body(BaseModel):
    count: int


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, retry_after_seconds=3)
    app.add_middleware(RequestContextMiddleware, retry_after_seconds=3)

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("Thread th_1 does not exist.")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("Revision is stale.", current_revision=3)

    @app.post("/body")
    async def body(payload: Body) -> Body:
        return payload

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret internal state")

    add_outage_routes(app)
    return app


def add_outage_routes(app: FastAPI) -> None:
    @app.get("/storage-down")
    async def storage_down() -> None:
        raise AutoReconnect("connection reset while the server was busy")

    @app.get("/no-server")
    async def no_server() -> None:
        raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")

    @app.get("/objects-down")
    async def objects_down() -> None:
        try:
            raise NewConnectionError(None, "refused")  # type: ignore[arg-type]
        except NewConnectionError as exc:
            raise MaxRetryError(None, "/bucket/key", reason=exc) from exc  # type: ignore[arg-type]

    @app.get("/declared")
    async def declared() -> None:
        raise DependencyUnavailable("the directory", retry_after_seconds=30)

    @app.get("/query-refused")
    async def query_refused() -> None:
        raise OperationFailure("unknown operator: $where")


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_domain_errors_render_as_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/missing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not found",
        "status": 404,
        "detail": "Thread th_1 does not exist.",
        "instance": "/missing",
    }
    conflict = (await client.get("/conflict")).json()
    assert conflict["status"] == 409 and conflict["current_revision"] == 3


async def test_validation_errors_name_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/body", json={"count": "many"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "count"
    assert "count" in problem["detail"]


async def test_unexpected_errors_are_500_problems_without_internals(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/bug")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text


async def test_unknown_route_is_a_problem_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unreachable_database_is_a_503_to_retry(client: httpx.AsyncClient) -> None:
    response = await client.get("/storage-down")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "3"
    assert "retry" in response.json()["detail"]
    assert "reset" not in response.text


@pytest.mark.parametrize(
    ("path", "dependency", "retry_after"),
    [
        ("/no-server", "MongoDB", "3"),
        ("/objects-down", "object storage", "3"),
        ("/declared", "the directory", "30"),
    ],
)
async def test_dependency_outages_are_503_problems_with_retry_after(
    client: httpx.AsyncClient, path: str, dependency: str, retry_after: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == retry_after
    problem = response.json()
    assert problem["dependency"] == dependency
    assert problem["detail"].startswith(dependency) and "retry" in problem["detail"]
    assert "refused" not in response.text


async def test_a_refused_query_is_a_bug_not_an_outage(client: httpx.AsyncClient) -> None:
    response = await client.get("/query-refused")
    assert response.status_code == 500
    assert "retry-after" not in response.headers


def test_object_storage_answers_are_outages_only_when_5xx() -> None:
    def s3_error(status: int) -> S3Error:
        response = type("Response", (), {"status": status, "headers": {}})()
        return S3Error(response, "NoSuchKey", "missing", "/b/k", "r", "h")  # type: ignore[arg-type]

    assert unavailable_dependency(s3_error(404)) is None
    assert unavailable_dependency(s3_error(503)) == "object storage"
    assert unavailable_dependency(ServerError("bad gateway", 502)) == "object storage"
    wrapped = RuntimeError("upload failed")
    wrapped.__cause__ = AutoReconnect("reset")
    assert unavailable_dependency(wrapped) == "MongoDB"
    assert unavailable_dependency(RuntimeError("bug")) is None
