"""Shared fixtures: the whole catalogue, registered once."""

from __future__ import annotations

from pathlib import Path

import pytest

from threadline.contracts import EventData, all_event_models

CONTRACTS_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def contracts_root() -> Path:
    return CONTRACTS_ROOT


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize any test taking ``model`` over every registered event model."""
    if "model" in metafunc.fixturenames:
        models: list[type[EventData]] = all_event_models()
        metafunc.parametrize(
            "model", models, ids=[f"{m.event_type}.v{m.schema_version}" for m in models]
        )
