"""JWT verification: claims, expiry, issuer, audience and pinned algorithms."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from threadline.kit.auth import TokenVerifier
from threadline.kit.errors import Unauthenticated

SECRET = "unit-test-secret-that-is-long-enough-000"


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "st_mia",
        "firm": "firm_a",
        "kind": "staff",
        "role": "member",
        "perms": ["manage_documents"],
        "accounts": ["acc_1"],
        "name": "Mia",
        "iss": "threadline",
        "aud": "threadline",
        "exp": now + 60,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(issuer="threadline", audience="threadline", secret=SECRET)


def test_valid_staff_token_becomes_principal(verifier: TokenVerifier) -> None:
    principal = verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert principal.sub == "st_mia"
    assert principal.firm == "firm_a"
    assert principal.is_staff and not principal.is_owner_or_admin
    assert principal.has_perm("manage_documents")
    assert principal.accounts == {"acc_1"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iss": "someone-else"}, "not valid"),
        ({"aud": "another-api"}, "not valid"),
        ({"exp": None}, "not valid"),
        ({"firm": None}, "firm"),
        ({"kind": "robot"}, "kind"),
        ({"role": None}, "role"),
    ],
)
def test_invalid_tokens_are_rejected(
    verifier: TokenVerifier, override: dict[str, object], message: str
) -> None:
    with pytest.raises(Unauthenticated, match=message):
        verifier.verify(jwt.encode(claims(**override), SECRET, algorithm="HS256"))


def test_client_token_cannot_carry_a_staff_role(verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(kind="client", role="owner"), SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated, match="client"):
        verifier.verify(token)


def test_wrong_signature_and_unsigned_tokens_are_rejected(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(
            jwt.encode(claims(), "another-secret-of-sufficient-length!!", algorithm="HS256")
        )
    with pytest.raises(Unauthenticated):
        verifier.verify(jwt.encode(claims(), None, algorithm="none"))


def test_rs256_verifier_refuses_hs256_token_signed_with_the_public_key() -> None:
    """Algorithm confusion: the public key must never be usable as an HMAC secret."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    verifier = TokenVerifier(issuer="threadline", audience="threadline", public_key=public_pem)
    assert verifier.verify(jwt.encode(claims(), key, algorithm="RS256")).sub == "st_mia"
    with pytest.raises(Unauthenticated):
        verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
