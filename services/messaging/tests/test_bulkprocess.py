"""The bulk worker process (P2): it writes through the batch MongoDB URL when one is set,
and paces by the app's requests, which the app forwards down its pipe."""

import asyncio
import os

from threadline.kit.pacing import InteractiveLoad
from threadline.messaging.bulkprocess import WAKE, forward_requests, take_line, worker_settings
from threadline.messaging.settings import Settings

REQUESTS = "mongodb://db.example:27017"
BATCH = "mongodb://batch:secret@db.example:27017/?authMechanism=PLAIN"


def settings(batch_url: str | None) -> Settings:
    return Settings(
        env="test", jwt_secret="unit-test-secret", mongodb_url=REQUESTS, mongodb_batch_url=batch_url
    )


def test_the_worker_writes_through_the_batch_url() -> None:
    assert worker_settings(settings(BATCH)).mongodb_url == BATCH


def test_without_a_batch_url_the_worker_writes_where_the_requests_do() -> None:
    assert worker_settings(settings(None)).mongodb_url == REQUESTS


async def test_p2_the_worker_process_paces_by_the_apps_requests_through_its_pipe() -> None:
    """What the app forwards down the pipe reaches the child's load as its own requests."""
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(write_end, "wb")
    )
    pipe = asyncio.StreamWriter(transport, protocol, None, loop)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_end, "rb")
    )
    app_load, child_load, wake = InteractiveLoad(), InteractiveLoad(), asyncio.Event()
    stop = app_load.forward_to(forward_requests(pipe))

    async def take_next_line() -> None:
        take_line(await asyncio.wait_for(reader.readline(), 5), wake=wake, load=child_load)

    try:
        with app_load.request():
            await take_next_line()
            assert child_load.in_flight == 1
        await take_next_line()
        assert child_load.in_flight == 0
        assert child_load.idle_latency is not None
        assert child_load.recent_latency == child_load.idle_latency
        pipe.write(WAKE)
        await take_next_line()
        assert wake.is_set()
    finally:
        stop()
        pipe.close()
