"""Transient or poison: how a failed event handler is treated.

* **Transient** — the dependency is down or slow (connection refused or reset, timeouts,
  a 5xx answer, MongoDB reconnecting or no server selectable, SMTP disconnected). The
  event is good; retrying later will work. The consumer retries with capped exponential
  backoff and does not move past the record meanwhile.
* **Poison** — the event can never succeed (it does not decode, does not validate, or the
  handler raised ``PermanentError``). It goes to the dead-letter topic at once.
* Anything else is a bug or an unforeseen case: a few quick retries, then the dead-letter
  topic (it can be replayed once fixed, see ``threadline-dlq``).

Handlers raise ``TransientError`` / ``PermanentError`` to say which it is explicitly.
"""

from __future__ import annotations

from typing import Literal

import pydantic
from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from threadline.contracts import EventDecodeError

__all__ = ["Failure", "PermanentError", "TransientError", "classify"]

Failure = Literal["transient", "poison", "unknown"]


class TransientError(Exception):
    """A dependency failed in a way that retrying later will fix."""


class PermanentError(Exception):
    """This event can never be handled: dead-letter it now."""


_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,  # asyncio and socket timeouts
    AutoReconnect,  # includes NetworkTimeout and pymongo's ConnectionFailure subclasses
    ServerSelectionTimeoutError,
    ExecutionTimeout,
    WTimeoutError,
)

# Optional dependencies, matched by qualified name so the kit need not import them.
_TRANSIENT_NAMES = frozenset(
    {
        "aiosmtplib.errors.SMTPConnectError",
        "aiosmtplib.errors.SMTPConnectTimeoutError",
        "aiosmtplib.errors.SMTPServerDisconnected",
        "aiosmtplib.errors.SMTPTimeoutError",
        "aiosmtplib.errors.SMTPReadTimeoutError",
        "httpx.TransportError",
        "urllib3.exceptions.HTTPError",
    }
)


def classify(exc: BaseException) -> Failure:
    """Transient (retry until it works), poison (dead-letter now) or unknown."""
    if isinstance(exc, PermanentError | EventDecodeError | pydantic.ValidationError):
        return "poison"
    if isinstance(exc, _TRANSIENT_TYPES):
        return "transient"
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}
    if names & _TRANSIENT_NAMES or _status_code(exc) in range(500, 600):
        return "transient"
    cause = exc.__cause__
    return classify(cause) if cause is not None and cause is not exc else "unknown"


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of a dependency's error answer (httpx, MinIO ``ServerError``…)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "status", None)
    return status if isinstance(status, int) else None
