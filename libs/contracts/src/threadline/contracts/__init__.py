"""Threadline's event contracts: envelope, event models, topics and the decoder."""

from threadline.contracts import events
from threadline.contracts.envelope import Envelope, EventData, new_event, utc_now
from threadline.contracts.registry import (
    EventDecodeError,
    all_event_models,
    decode,
    decode_wanted,
    model_for,
)
from threadline.contracts.topics import Topic, topic_for

__all__ = [
    "Envelope",
    "EventData",
    "EventDecodeError",
    "Topic",
    "all_event_models",
    "decode",
    "decode_wanted",
    "events",
    "model_for",
    "new_event",
    "topic_for",
    "utc_now",
]
