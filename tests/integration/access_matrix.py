"""The access-matrix harness every service's ``test_access_matrix`` module is built on.

A module declares its table — one row per endpoint (a method and path, sometimes with a
variant such as "internal message"), one column per kind of user (``DEMO_USERS`` names),
the exact status each user must get — and a probe per row: a function making that call as
a given user (setting up and checking whatever follows from the status it got). This
harness turns the table into one test case per cell, named "<row> | <user>", and checks
what every matrix checks the same way: the status, that an error is problem+json, that
the module's leak check finds nothing, that every row refuses a request without a token
(401), that every row has a probe, and that every route the app publishes has a row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import pytest
from fastapi import FastAPI

__all__ = [
    "ADMIN",
    "ASSIGNED",
    "CLIENT",
    "MENTIONED",
    "OTHER_CLIENT",
    "OTHER_FIRM",
    "OWNER",
    "UNASSIGNED",
    "USERS",
    "VIEW_ALL",
    "AccessMatrix",
]

OWNER, ADMIN, ASSIGNED, UNASSIGNED, VIEW_ALL, MENTIONED = (
    "owner",
    "admin",
    "assigned member",
    "unassigned member",
    "member with view-all",
    "mentioned member",
)
CLIENT, OTHER_CLIENT, OTHER_FIRM = "client", "other client", "other firm"
USERS = (OWNER, ADMIN, ASSIGNED, UNASSIGNED, VIEW_ALL, MENTIONED, CLIENT, OTHER_CLIENT, OTHER_FIRM)
"""The usual nine columns, in this order."""

W = TypeVar("W")
Probe = Callable[[W, str], Awaitable[httpx.Response]]
Leaks = Callable[[W, str, httpx.Response], list[str]]


def _full_route(row: str) -> str:
    return row


@dataclass
class AccessMatrix(Generic[W]):
    """``rows`` x ``users``: the expected status per cell (None: the cell cannot be set up
    for that user, so it is no case). ``route_of`` maps a row to the route it calls, as the
    OpenAPI document names it ("GET /v1/threads/{thread_id}"); ``W`` is the module's world
    (what its fixture set up) that probes act on."""

    rows: Mapping[str, tuple[int | None, ...]]
    users: tuple[str, ...] = USERS
    route_of: Callable[[str], str] = _full_route
    probes: dict[str, Probe[W]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row, statuses in self.rows.items():
            assert len(statuses) == len(self.users), f"{row}: one status per user"

    def probe(self, row: str) -> Callable[[Probe[W]], Probe[W]]:
        """Decorator: ``function`` is the probe of ``row``."""

        def register(function: Probe[W]) -> Probe[W]:
            assert row in self.rows, f"no matrix row {row!r}"
            assert row not in self.probes, f"a second probe for {row!r}"
            self.probes[row] = function
            return function

        return register

    def cases(self) -> list[Any]:
        """Parameters ``(row, who, expected)`` of every cell, row by row."""
        return [
            pytest.param(row, who, expected, id=f"{row} | {who}")
            for row, statuses in self.rows.items()
            for who, expected in zip(self.users, statuses, strict=True)
            if expected is not None
        ]

    def assert_every_row_probed(self) -> None:
        assert set(self.probes) == set(self.rows)

    def assert_covers(
        self,
        app: FastAPI,
        *,
        include: Callable[[str], bool],
        beyond: Collection[str] = (),
    ) -> None:
        """Every route of ``app`` whose path ``include`` selects has a row, and every row
        names one of them (or one of ``beyond``: routes another matrix owns)."""
        paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
        routes = {
            f"{method.upper()} {path}"
            for path, operations in paths.items()
            if include(path)
            for method in operations
        }
        covered = {self.route_of(row) for row in self.rows} - set(beyond)
        assert routes - covered == set(), "endpoints missing from the matrix"
        assert covered - routes == set(), "matrix rows naming no endpoint"

    async def check_cell(
        self, world: W, row: str, who: str, expected: int, *, leaks: Leaks[W]
    ) -> httpx.Response:
        """One cell: the exact status, what the probe checks, a problem+json error, and
        nothing ``leaks`` finds in the response."""
        response = await self.probes[row](world, who)
        assert response.status_code == expected, (
            f"{row} as {who}: expected {expected}, got {response.status_code}: "
            f"{response.text[:300]}"
        )
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", "")
            assert content_type.startswith("application/problem+json"), (row, who, content_type)
        problems = leaks(world, who, response)
        assert not problems, f"{row} as {who}: " + "; ".join(problems)
        return response

    async def check_anonymous(
        self,
        http: httpx.AsyncClient,
        row: str,
        *,
        path_values: Mapping[str, str],
        secrets: Collection[str],
    ) -> None:
        """``row`` without a bearer token: 401 before anything else, naming no secret."""
        method, path = self.route_of(row).split(" ", 1)
        response = await http.request(method, path.format(**path_values), json={})
        assert response.status_code == 401, response.text
        assert not [text for text in secrets if text in response.text]
