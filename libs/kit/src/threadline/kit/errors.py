"""RFC 9457 problem details, and the error roots every service's tree hangs from.

::

    ThreadlineError
    ├── NotFound        404 — also used where existence itself is private
    ├── Conflict        409
    ├── Forbidden       403
    ├── Unauthenticated 401
    └── InvalidRequest  422

Only these (and request validation) are mapped to 4xx; anything else is a bug and becomes
a 500 problem without internal detail.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "ThreadlineError",
    "Unauthenticated",
    "install_problem_handlers",
    "internal_error_response",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"
_log = structlog.get_logger(__name__)


class ThreadlineError(Exception):
    """Root of every expected, user-facing error."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    problem_type: ClassVar[str] = "about:blank"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(ThreadlineError):
    status = 404
    title = "Not found"


class Conflict(ThreadlineError):
    status = 409
    title = "Conflict"


class Forbidden(ThreadlineError):
    status = 403
    title = "Forbidden"


class Unauthenticated(ThreadlineError):
    status = 401
    title = "Unauthenticated"


class InvalidRequest(ThreadlineError):
    status = 422
    title = "Invalid request"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    all_headers = dict(headers or {})
    if status == 401:
        all_headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=all_headers)


def internal_error_response(path: str | None) -> JSONResponse:
    """The 500 a bug becomes: no internal detail (the log has it, under the correlation id)."""
    return problem_response(
        500,
        "Internal error",
        "An unexpected error occurred; it has been logged.",
        instance=path,
    )


def _status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _field_path(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part not in {"body", "query", "path"})


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error as problem+json; request validation lists each bad field."""

    async def on_threadline_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ThreadlineError)
        return problem_response(
            exc.status, exc.title, exc.detail, instance=request.url.path, **exc.extensions
        )

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": _field_path(tuple(error["loc"])) or "body", "message": error["msg"]}
            for error in exc.errors()
        ]
        summary = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
        return problem_response(
            422, "Invalid request", summary, instance=request.url.path, errors=errors
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            exc.status_code,
            _status_title(exc.status_code),
            str(exc.detail),
            instance=request.url.path,
            headers=exc.headers,
        )

    async def on_storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
        """The database was unreachable or reset the connection: nothing was half-written
        (every write is one document), so the caller may retry."""
        _log.warning("storage unavailable", path=request.url.path, error=str(exc))
        response = problem_response(
            503,
            "Storage unavailable",
            "The database did not answer in time; retry the request shortly.",
            instance=request.url.path,
        )
        response.headers["Retry-After"] = "1"
        return response

    async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        """Only reached by apps without ``RequestContextMiddleware`` (which logs and answers
        first, with the correlation id)."""
        _log.exception("unhandled error", path=request.url.path)
        return internal_error_response(request.url.path)

    app.add_exception_handler(ThreadlineError, on_threadline_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ConnectionFailure, on_storage_unavailable)
    app.add_exception_handler(Exception, on_unexpected_error)
