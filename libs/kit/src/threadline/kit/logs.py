"""Structured JSON logs with the correlation id bound from the HTTP request or event.

Every logger writes JSON lines: structlog's own loggers and the standard library's (uvicorn's
access and error loggers, libraries, the root logger) all go through one
``ProcessorFormatter`` with the JSON renderer, so a traceback is one ``exception`` field of
one line. Query-string secrets (``access_token=`` and the like) are redacted from every line.

The correlation id lives in a structlog context variable: the request middleware binds it
from ``X-Correlation-ID`` when that is a short token of safe characters (otherwise it mints
one), the outbox copies it into every event it writes, and consumers bind it from the event
they handle — so one id follows a flow end to end.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.typing import EventDict, WrappedLogger

from threadline.kit.errors import DEFAULT_RETRY_AFTER_SECONDS, error_response, problem_response

__all__ = [
    "CORRELATION_HEADER",
    "MAX_CORRELATION_ID_LENGTH",
    "RequestContextMiddleware",
    "bind_correlation",
    "configure_logging",
    "correlation_id",
    "redact_secrets",
    "valid_correlation_id",
]

CORRELATION_HEADER = "X-Correlation-ID"
MAX_CORRELATION_ID_LENGTH = 128
_CORRELATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
SECRET_QUERY_KEYS = frozenset(
    {
        "access_token",
        "id_token",
        "refresh_token",
        "token",
        "code",
        "password",
        "secret",
        "api_key",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    }
)
_SECRET_IN_TEXT = re.compile(
    r"(?i)\b(" + "|".join(re.escape(key) for key in sorted(SECRET_QUERY_KEYS)) + r")=[^&\s\"']*"
)
REDACTED = "[redacted]"
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "faststream")
_log = structlog.get_logger(__name__)


def redact_secrets(text: str) -> str:
    """``text`` with the value of every ``access_token=…``-like pair replaced."""
    return _SECRET_IN_TEXT.sub(lambda match: f"{match.group(1)}={REDACTED}", text)


def _redact_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [(key, REDACTED if key.lower() in SECRET_QUERY_KEYS else value) for key, value in pairs]
    )


def _uvicorn_access_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """uvicorn's access line → structured fields, with secrets taken out of the query."""
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    args = event_dict.pop("positional_args", ())
    record = event_dict.get("_record")
    if record is None or record.name != "uvicorn.access" or len(args) != 5:
        return event_dict
    client, method, full_path, http_version, status = args
    path, _, query = str(full_path).partition("?")
    event_dict.update(
        event="http request",
        client=client,
        method=method,
        path=path,
        status=status,
        http_version=http_version,
    )
    if query:
        event_dict["query"] = _redact_query(query)
    return event_dict


def _redact_strings(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        if isinstance(value, str) and "=" in value:
            event_dict[key] = redact_secrets(value)
    return event_dict


def configure_logging(*, service: str, level: str = "INFO", stream: IO[str] | None = None) -> None:
    """JSON lines on ``stream`` (stdout) from every logger, with service, level, timestamp
    and context."""

    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    shared: list[Any] = [
        add_service,
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *shared,
            structlog.stdlib.ExtraAdder(),  # e.g. FastStream's topic and message id
            _uvicorn_access_fields,
        ],
        pass_foreign_args=True,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_strings,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings too, as JSON through the py.warnings logger
    # Libraries that set up their own text handlers (uvicorn, FastStream) log through the
    # root's JSON handler instead.
    named_loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for named in [*named_loggers, *map(logging.getLogger, _LIBRARY_LOGGERS)]:
        for existing in list(named.handlers):
            named.removeHandler(existing)
        named.propagate = True
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def correlation_id() -> str | None:
    """The correlation id of the flow being handled, if any."""
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return str(value) if value else None


def valid_correlation_id(value: str | None) -> bool:
    """A caller's id is kept only when it is 1 to 128 characters of ``A-Z a-z 0-9 . _ : -``."""
    return (
        value is not None
        and len(value) <= MAX_CORRELATION_ID_LENGTH
        and _CORRELATION_ID.fullmatch(value) is not None
    )


def bind_correlation(value: str | None) -> str:
    """Bind ``value`` as the correlation id of the current task when it is valid, a new one
    otherwise (a client's id reaches logs and events, so it is never taken as it is)."""
    bound = value if value is not None and valid_correlation_id(value) else str(uuid.uuid4())
    structlog.contextvars.bind_contextvars(correlation_id=bound)
    return bound


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def control_character_refusal(scope: Scope) -> JSONResponse | None:
    """A 400 for a path or query value carrying a control character (NUL above all: no
    identifier, cursor or filter has one, and PostgreSQL-backed servers cannot even compare
    a string holding NUL), answered before any route or storage sees it."""
    path = scope.get("path", "")
    if _CONTROL_CHARACTER.search(path):
        return problem_response(
            400, "Bad Request", "The path contains a control character.", instance=None
        )
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _CONTROL_CHARACTER.search(name) or _CONTROL_CHARACTER.search(value):
            return problem_response(
                400,
                "Bad Request",
                f"Query parameter {name[:64]!r} contains a control character.",
                instance=path,
            )
    return None


class RequestContextMiddleware:
    """The outermost application middleware: binds the correlation id, echoes it on every
    response, and turns any exception that escapes the app or another middleware into a
    logged (once, with the id) problem+json 500 instead of a dropped connection."""

    def __init__(
        self, app: ASGIApp, *, retry_after_seconds: int = DEFAULT_RETRY_AFTER_SECONDS
    ) -> None:
        self.app = app
        self._retry_after = retry_after_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        bound = bind_correlation(Headers(scope=scope).get(CORRELATION_HEADER))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[CORRELATION_HEADER] = bound
            await send(message)

        refusal = control_character_refusal(scope) if scope["type"] == "http" else None
        if refusal is not None:
            await refusal(scope, receive, send_with_id)
            structlog.contextvars.unbind_contextvars("correlation_id")
            return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Logged once by error_response: a warning for a dependency outage (503 with
            # Retry-After), the traceback for anything else (500).
            answer = error_response(
                exc,
                scope.get("path"),
                method=scope.get("method"),
                retry_after_seconds=self._retry_after,
            )
            if scope["type"] == "http" and not started:
                await answer(scope, receive, send_with_id)
            # A response already under way (or a WebSocket) is ended by the server.
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id")
