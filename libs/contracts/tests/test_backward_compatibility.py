"""Released event versions stay readable: the current models only add optional fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from threadline.contracts import EventData, EventDecodeError, model_for
from threadline.contracts.compat import breaking_changes
from threadline.contracts.generate import RELEASED_DIR
from threadline.contracts.schema import event_schema

_RELEASED = sorted((Path(__file__).resolve().parents[1] / RELEASED_DIR).glob("*.json"))


def _type_and_version(snapshot: Path) -> tuple[str, int]:
    event_type, _, version = snapshot.stem.rpartition(".v")
    return event_type, int(version)


def test_there_are_released_snapshots() -> None:
    assert _RELEASED, f"no snapshots in {RELEASED_DIR}; run the generator"


@pytest.mark.parametrize("snapshot", _RELEASED, ids=[path.stem for path in _RELEASED])
def test_current_model_is_backward_compatible_with_its_release(snapshot: Path) -> None:
    event_type, version = _type_and_version(snapshot)
    try:
        model: type[EventData] = model_for(event_type, version)
    except EventDecodeError:
        pytest.fail(f"{event_type} v{version} was released and must keep being decodable")

    problems = breaking_changes(json.loads(snapshot.read_text()), event_schema(model))

    assert problems == [], (
        f"{event_type} v{version} changed incompatibly; add a v{version + 1} model instead"
    )
