"""The event envelope every Threadline event travels in.

The envelope carries routing and tracing metadata; ``data`` is one of the event models in
``threadline.contracts.events``. Envelopes are frozen: an event is a fact, never edited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar, cast
from uuid import UUID

import uuid_utils
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Envelope", "EventData", "envelope_of", "new_event", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _uuid7() -> UUID:
    """A time-ordered UUIDv7, so event ids sort by creation time."""
    return UUID(bytes=uuid_utils.uuid7().bytes)


class EventData(BaseModel):
    """Base of every event payload.

    Subclasses set ``event_type`` (past tense, ``<producer>.<aggregate>.<verb>``),
    ``schema_version`` and ``key_field``. Within a version only optional fields may be added.

    ``key_field`` names the ``data`` field holding the Kafka key (the aggregate whose order
    matters), or is ``None`` for firm-wide events keyed by the firm id. Declaring it on the
    model keeps producers from guessing the key and lets the AsyncAPI document state it per
    message. Unknown fields are ignored so a consumer on an older model still reads events
    that gained optional fields.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    key_field: ClassVar[str | None]

    def kafka_key(self, firm: str) -> str:
        """The message key this event must be published with (see ``key_field``)."""
        if self.key_field is None:
            return firm
        return str(getattr(self, self.key_field))


DataT = TypeVar("DataT", bound=EventData)


class Envelope(BaseModel, Generic[DataT]):
    """Metadata around one event; ``type`` + ``schema_version`` select the ``data`` model."""

    model_config = ConfigDict(frozen=True)

    id: UUID = Field(description="UUIDv7 of this event; consumers deduplicate on it.")
    type: str = Field(description="Event type, e.g. `messaging.message.posted`.")
    schema_version: int = Field(ge=1, description="Version of the `data` schema for `type`.")
    occurred_at: datetime = Field(description="When the fact happened (UTC).")
    firm: str = Field(min_length=1, description="Tenant (firm) id; every event is firm-scoped.")
    key: str = Field(min_length=1, description="Kafka message key: the ordering aggregate id.")
    producer: str = Field(min_length=1, description="Service that produced the event.")
    correlation_id: str | None = Field(
        default=None, description="Id of the request or flow that caused this chain of events."
    )
    causation_id: str | None = Field(
        default=None, description="Id of the event that directly caused this one, if any."
    )
    data: DataT

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def kafka_headers(self) -> dict[str, str]:
        """Envelope metadata copied into Kafka headers, for routing without decoding."""
        headers = {
            "event-id": str(self.id),
            "event-type": self.type,
            "schema-version": str(self.schema_version),
            "firm": self.firm,
            "producer": self.producer,
        }
        if self.correlation_id:
            headers["correlation-id"] = self.correlation_id
        if self.causation_id:
            headers["causation-id"] = self.causation_id
        return headers


def envelope_of(model: type[DataT]) -> type[Envelope[DataT]]:
    """``Envelope[model]`` for a model known only at run time.

    Parametrised with the concrete class, the envelope validates and serialises every field
    of ``data`` (a bare ``Envelope`` would see only ``EventData``'s).
    """
    return cast("type[Envelope[DataT]]", Envelope.__class_getitem__(model))


def new_event(
    data: DataT,
    *,
    firm: str,
    key: str | None = None,
    producer: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    occurred_at: datetime | None = None,
    event_id: UUID | None = None,
) -> Envelope[DataT]:
    """Wrap ``data`` in a fresh envelope with a new UUIDv7 id (or ``event_id``: an id the
    producer derived, so that doing the same thing again makes the same event).

    ``key`` defaults to ``data.kafka_key(firm)``; pass it only to override that.
    """
    return envelope_of(type(data))(
        id=event_id or _uuid7(),
        type=data.event_type,
        schema_version=data.schema_version,
        occurred_at=occurred_at or utc_now(),
        firm=firm,
        key=key if key is not None else data.kafka_key(firm),
        producer=producer,
        correlation_id=correlation_id,
        causation_id=causation_id,
        data=data,
    )
