"""RFC 9457 problem details for expected errors, bad input and bugs."""

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from pymongo.errors import AutoReconnect

from threadline.kit.errors import Conflict, NotFound, install_problem_handlers


class Body(BaseModel):
    count: int


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

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

    @app.get("/storage-down")
    async def storage_down() -> None:
        raise AutoReconnect("connection reset while the server was busy")

    return app


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
    assert response.headers["retry-after"] == "1"
    assert "retry" in response.json()["detail"]
    assert "reset" not in response.text
