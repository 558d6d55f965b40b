"""Each service's committed ``openapi.json`` is exactly what its app generates, and every
route that answers with a body declares its schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from threadline.devtools.openapi import SERVICES, check, main, rendered_files, service_openapi

ROOT = Path(__file__).resolve().parents[1]


def test_committed_documents_match_the_apps() -> None:
    assert check(ROOT) == [], "run `.venv/bin/python -m threadline.devtools.openapi`"


def test_check_flags_a_missing_or_changed_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0
    changed = tmp_path / "services" / "messaging" / "openapi.json"
    changed.write_text(changed.read_text().replace('"201"', '"200"'))
    (tmp_path / "services" / "tasks" / "openapi.json").unlink()
    capsys.readouterr()

    assert main(["--check", "--root", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert "services/messaging/openapi.json: differs from the app" in err
    assert "services/tasks/openapi.json: missing" in err


def test_rendering_is_deterministic() -> None:
    assert rendered_files() == rendered_files()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_every_success_with_a_body_has_a_schema(service: str) -> None:
    untyped = []
    for method, path, operation in _operations(service_openapi(service)):
        for code, response in operation["responses"].items():
            if not code.startswith("2") or code == "204":
                continue
            schemas = [media.get("schema") for media in response.get("content", {}).values()]
            if not schemas or not all(schemas):
                untyped.append(f"{method} {path} {code}")
    assert untyped == []


def test_response_schemas_state_which_keys_are_optional() -> None:
    """A staff-only key is absent for clients, not null: the schema must not require it."""
    schemas = service_openapi("messaging")["components"]["schemas"]
    message = schemas["MessageView"]
    assert "read_at" not in message["required"] and "status" not in message["required"]
    assert {"id", "seq", "author", "posted_at"} <= set(message["required"])
    assert message["additionalProperties"] is False
    created_at = schemas["ThreadView"]["properties"]["created_at"]
    assert (created_at["type"], created_at["format"]) == ("string", "date-time")
