"""The registry refuses models that would mis-decode or mis-partition, at import time."""

from __future__ import annotations

import pytest
from pydantic import Field

from threadline.contracts import EventData, all_event_models
from threadline.contracts.registry import register


def test_a_type_and_version_registers_once() -> None:
    before = all_event_models()

    with pytest.raises(RuntimeError, match=r"messaging\.message\.posted v1 is registered twice"):

        @register
        class Duplicate(EventData):
            """Same type and version as an existing model."""

            event_type = "messaging.message.posted"
            key_field = None

    assert all_event_models() == before


def test_a_model_without_key_field_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"test\.thing\.happened v1 declares no key_field"):

        @register
        class NoKey(EventData):
            """Forgot its key."""

            event_type = "test.thing.happened"

            thing_id: str = Field(description="Thing.", examples=["t1"])


def test_a_key_field_that_is_no_field_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"key_field 'thread_id' is no field"):

        @register
        class WrongKey(EventData):
            """Keyed by a field it does not have."""

            event_type = "test.thing.happened"
            key_field = "thread_id"

            thing_id: str = Field(description="Thing.", examples=["t1"])
