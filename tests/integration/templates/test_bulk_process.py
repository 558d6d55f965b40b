"""The bulk worker process (P2) as the messaging app runs it: restarted when it dies,
stopped when the app stops, on the real servers it connects to itself."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from threadline.kit.pacing import InteractiveLoad
from threadline.messaging.bulkprocess import BulkWorkerProcess

from ..conftest import eventually
from .test_bulk import children, running

pytestmark = pytest.mark.integration

COMMAND = "threadline.messaging.bulkprocess"


async def test_p2_the_worker_process_is_restarted_when_it_dies_and_stopped_with_the_app(
    run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESSAGING_MONGODB_DATABASE", f"it_bulk_process_{run_id}")
    supervising = asyncio.create_task(BulkWorkerProcess(asyncio.Event(), InteractiveLoad()).run())
    try:
        [first] = await eventually(
            lambda: asyncio.to_thread(children, os.getpid(), COMMAND), until=lambda found: found
        )
        os.kill(first, signal.SIGKILL)
        [second] = await eventually(
            lambda: asyncio.to_thread(children, os.getpid(), COMMAND),
            until=lambda found: bool(found) and first not in found,
        )
    finally:
        supervising.cancel()
        with pytest.raises(asyncio.CancelledError):
            await supervising
    assert not await asyncio.to_thread(running, second)  # stopped before run() returned
