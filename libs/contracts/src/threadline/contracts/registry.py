"""The catalogue of event types and the decoder that turns Kafka bytes into models.

Every event model registers itself here by ``(event_type, schema_version)`` when its
module in ``threadline.contracts.events`` is imported (``events/__init__`` imports all).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import ValidationError

from threadline.contracts.envelope import Envelope, EventData, envelope_of

__all__ = ["EventDecodeError", "all_event_models", "decode", "model_for", "register"]

ModelT = TypeVar("ModelT", bound=EventData)

_MODELS: dict[tuple[str, int], type[EventData]] = {}


class EventDecodeError(ValueError):
    """Bytes that are not a valid Threadline event; the message names type and version."""


def register(model: type[ModelT]) -> type[ModelT]:
    """Class decorator: add an event model to the catalogue.

    Raises RuntimeError at import time for a duplicate type+version or a model whose
    ``key_field`` is missing or names no field: both are bugs that would otherwise surface
    only as mis-decoded or mis-partitioned events in production.
    """
    key = (model.event_type, model.schema_version)
    if key in _MODELS:
        raise RuntimeError(f"event {key[0]} v{key[1]} is registered twice")
    if not hasattr(model, "key_field"):
        raise RuntimeError(f"event {key[0]} v{key[1]} declares no key_field")
    if model.key_field is not None and model.key_field not in model.model_fields:
        raise RuntimeError(f"event {key[0]} v{key[1]} key_field {model.key_field!r} is no field")
    _MODELS[key] = model
    return model


def model_for(event_type: str, schema_version: int) -> type[EventData]:
    """The data model of an event type and version; raises EventDecodeError when unknown."""
    try:
        return _MODELS[(event_type, schema_version)]
    except KeyError:
        raise EventDecodeError(
            f"unknown event type {event_type!r} schema version {schema_version}"
        ) from None


def all_event_models() -> list[type[EventData]]:
    """Every registered model, sorted by type then version (stable for generated docs)."""
    return [_MODELS[key] for key in sorted(_MODELS)]


def decode(raw: bytes | str) -> Envelope[Any]:
    """Parse one Kafka message value into an envelope whose ``data`` is the right model.

    Raises EventDecodeError naming the type and version when the bytes are not JSON, the
    envelope is incomplete, the type is unknown, or ``data`` does not match its model.
    """
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventDecodeError(f"event is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise EventDecodeError("event is not a JSON object")
    event_type = document.get("type")
    version = document.get("schema_version")
    if not isinstance(event_type, str) or not isinstance(version, int):
        raise EventDecodeError("event has no string `type` and integer `schema_version`")
    model = model_for(event_type, version)
    try:
        return envelope_of(model).model_validate(document)
    except ValidationError as exc:
        raise EventDecodeError(
            f"event {event_type} v{version} does not match its schema: {exc}"
        ) from exc
