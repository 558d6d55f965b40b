"""The AsyncAPI 3.0 document of the whole event catalogue, built from the models.

Generated rather than hand-written so it cannot disagree with the code: one channel per
topic, one message per event type and version (envelope schema, Kafka key and headers,
an example from the fields' examples), one *send* operation per producer.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from typing import Any

from threadline.contracts.envelope import EventData
from threadline.contracts.examples import example_event
from threadline.contracts.registry import all_event_models
from threadline.contracts.schema import catalogue_schemas, event_id, key_description
from threadline.contracts.topics import KEYED_BY, Topic, topic_for

__all__ = ["build_asyncapi"]

_KAFKA_BINDING_VERSION = "0.5.0"
_SCHEMAS = "#/components/schemas/"
_DESCRIPTION = """\
Every Threadline event travels in one JSON envelope (`id`, `type`, `schema_version`,
`occurred_at`, `firm`, `key`, `producer`, `correlation_id`, `causation_id`, `data`);
`type` + `schema_version` select the schema of `data`. Each producing service publishes to
its own topic, keyed by the aggregate whose order matters. Delivery is at-least-once:
consumers deduplicate on `id`. Within a schema version only optional fields are ever added;
a breaking change is a new version."""

Document = dict[str, Any]


def _headers(model: type[EventData]) -> Document:
    """Schema of the headers written by ``Envelope.kafka_headers``."""

    def text(description: str) -> Document:
        return {"type": "string", "description": description}

    return {
        "type": "object",
        "properties": {
            "event-id": {**text("Envelope `id`."), "format": "uuid"},
            "event-type": {**text("Envelope `type`."), "const": model.event_type},
            "schema-version": {
                **text("Envelope `schema_version`."),
                "const": str(model.schema_version),
            },
            "firm": text("Envelope `firm`."),
            "producer": text("Envelope `producer`."),
            "correlation-id": text("Envelope `correlation_id`, when set."),
            "causation-id": text("Envelope `causation_id`, when set."),
        },
        "required": ["event-id", "event-type", "schema-version", "firm", "producer"],
    }


def _message(model: type[EventData]) -> Document:
    doc = inspect.getdoc(model) or model.event_type
    example = example_event(model)
    return {
        "name": model.event_type,
        "title": f"{model.event_type} v{model.schema_version}",
        "summary": doc.split("\n", 1)[0],
        "description": doc,
        "contentType": "application/json",
        "payload": {"$ref": _SCHEMAS + event_id(model)},
        "headers": _headers(model),
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": key_description(model)},
                "bindingVersion": _KAFKA_BINDING_VERSION,
            }
        },
        "examples": [
            {
                "name": "fromFieldExamples",
                "summary": "Built from the first example of every field.",
                "headers": example.kafka_headers(),
                "payload": example.model_dump(mode="json"),
            }
        ],
    }


def _producer_name(topic: Topic) -> str:
    return (
        "the surrounding platform"
        if topic is Topic.DIRECTORY
        else f"the {topic.name.lower()} service"
    )


def _channels_and_operations(models: list[type[EventData]]) -> tuple[Document, Document]:
    channels: Document = {}
    operations: Document = {}
    for topic in Topic:
        name = topic.name.lower()
        ids = [event_id(model) for model in models if topic_for(model.event_type) is topic]
        channels[name] = {
            "address": topic.value,
            "title": topic.value,
            "description": (
                f"Events published by {_producer_name(topic)}. "
                f"Message key: {KEYED_BY[topic]}, so one key's events stay in order."
            ),
            "messages": {mid: {"$ref": f"#/components/messages/{mid}"} for mid in ids},
            "bindings": {"kafka": {"topic": topic.value, "bindingVersion": _KAFKA_BINDING_VERSION}},
        }
        operations[f"{name}.publish"] = {
            "action": "send",
            "title": f"Publish {name} events",
            "summary": f"{_producer_name(topic).capitalize()} publishes to `{topic.value}`.",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{mid}"} for mid in ids],
        }
    return channels, operations


def build_asyncapi() -> Document:
    """The AsyncAPI 3.0 document of every registered event (import ``events`` first)."""
    models = all_event_models()
    channels, operations = _channels_and_operations(models)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Threadline events",
            "version": metadata.version("threadline-contracts"),
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": {event_id(model): _message(model) for model in models},
            "schemas": catalogue_schemas(models, _SCHEMAS),
        },
    }
