"""Enum values added within a schema version (which compat allows) decode on older models;
producers still cannot emit an unlisted value."""

from __future__ import annotations

import json
import typing
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

from threadline.contracts import EventData, EventDecodeError, all_event_models, decode
from threadline.contracts.compat import breaking_changes
from threadline.contracts.events.documents import DocumentDeleted
from threadline.contracts.examples import example_event
from threadline.contracts.extensible import Extensible
from threadline.contracts.schema import event_schema


def _deleted_with(**data: Any) -> dict[str, Any]:
    document = example_event(DocumentDeleted).model_dump(mode="json")
    document["data"].update(data)
    return document


def test_a_reason_added_by_a_newer_producer_decodes_and_is_kept() -> None:
    decoded = decode(json.dumps(_deleted_with(reason="retention_expired")))

    assert isinstance(decoded.data, DocumentDeleted)
    assert decoded.data.reason == "retention_expired"
    assert json.loads(decoded.to_bytes())["data"]["reason"] == "retention_expired"


def test_an_unknown_value_in_a_nested_model_decodes_too() -> None:
    actor = {"user_id": "bot_1", "kind": "integration"}
    decoded = decode(json.dumps(_deleted_with(deleted_by=actor)))

    assert isinstance(decoded.data, DocumentDeleted)
    assert decoded.data.deleted_by is not None and decoded.data.deleted_by.kind == "integration"


def test_a_value_of_the_wrong_type_is_still_rejected() -> None:
    with pytest.raises(EventDecodeError, match=r"documents\.document\.deleted v1"):
        decode(json.dumps(_deleted_with(reason=7)))


def test_producers_cannot_emit_an_unlisted_value() -> None:
    fields = example_event(DocumentDeleted).data.model_dump()
    with pytest.raises(ValidationError, match="reason"):
        DocumentDeleted(**{**fields, "reason": "retention_expired"})


def test_the_compat_check_allows_the_addition_that_decoding_tolerates() -> None:
    released = event_schema(DocumentDeleted)
    current = json.loads(json.dumps(released))
    current["properties"]["data"]["$ref"]
    definition = current["$defs"]["DocumentDeleted"]["properties"]["reason"]
    definition["enum"] = [*definition["enum"], "retention_expired"]

    assert breaking_changes(released, current) == []


def _enum_fields(model: type[BaseModel], path: str, seen: set[type[BaseModel]]) -> list[str]:
    """Paths of fields whose type contains a Literal without the Extensible validator."""
    if model in seen:
        return []
    seen.add(model)
    closed = []
    for name, info in model.model_fields.items():
        where = f"{path}.{name}"
        if _contains_literal(info.annotation) and Extensible not in info.metadata:
            closed.append(where)
        for nested in _models_in(info.annotation):
            closed += _enum_fields(nested, where, seen)
    return closed


def _contains_literal(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Literal:
        return True
    return any(_contains_literal(arg) for arg in typing.get_args(annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def test_every_enum_field_of_every_event_is_extensible() -> None:
    closed: list[str] = []
    seen: set[type[BaseModel]] = set()
    for model in all_event_models():
        closed += _enum_fields(model, model.event_type, seen)
    assert closed == []


def test_the_walk_above_finds_a_closed_enum() -> None:
    class Closed(EventData):
        event_type = "test.closed.checked"
        key_field = None
        mode: Literal["a", "b"]

    assert _enum_fields(Closed, "closed", set()) == ["closed.mode"]
