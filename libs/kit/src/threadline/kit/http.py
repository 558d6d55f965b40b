"""FastAPI dependencies shared by every service: the authenticated principal, and typed
access to what ``wire`` put on ``app.state``.

Routes declare ``principal: CurrentPrincipal``; a missing or invalid bearer token becomes a
401 problem response before the route runs. ``from_state("threads", ThreadService)`` is a
dependency returning ``app.state.threads`` checked to be a ``ThreadService``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from threadline.kit.auth import Principal, TokenVerifier
from threadline.kit.errors import Unauthenticated

__all__ = ["CurrentPrincipal", "current_principal", "from_state"]

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
