"""Rules every event model follows: routing, documentation, naming, keys."""

from __future__ import annotations

import re
import types
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from threadline.contracts import EventData, Topic, all_event_models, model_for, topic_for
from threadline.contracts.examples import example_event
from threadline.contracts.topics import KEYED_BY

_EVENT_TYPE = re.compile(r"^[a-z]+(\.[a-z_]+){2}$")


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models used inside a field annotation (lists, optionals, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (
        list,
        dict,
        tuple,
        set,
        frozenset,
        Union,
        types.UnionType,
    ) or get_args(annotation):
        return [found for arg in get_args(annotation) for found in _nested_models(arg)]
    return []


def _all_models(
    model: type[BaseModel], seen: set[type[BaseModel]] | None = None
) -> list[type[BaseModel]]:
    seen = set() if seen is None else seen
    if model in seen:
        return []
    seen.add(model)
    found = [model]
    for field in model.model_fields.values():
        for nested in _nested_models(field.annotation):
            found += _all_models(nested, seen)
    return found


def test_topic_for_covers_every_registered_type(model: type[EventData]) -> None:
    assert topic_for(model.event_type) in Topic


def test_every_topic_has_a_key_description_and_events() -> None:
    topics = {topic_for(model.event_type) for model in all_event_models()}

    assert set(KEYED_BY) == set(Topic)
    assert topics == set(Topic)


def test_event_type_is_producer_aggregate_verb(model: type[EventData]) -> None:
    assert _EVENT_TYPE.match(model.event_type), model.event_type
    assert model.schema_version >= 1


def test_every_field_has_description_and_examples(model: type[EventData]) -> None:
    undocumented = [
        f"{part.__name__}.{name}"
        for part in _all_models(model)
        for name, field in part.model_fields.items()
        if not field.description or not field.examples
    ]

    assert undocumented == []


def test_every_model_and_part_has_a_docstring(model: type[EventData]) -> None:
    assert all(part.__doc__ for part in _all_models(model))


def test_every_model_part_is_frozen(model: type[EventData]) -> None:
    assert all(part.model_config.get("frozen") for part in _all_models(model))


def test_key_field_is_firm_or_names_a_string_field(model: type[EventData]) -> None:
    key_field = model.key_field

    assert key_field is None or model.model_fields[key_field].annotation is str


def test_kafka_headers_carry_type_version_and_ids(model: type[EventData]) -> None:
    event = example_event(model)

    headers = event.kafka_headers()

    assert headers["event-type"] == model.event_type
    assert headers["schema-version"] == str(model.schema_version)
    assert headers["event-id"] == str(event.id)
    assert headers["correlation-id"] == event.correlation_id


@pytest.mark.parametrize(
    ("event_type", "key_field"),
    [
        ("messaging.thread.created", "thread_id"),
        ("messaging.message.posted", "thread_id"),
        ("messaging.firm_chat_settings.changed", None),
        ("tasks.list.changed", "thread_id"),
        ("tasks.request.changed", "request_id"),
        ("documents.document.uploaded", "account_id"),
        ("pipeline.job.moved", "job_id"),
        ("reminders.reminder.sent", "thread_id"),
        ("directory.account.upserted", "account_id"),
        ("directory.staff.removed", None),
    ],
)
def test_events_are_keyed_as_architecture_says(event_type: str, key_field: str | None) -> None:
    assert model_for(event_type, 1).key_field == key_field
