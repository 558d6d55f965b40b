"""Structured JSON logs with the correlation id bound from the HTTP request or event.

The correlation id lives in a structlog context variable: the HTTP middleware binds it
from ``X-Correlation-ID`` (or mints one), the outbox copies it into every event it writes,
and consumers bind it from the event they handle — so one id follows a flow end to end.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "CORRELATION_HEADER",
    "bind_correlation",
    "configure_logging",
    "correlation_id",
    "correlation_middleware",
]

CORRELATION_HEADER = "X-Correlation-ID"


def configure_logging(*, service: str, level: str = "INFO") -> None:
    """JSON lines on stdout, with service name, level, timestamp and bound context."""
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level.upper(), force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)


def correlation_id() -> str | None:
    """The correlation id of the flow being handled, if any."""
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return str(value) if value else None


def bind_correlation(value: str | None) -> str:
    """Bind (or mint) the correlation id for the current task; returns it."""
    bound = value or str(uuid.uuid4())
    structlog.contextvars.bind_contextvars(correlation_id=bound)
    return bound


async def correlation_middleware(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """HTTP middleware: carry the caller's correlation id (or a new one) through the request."""
    incoming = request.headers.get(CORRELATION_HEADER)
    bound = bind_correlation(incoming[:128] if incoming else None)
    try:
        response = await call_next(request)
    finally:
        structlog.contextvars.unbind_contextvars("correlation_id")
    response.headers[CORRELATION_HEADER] = bound
    return response
