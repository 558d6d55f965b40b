"""Event ids a bulk batch derives: the same on every try, and in the order they were made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threadline.kit.ids import derived_event_id

AT = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


@given(st.lists(st.integers(0, 2**32 - 1), min_size=2, max_size=20, unique=True))
def test_ids_of_one_piece_of_work_sort_by_sequence(sequences: list[int]) -> None:
    ids = {n: derived_event_id(AT, n, NAMESPACE_URL, "job", str(n)) for n in sequences}
    assert sorted(ids, key=lambda n: ids[n]) == sorted(sequences)


def test_the_same_work_derives_the_same_id_and_other_work_another() -> None:
    first = derived_event_id(AT, 7, NAMESPACE_URL, "job", "acc_1", "thread.created")
    assert first == derived_event_id(AT, 7, NAMESPACE_URL, "job", "acc_1", "thread.created")
    assert first != derived_event_id(AT, 7, NAMESPACE_URL, "job2", "acc_1", "thread.created")
    assert first != derived_event_id(AT, 8, NAMESPACE_URL, "job", "acc_1", "thread.created")


def test_a_derived_id_is_a_uuid7_of_its_time() -> None:
    event_id = derived_event_id(AT, 3, NAMESPACE_URL, "job")
    assert event_id.version == 7 and event_id.variant == "specified in RFC 4122"
    assert event_id.int >> 80 == int(AT.timestamp() * 1000)
    later = derived_event_id(AT + timedelta(milliseconds=1), 0, NAMESPACE_URL, "job")
    assert UUID(str(later)) > event_id


def test_a_sequence_beyond_32_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bits"):
        derived_event_id(AT, 2**32, NAMESPACE_URL, "job")
