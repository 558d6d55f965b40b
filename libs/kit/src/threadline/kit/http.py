"""FastAPI dependencies shared by every service: the authenticated principal, and typed
access to what ``wire`` put on ``app.state``.

Routes declare ``principal: CurrentPrincipal``; a missing or invalid bearer token becomes a
401 problem response before the route runs. ``from_state("threads", ThreadService)`` is a
dependency returning ``app.state.threads`` checked to be a ``ThreadService``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from threadline.kit.auth import Principal, TokenVerifier
from threadline.kit.errors import Unauthenticated

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "CurrentPrincipal",
    "current_principal",
    "from_state",
    "idempotency_key_header",
    "mark_replayed",
]

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
"""An ``Idempotency-Key`` header: 1-200 printable ASCII characters."""


def idempotency_key_header(description: str | None = None) -> Any:
    """The optional ``Idempotency-Key`` header of a route that makes a retry safe."""
    return Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN, description=description)


def mark_replayed(response: Response, replayed: bool) -> None:
    """Tell the client its keyed retry was answered from what the first try stored."""
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"


T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="A Threadline JWT (see ARCHITECTURE.md).")


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("A bearer token is required.")
    verifier: TokenVerifier = request.app.state.runtime.verifier
    return verifier.verify(credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def from_state(name: str, kind: type[T]) -> Callable[[Request], T]:
    """A dependency returning ``app.state.<name>``, typed, and refusing a wiring mistake
    (missing or of another type) loudly instead of failing somewhere inside a route."""

    def get(request: Request) -> T:
        value = getattr(request.app.state, name, None)
        if not isinstance(value, kind):
            raise TypeError(f"app.state.{name} is {type(value).__name__}, not {kind.__name__}")
        return value

    get.__name__ = f"state_{name}"
    return get
