"""Every event survives the wire, and bad bytes fail with a message naming type and version."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from threadline.contracts import EventData, EventDecodeError, decode, new_event
from threadline.contracts.envelope import Envelope
from threadline.contracts.events.messaging import FirmChatSettingsChanged, MessagePosted
from threadline.contracts.examples import example_data, example_event


def test_example_round_trips_through_the_wire(model: type[EventData]) -> None:
    data = example_data(model)
    event = new_event(data, firm="firm_acme", producer="test", correlation_id="req_1")

    decoded = decode(event.to_bytes())

    assert type(decoded.data) is model
    assert decoded == event
    assert decoded.key == data.kafka_key("firm_acme")


def test_example_event_matches_its_model(model: type[EventData]) -> None:
    event = example_event(model)

    assert (event.type, event.schema_version) == (model.event_type, model.schema_version)
    assert decode(event.to_bytes()) == event


def test_decode_accepts_str_and_unknown_fields() -> None:
    document = example_event(MessagePosted).model_dump(mode="json")
    document["data"]["added_in_a_later_release"] = 1
    document["also_new"] = True

    decoded = decode(json.dumps(document))

    assert decoded.data == example_data(MessagePosted)


def test_new_event_key_defaults_to_the_aggregate_and_can_be_overridden() -> None:
    data = example_data(MessagePosted)

    assert new_event(data, firm="f", producer="messaging").key == data.thread_id
    assert new_event(data, firm="f", key="other", producer="messaging").key == "other"


def test_firm_wide_events_are_keyed_by_firm() -> None:
    event = new_event(example_data(FirmChatSettingsChanged), firm="firm_acme", producer="messaging")

    assert event.key == "firm_acme"


def test_envelope_is_frozen() -> None:
    event = example_event(MessagePosted)

    with pytest.raises(ValidationError):
        event.data.seq = 2  # type: ignore[misc]


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_decode_rejects_what_is_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(EventDecodeError, match="JSON"):
        decode(raw)


def test_decode_rejects_a_missing_type_or_version() -> None:
    with pytest.raises(EventDecodeError, match=r"`type`.*`schema_version`"):
        decode(b'{"type": "messaging.message.posted"}')


def test_decode_names_an_unknown_type() -> None:
    document = example_event(MessagePosted).model_dump(mode="json")
    document["type"] = "messaging.message.teleported"

    with pytest.raises(
        EventDecodeError, match=r"'messaging\.message\.teleported' schema version 1"
    ):
        decode(json.dumps(document))


def test_decode_names_an_unknown_version() -> None:
    document = example_event(MessagePosted).model_dump(mode="json")
    document["schema_version"] = 99

    with pytest.raises(EventDecodeError, match=r"'messaging\.message\.posted' schema version 99"):
        decode(json.dumps(document))


def test_decode_names_type_and_version_when_data_is_wrong() -> None:
    document = example_event(MessagePosted).model_dump(mode="json")
    del document["data"]["seq"]

    with pytest.raises(
        EventDecodeError, match=r"messaging\.message\.posted v1 does not match"
    ) as info:
        decode(json.dumps(document))
    assert "seq" in str(info.value)


def test_decode_names_type_and_version_when_the_envelope_is_wrong() -> None:
    document = example_event(MessagePosted).model_dump(mode="json")
    document["firm"] = ""

    with pytest.raises(EventDecodeError, match=r"messaging\.message\.posted v1 does not match"):
        decode(json.dumps(document))


def test_decoded_envelope_type_is_parametrised() -> None:
    decoded = decode(example_event(MessagePosted).to_bytes())

    assert isinstance(decoded, Envelope)
    assert isinstance(decoded.data, MessagePosted)
