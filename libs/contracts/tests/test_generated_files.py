"""The committed AsyncAPI document and JSON Schemas are exactly what the models generate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from threadline.contracts import all_event_models
from threadline.contracts.asyncapi import build_asyncapi
from threadline.contracts.generate import RELEASED_DIR, check, main, rendered_files, write
from threadline.contracts.schema import event_id


def test_committed_files_match_the_models(contracts_root: Path) -> None:
    assert check(contracts_root) == [], "run `python -m threadline.contracts.generate`"


def test_rendering_is_deterministic() -> None:
    assert rendered_files() == rendered_files()


def test_files_are_sorted_json_with_a_trailing_newline() -> None:
    for content in rendered_files().values():
        assert content.endswith("}\n")
        assert (
            content
            == json.dumps(json.loads(content), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


def test_write_then_check_is_clean_and_check_flags_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0

    (tmp_path / "asyncapi.json").write_text("{}\n")
    (tmp_path / "schemas" / "gone.event.removed.v1.json").write_text("{}\n")
    capsys.readouterr()

    assert main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "asyncapi.json: differs from the models" in err
    assert "schemas/gone.event.removed.v1.json: stale" in err


def test_released_snapshots_are_written_once_and_never_overwritten(tmp_path: Path) -> None:
    write(tmp_path)
    snapshot = tmp_path / RELEASED_DIR / f"{event_id(all_event_models()[0])}.json"
    snapshot.write_text('{"baseline": true}\n')

    write(tmp_path)

    assert snapshot.read_text() == '{"baseline": true}\n'
    assert check(tmp_path) == []


def test_missing_released_snapshot_is_drift(tmp_path: Path) -> None:
    write(tmp_path)
    snapshot = tmp_path / RELEASED_DIR / f"{event_id(all_event_models()[0])}.json"
    snapshot.unlink()

    assert check(tmp_path) == [f"{snapshot.relative_to(tmp_path)}: released snapshot missing"]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _lookup(document: dict[str, Any], ref: str) -> Any:
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def test_asyncapi_refs_all_resolve_inside_the_document() -> None:
    document = build_asyncapi()

    refs = _refs(document)

    assert refs
    assert all(ref.startswith("#/") for ref in refs)
    for ref in refs:
        _lookup(document, ref)


def test_asyncapi_has_one_message_per_event_published_by_its_producer() -> None:
    document = build_asyncapi()

    ids = {event_id(model) for model in all_event_models()}

    assert set(document["components"]["messages"]) == ids
    in_channels = {mid for channel in document["channels"].values() for mid in channel["messages"]}
    assert in_channels == ids
    published = {
        ref["$ref"].rsplit("/", 1)[1]
        for op in document["operations"].values()
        for ref in op["messages"]
    }
    assert published == ids
    assert {op["action"] for op in document["operations"].values()} == {"send"}


def test_asyncapi_examples_carry_the_headers_the_schema_describes() -> None:
    for message in build_asyncapi()["components"]["messages"].values():
        schema = message["headers"]
        for example in message["examples"]:
            assert set(schema["required"]) <= set(example["headers"]) <= set(schema["properties"])
            assert example["payload"]["type"] == message["name"]
