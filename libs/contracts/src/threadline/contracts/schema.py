"""JSON Schemas of the envelope around each event model.

Pydantic renders ``Envelope[Model]`` with ``type`` and ``schema_version`` as plain string
and integer; here they are pinned to constants so each schema describes exactly one event
and tools can tell events apart from the schema alone.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from threadline.contracts.envelope import EventData, envelope_of
from threadline.contracts.topics import topic_for

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "catalogue_schemas",
    "event_id",
    "event_schema",
    "key_description",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

JsonSchema = dict[str, Any]


def event_id(model: type[EventData]) -> str:
    """``<event_type>.v<N>``: the name of an event version in file names and AsyncAPI ids."""
    return f"{model.event_type}.v{model.schema_version}"


def key_description(model: type[EventData]) -> str:
    """Human description of the Kafka key of ``model``'s events."""
    if model.key_field is None:
        return "firm id (the envelope's `firm`)"
    return f"the value of `data.{model.key_field}`"


def _pin(schema: JsonSchema, model: type[EventData]) -> None:
    properties = schema["properties"]
    properties["type"] = {**properties["type"], "const": model.event_type}
    properties["schema_version"] = {**properties["schema_version"], "const": model.schema_version}
    schema["title"] = f"{model.event_type} v{model.schema_version}"
    schema["description"] = (
        f"Envelope of `{model.event_type}` v{model.schema_version}, published to "
        f"`{topic_for(model.event_type)}` keyed by {key_description(model)}."
    )


def event_schema(model: type[EventData]) -> JsonSchema:
    """A self-contained JSON Schema (2020-12) of the envelope carrying ``model``."""
    schema = envelope_of(model).model_json_schema()
    _pin(schema, model)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def catalogue_schemas(models: list[type[EventData]], ref_prefix: str) -> dict[str, JsonSchema]:
    """Every envelope and nested model as one flat name → schema map, refs under ``ref_prefix``.

    Envelopes are named by ``event_id``; shared models (``Actor`` …) appear once.
    """
    envelopes: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (envelope_of(model), "validation") for model in models
    ]
    refs, top = models_json_schema(envelopes, ref_template=ref_prefix + "{model}")
    definitions: dict[str, JsonSchema] = dict(top.get("$defs", {}))
    for model, envelope in zip(models, envelopes, strict=True):
        pydantic_name = refs[envelope]["$ref"].removeprefix(ref_prefix)
        schema = definitions.pop(pydantic_name)
        _pin(schema, model)
        definitions[event_id(model)] = schema
    return definitions
