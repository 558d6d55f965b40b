"""FastAPI dependencies shared by every service: the authenticated principal.

Routes declare ``principal: CurrentPrincipal``; a missing or invalid bearer token becomes a
401 problem response before the route runs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from threadline.kit.auth import Principal, TokenVerifier
from threadline.kit.errors import Unauthenticated

__all__ = ["CurrentPrincipal", "current_principal"]

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
