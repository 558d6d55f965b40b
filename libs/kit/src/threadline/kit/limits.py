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
DetailFor = Callable[[Any], str]
"""The 413's ``detail`` from the service's settings (default: the budget in bytes)."""


class BodyLimit:
    """A route's declared body budget (a no-op dependency the middleware looks for)."""

    def __init__(self, budget_for: BudgetFor, detail_for: DetailFor | None = None) -> None:
        self.budget_for = budget_for
        self.detail_for = detail_for

    def __call__(self) -> None:
        return None


def body_limit(budget_for: BudgetFor, *, detail_for: DetailFor | None = None) -> DependsMarker:
    """Declare a route's body budget: ``dependencies=[body_limit(lambda settings: …)]``."""
    marker: DependsMarker = Depends(BodyLimit(budget_for, detail_for))
    return marker


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body streams past its budget (rendered as 413)."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class BodyLimitMiddleware:
    """Counts the body as the route reads it. The budget is the matched route's (routing has
    run by the first ``receive``); a declared ``Content-Length`` over it fails that first
    ``receive`` before a byte is read, and a body streaming past it fails when it does."""

    def __init__(self, app: ASGIApp, *, settings: ServiceSettings) -> None:
        self.app = app
        self._settings = settings
        self._budgets: dict[int, tuple[int, str]] = {}

    def _budget(self, route: object) -> tuple[int, str]:
        """The route's budget in bytes, and what a 413 says about it."""
        key = id(route)
        if key not in self._budgets:
            declared = (
                next(
                    (
                        dependency.dependency
                        for dependency in getattr(route, "dependencies", ())
                        if isinstance(dependency.dependency, BodyLimit)
                    ),
                    None,
                )
                if isinstance(route, APIRoute)
                else None
            )
            budget = (
                declared.budget_for(self._settings)
                if declared is not None
                else self._settings.max_request_body_bytes
            )
            detail = (
                declared.detail_for(self._settings)
                if declared is not None and declared.detail_for is not None
                else f"The request body is larger than this route's limit of {budget} bytes."
            )
            self._budgets[key] = (budget, detail)
        return self._budgets[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        budget: tuple[int, str] | None = None
        received = 0

        async def counting_receive() -> Message:
            nonlocal budget, received
            if budget is None:
                budget = self._budget(scope.get("route"))
                if declared is not None and declared.isdigit() and int(declared) > budget[0]:
                    raise BodyTooLarge(budget[1])
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > budget[0]:
                    raise BodyTooLarge(budget[1])
            return message

        await self.app(scope, counting_receive, send)


def install_body_limits(app: FastAPI, settings: ServiceSettings) -> None:
    app.add_middleware(BodyLimitMiddleware, settings=settings)
