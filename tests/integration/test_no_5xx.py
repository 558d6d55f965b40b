"""Issue 10: no input makes any service answer 5xx. Every route of every service (read from
its OpenAPI document, so a new route is covered without touching this test) gets malformed
path segments, query parameters, headers and bodies, as an anonymous caller, a staff owner,
a client, and a validly signed token with broken claims. Each answer must be a 4xx (or 2xx)
problem+json with a correlation id — never a 500, never a dropped connection."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from .conftest import ServiceFactory, seed_directory, token_for

pytestmark = pytest.mark.integration

SERVICES = ("messaging", "documents", "tasks", "reminders", "pipeline")
LEE = "acc_lee_family"

BAD_SEGMENTS = ["x", "a" * 3000, "%00", "%ff%fe", "..", "9" * 40, LEE]
BAD_QUERY_VALUES = [
    "",
    "-1",
    "9" * 40,
    str(2**63),
    "1e999",
    "NaN",
    "true",
    "\x00",
    "%ff",
    "a" * 6000,
    "[]",
]
BAD_BODIES: list[bytes] = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"x"',
    b"1e999999",
    b"[" * 20_000 + b"]" * 20_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b"\xff\xfe\x00",
    b'{"x": NaN}',
]
BAD_FIELD_VALUES: list[Any] = [
    None,
    True,
    10**40,
    -(2**70),
    1.5e308,
    "",
    "\x00",
    "a" * 70_000,
    [],
    ["a"] * 5000,
    {},
    {"$gt": ""},
    [[[[["deep"]]]]],
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    f"multipart/form-data; boundary={'b' * 300}",
    "multipart/form-data; boundary=b",
    "application/x-www-form-urlencoded",
]


@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    path: str
    query: tuple[str, ...]
    body_fields: tuple[str, ...]
    has_body: bool

    def url(self, segment: str | None, existing: dict[str, str]) -> str:
        """The path with every parameter replaced by ``segment``, or (``None``) by the id
        of a resource that exists, so the request reaches the code behind the lookups."""
        url = self.path
        while "{" in url:
            start, end = url.index("{"), url.index("}")
            value = segment if segment is not None else existing.get(url[start + 1 : end], "x")
            url = url[:start] + value + url[end + 1 :]
        return url


def operations(service: str, app: FastAPI) -> Iterator[Operation]:
    document = app.openapi()
    schemas = document.get("components", {}).get("schemas", {})
    for path, methods in document["paths"].items():
        for method, spec in methods.items():
            query = tuple(p["name"] for p in spec.get("parameters", []) if p["in"] == "query")
            body = spec.get("requestBody", {}).get("content", {})
            schema = next(iter(body.values()), {}).get("schema", {})
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            fields = tuple(schema.get("properties", {}))
            yield Operation(service, method.upper(), path, query, fields, bool(body))


@dataclass(frozen=True)
class Probe:
    """One malformed request."""

    caller: str
    segment: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def probes(operation: Operation) -> Iterator[Probe]:
    for caller in ("anonymous", "owner", "client", "bad exp"):
        yield Probe(caller)
    for segment in BAD_SEGMENTS:
        yield Probe("owner", segment=segment)
    for name in operation.query:
        for value in BAD_QUERY_VALUES:
            yield Probe("owner", params=((name, value),))
        yield Probe("client", params=((name, BAD_QUERY_VALUES[2]),))
    yield Probe("owner", params=(("unknown", "1"), ("unknown", "2")))
    yield Probe("owner", headers=(("X-Correlation-ID", "<script>" * 100),))
    yield Probe("owner", headers=(("Authorization", "Bearer"),))
    yield Probe("owner", headers=(("Authorization", "Basic Zm9vOmJhcg=="),))
    yield Probe("owner", headers=(("Authorization", "Bearer a.b.c"),))
    for body in BAD_BODIES:
        yield Probe("owner", body=body, content_type="application/json")
    for content_type in CONTENT_TYPES:
        yield Probe("owner", body=b"--b\r\n\r\n{}", content_type=content_type)
    for name in operation.body_fields:
        for value in BAD_FIELD_VALUES:
            yield Probe(
                "owner", body=json.dumps({name: value}).encode(), content_type=CONTENT_TYPES[0]
            )


async def existing_resources(
    running: dict[str, tuple[FastAPI, httpx.AsyncClient]], firm: str
) -> dict[str, str]:
    """A thread with a message and a document, by path parameter name."""
    owner = caller_headers("owner", firm)
    messaging, documents = running["messaging"][1], running["documents"][1]
    thread = await messaging.post(
        "/v1/threads",
        json={"account_id": LEE, "subject": "Fuzz", "message": {"html": "<p>Hi</p>"}},
        headers=owner,
    )
    assert thread.status_code == 201, thread.text
    messages = await messaging.get(f"/v1/threads/{thread.json()['id']}/messages", headers=owner)
    document = await documents.post(
        f"/v1/accounts/{LEE}/documents",
        files={"file": ("w2.pdf", b"%PDF-1.7\n%%EOF\n", "application/pdf")},
        headers=owner,
    )
    assert document.status_code == 201, document.text
    return {
        "thread_id": thread.json()["id"],
        "message_id": messages.json()["messages"][0]["id"],
        "document_id": document.json()["documents"][0]["id"],
        "account_id": LEE,
    }


@pytest.fixture
async def running(
    start_service: ServiceFactory, run_id: str
) -> dict[str, tuple[FastAPI, httpx.AsyncClient]]:
    """Every service; messaging and documents hold the demo directory (seeded before the
    others start, so fewer consumers compete while it is projected). Malformed thread ids
    are unknown ids: services that project threads would wait for each of them (5 s by
    default, thousands of probes), so here they look once, briefly, then answer 404."""
    brief = {"thread_projection_wait_seconds": 0.1}
    started = {name: await start_service(name, **brief) for name in ("messaging", "documents")}
    await seed_directory([app for app, _ in started.values()], f"firm_{run_id}")
    for name in SERVICES:
        if name not in started:
            extra = {"unknown_thread_wait_seconds": 0.1} if name == "pipeline" else {}
            started[name] = await start_service(name, **brief, **extra)
    return started


def signed_with_string_exp(firm: str) -> str:
    """A correctly signed owner token whose ``exp`` is a string (a 500 before issue 10)."""
    claims = jwt.decode(token_for(firm, role="owner"), options={"verify_signature": False})
    claims["exp"] = "99999999999"
    return jwt.encode(claims, os.environ["THREADLINE_JWT_SECRET"], algorithm="HS256")


def caller_headers(caller: str, firm: str) -> dict[str, str]:
    tokens = {
        "owner": lambda: token_for(firm, role="owner", sub="st_olivia"),
        "client": lambda: token_for(firm, kind="client", sub="ct_ann_lee", accounts=[LEE]),
        "bad exp": lambda: signed_with_string_exp(firm),
    }
    return {"Authorization": f"Bearer {tokens[caller]()}"} if caller in tokens else {}


async def test_no_route_of_any_service_answers_5xx_to_malformed_input(
    running: dict[str, tuple[FastAPI, httpx.AsyncClient]], run_id: str
) -> None:
    """The services are probed side by side (each one's probes in order, as before)."""
    firm = f"firm_{run_id}"
    existing = await existing_resources(running, firm)
    results = await asyncio.gather(
        *(
            probe_service(service, app, http, firm, existing)
            for service, (app, http) in running.items()
        )
    )
    count = sum(answered for answered, _ in results)
    failures = [failure for _, found in results for failure in found]
    assert count > 1000, "every service's routes were probed"
    assert not failures, "\n".join(failures[:40])


PARALLEL_ROUTES = 8
"""Routes of one service probed at once (each route's probes in order): the probes wait on
the database far more than they compute."""


async def probe_service(
    service: str, app: FastAPI, http: httpx.AsyncClient, firm: str, existing: dict[str, str]
) -> tuple[int, list[str]]:
    """Every malformed request for every route of ``service``: how many were answered, and
    what went wrong (a 5xx, a 4xx that is not problem+json, no correlation id, a dropped
    connection)."""
    failures: list[str] = []
    answered = 0
    slots = asyncio.Semaphore(PARALLEL_ROUTES)

    async def probe_route(operation: Operation) -> None:
        nonlocal answered
        async with slots:
            for probe in probes(operation):
                got_answer, failure = await send(http, operation, probe, firm, existing)
                answered += got_answer
                if failure is not None:
                    failures.append(f"{service} {operation.method} {operation.path} {failure}")

    await asyncio.gather(*(probe_route(operation) for operation in operations(service, app)))
    return answered, failures


async def send(
    http: httpx.AsyncClient,
    operation: Operation,
    probe: Probe,
    firm: str,
    existing: dict[str, str],
) -> tuple[bool, str | None]:
    """Make one probe's request: whether it was answered, and what was wrong (None: nothing)."""
    headers = caller_headers(probe.caller, firm) | dict(probe.headers)
    if probe.content_type is not None:
        headers["Content-Type"] = probe.content_type
    try:
        response = await http.request(
            operation.method,
            operation.url(probe.segment, existing),
            params=list(probe.params),
            content=probe.body,
            headers=headers,
        )
    except Exception as exc:  # a dropped connection is a failure like a 500
        return False, f"{probe}: {exc!r}"
    problem = (
        response.status_code >= 400
        and response.headers.get("content-type") != "application/problem+json"
    )
    if response.status_code >= 500 or problem or "x-correlation-id" not in response.headers:
        return True, f"{probe!r:.300}: {response.status_code} {response.text[:200]}"
    return True, None
