"""Only a thread id that can be new waits for the projection (a made-up id answers at once)."""

from __future__ import annotations

import uuid
from typing import Any

from threadline.kit.ids import new_id
from threadline.tasks.store import FreshThreadFacts


def test_t7_only_a_just_created_uuid7_may_be_a_thread_not_yet_projected() -> None:
    fresh = FreshThreadFacts(Any, Any, window=5.0)  # type: ignore[arg-type]
    old_uuid7 = uuid.UUID(int=(1_600_000_000_000 << 80) | (0x7 << 76) | (0b10 << 62))
    assert fresh._may_be_new(new_id())
    assert not fresh._may_be_new(str(old_uuid7))
    assert not fresh._may_be_new(str(uuid.uuid4()))
    assert not fresh._may_be_new("x")
    assert not fresh._may_be_new("9" * 40)
