"""Mint development JWTs: ``threadline-token --kind staff --role owner``.

Signs with the local HS256 secret (``THREADLINE_JWT_SECRET``), so tokens work against the
local stack and in tests — and nowhere a real key is configured.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable, Sequence

import jwt

__all__ = ["DEFAULT_LOCAL_SECRET", "main", "mint_token"]

DEFAULT_LOCAL_SECRET = "local-dev-secret-not-for-production-use-0000"  # noqa: S105 (public dev key)


def mint_token(
    *,
    sub: str,
    firm: str,
    kind: str,
    role: str | None = None,
    perms: Iterable[str] = (),
    accounts: Iterable[str] = (),
    name: str = "",
    ttl_seconds: int = 3600,
    secret: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """A signed token with Threadline's claims; defaults come from the THREADLINE_* env."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "firm": firm,
        "kind": kind,
        "perms": sorted(perms),
        "accounts": sorted(accounts),
        "name": name,
        "iat": now,
        "exp": now + ttl_seconds,
        "iss": issuer or os.environ.get("THREADLINE_JWT_ISSUER", "threadline-local"),
        "aud": audience or os.environ.get("THREADLINE_JWT_AUDIENCE", "threadline"),
    }
    if role is not None:
        claims["role"] = role
    key = secret or os.environ.get("THREADLINE_JWT_SECRET", DEFAULT_LOCAL_SECRET)
    return jwt.encode(claims, key, algorithm="HS256")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Mint a Threadline development JWT.")
    parser.add_argument("--kind", choices=["staff", "client"], default="staff")
    parser.add_argument("--role", choices=["owner", "admin", "member"], help="staff only")
    parser.add_argument("--sub", help="user id (default: the demo owner or demo contact)")
    parser.add_argument("--firm", default="firm_demo")
    parser.add_argument("--perm", action="append", default=[], help="e.g. view_all_accounts")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        help="client: accounts the contact belongs to; staff: assigned accounts",
    )
    parser.add_argument("--name", default="")
    parser.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.kind == "client":
        if args.role:
            raise SystemExit("a client token cannot carry a staff role")
        if not args.account:
            raise SystemExit("a client token needs at least one --account")
        role, default_sub = None, "ct_ann_lee"
    else:
        role, default_sub = args.role or "owner", "st_olivia"
    print(
        mint_token(
            sub=args.sub or default_sub,
            firm=args.firm,
            kind=args.kind,
            role=role,
            perms=args.perm,
            accounts=args.account,
            name=args.name,
            ttl_seconds=args.ttl,
        )
    )
