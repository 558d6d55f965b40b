"""Every service starts on the real servers, reports ready and authenticates callers."""

import pytest

from .conftest import ServiceFactory, token_for

pytestmark = pytest.mark.integration

SERVICES = ["messaging", "tasks", "reminders", "pipeline", "documents"]


@pytest.mark.parametrize("name", SERVICES)
async def test_service_is_ready_on_real_servers(start_service: ServiceFactory, name: str) -> None:
    _, client = await start_service(name)
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["mongodb"] is True and checks["kafka"] is True
    if name == "documents":
        assert checks["object_storage"] is True


@pytest.mark.parametrize("name", SERVICES)
async def test_service_authenticates_bearer_tokens(
    start_service: ServiceFactory, name: str
) -> None:
    _, client = await start_service(name)
    token = token_for("firm_it", kind="client", sub="ct_ann", accounts=["acc_1"])
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json() | {"accounts": sorted(me.json()["accounts"])} == {
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
