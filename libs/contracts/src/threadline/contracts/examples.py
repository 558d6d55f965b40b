"""Example events built from the models' own field examples.

One source of truth for examples: the ``examples`` every field declares. The AsyncAPI
document shows them, the round-trip tests decode them, and service tests can start from
them instead of hand-writing payloads that drift from the contract.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from threadline.contracts.envelope import Envelope, EventData, envelope_of

__all__ = ["EXAMPLE_FIRM", "example_data", "example_event"]

EXAMPLE_FIRM = "firm_acme"
_EXAMPLE_ID = UUID("0195a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")
_EXAMPLE_OCCURRED_AT = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)

DataT = TypeVar("DataT", bound=EventData)


def example_data(model: type[DataT], **overrides: Any) -> DataT:
    """An instance of ``model`` from the first example of each field, then ``overrides``.

    Fields without examples keep their default. Raises ValueError naming the field when a
    required field has no example, and pydantic's ValidationError when the examples do not
    validate (both are bugs in the contract).
    """
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.examples:
            values[name] = field.examples[0]
        elif field.is_required():
            raise ValueError(f"{model.event_type}: required field {name!r} has no example")
    values.update(overrides)
    return model.model_validate(values)


def example_event(model: type[DataT], **overrides: Any) -> Envelope[DataT]:
    """A deterministic envelope around ``example_data(model, **overrides)``.

    Fixed id and time keep the generated AsyncAPI document stable from run to run.
    """
    data = example_data(model, **overrides)
    return envelope_of(model)(
        id=_EXAMPLE_ID,
        type=model.event_type,
        schema_version=model.schema_version,
        occurred_at=_EXAMPLE_OCCURRED_AT,
        firm=EXAMPLE_FIRM,
        key=data.kafka_key(EXAMPLE_FIRM),
        producer=model.event_type.split(".", 1)[0],
        correlation_id="req_example",
        data=data,
    )
