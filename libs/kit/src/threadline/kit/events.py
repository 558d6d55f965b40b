"""``EventFactory``: ``new_event`` bound to the producing service, so call sites name only
what differs (the data, the firm) and no event goes out with a wrong producer."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from uuid import UUID

from threadline.contracts import Envelope, EventData, new_event

__all__ = ["EventFactory"]

DataT = TypeVar("DataT", bound=EventData)


class EventFactory:
    def __init__(self, producer: str) -> None:
        self.producer = producer

    def __call__(
        self,
        data: DataT,
        *,
        firm: str,
        key: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        occurred_at: datetime | None = None,
        event_id: UUID | None = None,
    ) -> Envelope[DataT]:
        return new_event(
            data,
            firm=firm,
            key=key,
            producer=self.producer,
            correlation_id=correlation_id,
            causation_id=causation_id,
            occurred_at=occurred_at,
            event_id=event_id,
        )
