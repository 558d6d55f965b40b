"""Request body limits, enforced before a body is read or parsed.

Every HTTP request gets a byte budget: the service's small default
(``max_request_body_bytes``) or what its route declares with ``body_limit``. A declared
``Content-Length`` above the budget is refused before a byte of the body is read (413); a
body that streams past it is cut off as the bytes arrive (413), so a 20 MiB JSON body is
never held in memory. Routes that stream (uploads) declare their own, larger budget.

    @router.post("/messages", dependencies=[body_limit(lambda s: 3 * s.max_message_bytes)])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.params import Depends as DependsMarker
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.kit.settings import ServiceSettings

__all__ = ["BodyLimit", "BodyLimitMiddleware", "BodyTooLarge", "body_limit", "install_body_limits"]

BudgetFor = Callable[[Any], int]
"""The route's byte budget from the service's settings."""


class BodyLimit:
    """A route's declared body budget (a no-op dependency the middleware looks for)."""

    def __init__(self, budget_for: BudgetFor) -> None:
        self.budget_for = budget_for

    def __call__(self) -> None:
        return None


def body_limit(budget_for: BudgetFor) -> DependsMarker:
    """Declare a route's body budget: ``dependencies=[body_limit(lambda settings: …)]``."""
    marker: DependsMarker = Depends(BodyLimit(budget_for))
    return marker


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body streams past its budget (rendered as 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"The request body is larger than this route's limit of {limit} bytes."
        )


class BodyLimitMiddleware:
    """Counts the body as the route reads it. The budget is the matched route's (routing has
    run by the first ``receive``); a declared ``Content-Length`` over it fails that first
    ``receive`` before a byte is read, and a body streaming past it fails when it does."""

    def __init__(self, app: ASGIApp, *, settings: ServiceSettings) -> None:
        self.app = app
        self._settings = settings
        self._budgets: dict[int, int] = {}

    def _budget(self, route: object) -> int:
        if not isinstance(route, APIRoute):
            return self._settings.max_request_body_bytes
        if id(route) not in self._budgets:
            self._budgets[id(route)] = next(
                (
                    dependency.dependency.budget_for(self._settings)
                    for dependency in route.dependencies
                    if isinstance(dependency.dependency, BodyLimit)
                ),
                self._settings.max_request_body_bytes,
            )
        return self._budgets[id(route)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        budget: int | None = None
        received = 0

        async def counting_receive() -> Message:
            nonlocal budget, received
            if budget is None:
                budget = self._budget(scope.get("route"))
                if declared is not None and declared.isdigit() and int(declared) > budget:
                    raise BodyTooLarge(budget)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > budget:
                    raise BodyTooLarge(budget)
            return message

        await self.app(scope, counting_receive, send)


def install_body_limits(app: FastAPI, settings: ServiceSettings) -> None:
    app.add_middleware(BodyLimitMiddleware, settings=settings)
