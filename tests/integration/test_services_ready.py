"""Every service starts on the real servers, reports ready and authenticates callers."""

from datetime import UTC, datetime

import pytest

from .conftest import ModuleServices, eventually, token_for

pytestmark = pytest.mark.integration

SERVICES = ["messaging", "tasks", "reminders", "pipeline", "documents"]


@pytest.mark.parametrize("name", SERVICES)
async def test_service_is_ready_on_real_servers(module_services: ModuleServices, name: str) -> None:
    _, client = await module_services(name)
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await eventually(lambda: client.get("/readyz"), until=lambda r: r.status_code == 200)
    checks = ready.json()["checks"]
    assert checks["mongodb"] is True and checks["kafka"] is True and checks["consumer"] is True
    if name == "documents":
        assert checks["object_storage"] is True
    if name == "messaging":
        assert checks["stream"] is True, "the stream feed is positioned on the topic"


@pytest.mark.parametrize("name", SERVICES)
async def test_service_authenticates_bearer_tokens(
    module_services: ModuleServices, name: str
) -> None:
    _, client = await module_services(name)
    token = token_for("firm_it", kind="client", sub="ct_ann", accounts=["acc_1"])
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    identity = me.json()
    expires_at = datetime.fromisoformat(identity.pop("expires_at"))
    assert expires_at > datetime.now(UTC), "the token's expiry travels with the principal"
    assert identity | {"accounts": sorted(identity["accounts"])} == {
        "sub": "ct_ann",
        "firm": "firm_it",
        "kind": "client",
        "role": None,
        "perms": [],
        "accounts": ["acc_1"],
        "name": "",
    }
    anonymous = await client.get("/v1/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}x"})
    assert forged.status_code == 401
    assert "not valid" in forged.json()["detail"]
