"""Bearer-token authentication: verify a JWT and turn its claims into a ``Principal``.

Algorithms are pinned by the configured key (HS256 for a shared secret, RS256 for a public
key or JWKS), so a token can never choose its own algorithm; ``exp``, ``iss`` and ``aud``
are required and checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from threadline.kit.errors import Unauthenticated

__all__ = ["Principal", "TokenVerifier"]

StaffRole = Literal["owner", "admin", "member"]


class Principal(BaseModel):
    """Who is calling: a staff member of a firm, or a client contact of some accounts."""

    model_config = ConfigDict(frozen=True)

    sub: str = Field(min_length=1)
    firm: str = Field(min_length=1)
    kind: Literal["staff", "client"]
    role: StaffRole | None = None
    perms: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    name: str = ""
    expires_at: datetime | None = Field(
        default=None, description="When the token stops being valid (long-lived streams end then)."
    )

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    @property
    def is_client(self) -> bool:
        return self.kind == "client"

    @property
    def is_owner_or_admin(self) -> bool:
        return self.is_staff and self.role in {"owner", "admin"}

    def has_perm(self, perm: str) -> bool:
        return self.is_staff and perm in self.perms


@dataclass
class TokenVerifier:
    """Verifies bearer tokens against exactly one configured key kind."""

    issuer: str
    audience: str
    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    leeway_seconds: int = 30
    _jwks: jwt.PyJWKClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.secret or self.public_key or self.jwks_url):
            raise ValueError("TokenVerifier needs a secret, a public key or a JWKS URL")
        if self.jwks_url:
            self._jwks = jwt.PyJWKClient(self.jwks_url, cache_keys=True)

    def _key_and_algorithms(self, token: str) -> tuple[Any, list[str]]:
        if self._jwks is not None:
            return self._jwks.get_signing_key_from_jwt(token).key, ["RS256"]
        if self.public_key:
            return self.public_key, ["RS256"]
        return self.secret, ["HS256"]

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid token; raise Unauthenticated (401) otherwise."""
        try:
            key, algorithms = self._key_and_algorithms(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The token has expired.") from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthenticated(f"The token is not valid: {exc}.") from None
        return _principal_from_claims(claims)


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        principal = Principal.model_validate(
            {
                "sub": claims.get("sub", ""),
                "firm": claims.get("firm", ""),
                "kind": claims.get("kind"),
                "role": claims.get("role"),
                "perms": frozenset(claims.get("perms") or ()),
                "accounts": frozenset(claims.get("accounts") or ()),
                "name": claims.get("name") or "",
                "expires_at": (
                    datetime.fromtimestamp(claims["exp"], UTC) if "exp" in claims else None
                ),
            }
        )
    except ValidationError as exc:
        fields = ", ".join(str(error["loc"][0]) for error in exc.errors())
        raise Unauthenticated(f"The token's claims are incomplete or invalid: {fields}.") from None
    if principal.is_staff and principal.role is None:
        raise Unauthenticated("A staff token must carry a role.")
    if principal.is_client and principal.role is not None:
        raise Unauthenticated("A client token cannot carry a staff role.")
    return principal
