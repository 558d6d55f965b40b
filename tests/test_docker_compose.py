"""docker-compose.yml cannot run here (no Docker engine); this keeps its structure honest.

The THREADLINE_* names come from the local stack, so Compose and `./threadline up` cannot
drift apart: a variable added to one and not the other fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from threadline.devtools.stack import SERVICE_ENV_VARS, SERVICES

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = sorted(SERVICES)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # ["NAME=value", ...] form
        return dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def test_compose_has_the_servers_and_the_five_services(compose: dict[str, Any]) -> None:
    assert {"kafka", "mongodb", "minio", "mailpit", *APP_SERVICES} <= set(compose["services"])


def test_every_container_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_builds_from_the_one_dockerfile_with_its_name_as_argument(
    compose: dict[str, Any], name: str
) -> None:
    build = compose["services"][name]["build"]
    assert Path(build["context"]) == Path()
    assert build["dockerfile"] == "Dockerfile"
    assert build["args"] == {"SERVICE": name}
    assert (ROOT / "services" / name / "pyproject.toml").is_file(), "the argument names a service"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_gets_every_variable_the_local_stack_sets(
    compose: dict[str, Any], name: str
) -> None:
    env = _environment(compose["services"][name])
    missing = [var for var in SERVICE_ENV_VARS if var not in env]
    assert not missing, f"{name} lacks {missing}"
    assert env["THREADLINE_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] in compose["services"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_checks_readyz(compose: dict[str, Any], name: str) -> None:
    assert any("/readyz" in part for part in compose["services"][name]["healthcheck"]["test"])


def test_dependencies_wait_until_healthy(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must name conditions"
        for dependency, spec in depends_on.items():
            assert dependency in compose["services"]
            assert spec == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    servers = {"kafka", "mongodb", "minio", "mailpit"}
    for name in APP_SERVICES:
        assert servers <= set(compose["services"][name]["depends_on"])


def test_dockerfile_runs_uvicorn_on_the_named_service_factory_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    cmd = next(line for line in text.splitlines() if line.startswith("CMD"))
    assert "THREADLINE_SERVICE_MODULE=threadline.${SERVICE}.main" in text
    assert 'exec uvicorn --factory \\"$THREADLINE_SERVICE_MODULE:create_app\\"' in cmd
    assert "--port 8000" in cmd
    assert "--timeout-graceful-shutdown 15" in cmd, "in-flight requests get a deadline"
    assert "FROM python:3.11-slim" in text
    final_stage = text.rsplit("FROM ", 1)[1]
    assert "\nUSER " in final_stage and "USER root" not in final_stage
    for source in ("libs/contracts", "libs/kit", "services/${SERVICE}"):
        assert f"COPY {source} {source}" in text
    assert "--package threadline-${SERVICE}" in text
    assert not any(f"services/{other}" in text for other in SERVICES), "only the named one"
    assert not list(ROOT.glob("services/*/Dockerfile")), "one parametrised Dockerfile"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_stop_grace_outlasts_the_graceful_shutdown(
    compose: dict[str, Any], name: str
) -> None:
    grace = compose["services"][name]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > 15 + 10
