"""RFC 9457 problem details, and the error roots every service's tree hangs from.

::

    ThreadlineError
    ├── NotFound        404 — also used where existence itself is private
    ├── Conflict        409
    ├── Forbidden       403
    ├── Unauthenticated 401
    ├── InvalidRequest  422
    └── DependencyUnavailable 503 (+ ``Retry-After``)

Only these (and request validation) are mapped to 4xx; a dependency that is down or too
slow — MongoDB (pymongo's connection failures and timeouts), object storage (urllib3's
connection errors, 5xx answers) — is a 503 with ``Retry-After`` wherever it is raised
(``unavailable_dependency`` recognises it, also as the cause of another error); anything
else is a bug and becomes a 500 problem without internal detail.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "DEFAULT_RETRY_AFTER_SECONDS",
    "Conflict",
    "DependencyUnavailable",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "ThreadlineError",
    "Unauthenticated",
    "error_response",
    "install_problem_handlers",
    "internal_error_response",
    "problem_response",
    "unavailable_dependency",
]

PROBLEM_JSON = "application/problem+json"
DEFAULT_RETRY_AFTER_SECONDS = 5
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


class DependencyUnavailable(ThreadlineError):
    """A dependency (database, object storage…) is down or did not answer in time. Nothing
    is half-written (every write is one document; uploads are staged; multi-write flows
    are completed by their repair passes), so the caller may retry after ``Retry-After``
    seconds."""

    status = 503
    title = "Service unavailable"

    def __init__(self, dependency: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(
            f"{dependency} is unavailable or did not answer in time; retry the request shortly.",
            dependency=dependency,
        )
        self.dependency = dependency
        self.retry_after_seconds = retry_after_seconds


MONGODB = "MongoDB"
OBJECT_STORAGE = "object storage"
# Optional dependencies, matched by qualified name so the kit need not import them.
_CONNECTION_ERRORS = frozenset({"urllib3.exceptions.HTTPError"})
_STORAGE_ANSWERS = frozenset({"minio.error.MinioException"})  # an outage when 5xx


def unavailable_dependency(exc: BaseException) -> str | None:
    """The dependency whose outage ``exc`` is (or was caused by), if it is one: MongoDB
    unreachable or timing out, object storage unreachable or answering 5xx."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DependencyUnavailable):
            return current.dependency
        if isinstance(current, ConnectionFailure) or (
            isinstance(current, PyMongoError) and current.timeout
        ):
            return MONGODB
        names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(current).__mro__}
        if names & _CONNECTION_ERRORS:
            return OBJECT_STORAGE
        if names & _STORAGE_ANSWERS and _answer_status(current) >= 500:
            return OBJECT_STORAGE
        current = current.__cause__ or current.__context__
    return None


def _answer_status(exc: BaseException) -> int:
    """The HTTP status of an object-storage error answer (0 when it names none)."""
    for status in (
        getattr(exc, "status_code", None),  # minio ServerError
        getattr(getattr(exc, "response", None), "status", None),  # minio S3Error
        getattr(exc, "_code", None),  # minio InvalidResponseError
    ):
        if isinstance(status, int):
            return status
    return 0


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


def dependency_unavailable_response(
    dependency: str, path: str | None, *, retry_after_seconds: int
) -> JSONResponse:
    error = DependencyUnavailable(dependency)
    return problem_response(
        error.status,
        error.title,
        error.detail,
        instance=path,
        headers={"Retry-After": str(retry_after_seconds)},
        dependency=dependency,
    )


def error_response(
    exc: BaseException,
    path: str | None,
    *,
    method: str | None = None,
    retry_after_seconds: int = DEFAULT_RETRY_AFTER_SECONDS,
) -> JSONResponse:
    """What an exception nothing handled becomes: 503 + ``Retry-After`` for a dependency
    outage (logged as a warning), else a logged 500 without internal detail."""
    dependency = unavailable_dependency(exc)
    if dependency is None:
        _log.error("unhandled error", path=path, method=method, exc_info=exc)
        return internal_error_response(path)
    _log.warning(
        "dependency unavailable", dependency=dependency, path=path, method=method, error=repr(exc)
    )
    return dependency_unavailable_response(
        dependency, path, retry_after_seconds=retry_after_seconds
    )


def _status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _field_path(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part not in {"body", "query", "path"})


def install_problem_handlers(
    app: FastAPI, *, retry_after_seconds: int = DEFAULT_RETRY_AFTER_SECONDS
) -> None:
    """Render every error as problem+json; request validation lists each bad field; a
    dependency outage is a 503 with ``Retry-After: retry_after_seconds``."""

    async def on_threadline_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ThreadlineError)
        headers = None
        if isinstance(exc, DependencyUnavailable):
            wait = exc.retry_after_seconds or retry_after_seconds
            headers = {"Retry-After": str(wait)}
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            instance=request.url.path,
            headers=headers,
            **exc.extensions,
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

    async def on_dependency_error(request: Request, exc: Exception) -> JSONResponse:
        """MongoDB unreachable, or another error that may be an outage (else a 500)."""
        return error_response(exc, request.url.path, retry_after_seconds=retry_after_seconds)

    async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        """Only reached by apps without ``RequestContextMiddleware`` (which logs and answers
        first, with the correlation id)."""
        return error_response(exc, request.url.path, retry_after_seconds=retry_after_seconds)

    app.add_exception_handler(ThreadlineError, on_threadline_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(PyMongoError, on_dependency_error)
    app.add_exception_handler(Exception, on_unexpected_error)
