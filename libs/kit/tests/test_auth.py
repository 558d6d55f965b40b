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


def _raw_token(payload: str) -> str:
    """A correctly HS256-signed token whose payload is ``payload`` verbatim (JSON that
    PyJWT's encoder would not produce, e.g. ``Infinity``)."""
    import base64  # noqa: PLC0415
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(payload.encode())
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


@pytest.mark.parametrize(
    "exp",
    # the string is a future time (2100-01-01); a fixed value, so that parallel test
    # workers collect the same test ids
    ["4102444800", 10**20, 2**63, 1e300, True, [1], {"at": 1}, -5],
)
def test_a_validly_signed_token_with_an_unusable_exp_is_401(
    verifier: TokenVerifier, exp: object
) -> None:
    """Issue 10: a string or 10**20 `exp` raised TypeError/OverflowError (a 500)."""
    with pytest.raises(Unauthenticated):
        verifier.verify(jwt.encode(claims(exp=exp), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("exp", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_a_token_with_a_non_finite_exp_is_401(verifier: TokenVerifier, exp: str) -> None:
    payload = (
        '{"sub":"st_mia","firm":"firm_a","kind":"staff","role":"member",'
        f'"iss":"threadline","aud":"threadline","exp":{exp}}}'
    )
    with pytest.raises(Unauthenticated):
        verifier.verify(_raw_token(payload))


@pytest.mark.parametrize(
    "override",
    [
        {"perms": 5},
        {"perms": "manage_documents"},
        {"perms": [1, 2]},
        {"accounts": {"acc_1": True}},
        {"accounts": "acc_1"},
        {"name": 7},
        {"sub": 12},
        {"firm": ["firm_a"]},
        {"kind": 1},
        {"role": True},
    ],
)
def test_claims_of_the_wrong_type_are_401_not_coerced(
    verifier: TokenVerifier, override: dict[str, object]
) -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(jwt.encode(claims(**override), SECRET, algorithm="HS256"))
