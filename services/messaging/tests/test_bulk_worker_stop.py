"""The bulk worker stops when cancelled, whenever the cancel comes (P2: a worker process
must not outlive its app). A fake store: only the loop that waits for jobs is exercised."""

import asyncio
from typing import Any, cast

from threadline.messaging.service.bulk import BulkWorker, WorkerSettings


class NoJobs:
    async def unfinished(self, *, limit: int) -> list[str]:
        return []


def idle_worker(wake: asyncio.Event) -> BulkWorker:
    unused = cast(Any, None)
    return BulkWorker(
        store=cast(Any, NoJobs()),
        threads=unused,
        messages=unused,
        directory=unused,
        publisher=unused,
        leases=unused,
        wake=wake,
        settings=WorkerSettings(poll_seconds=30.0),
    )


async def test_p2_a_cancel_that_comes_as_a_wake_up_ends_the_worker() -> None:
    """Python 3.11's ``wait_for`` swallows a cancel that lands as the awaited wait ends, and
    the worker's loop then ran on: this fails with it."""
    wake = asyncio.Event()
    working = asyncio.create_task(idle_worker(wake).run())
    await asyncio.sleep(0.05)  # waiting for a wake-up
    wake.set()
    await asyncio.sleep(0)  # the wait for the wake-up has ended; the loop has not resumed
    working.cancel()
    done, _ = await asyncio.wait({working}, timeout=5)
    assert working in done and working.cancelled()


async def test_p2_a_cancel_while_waiting_ends_the_worker() -> None:
    working = asyncio.create_task(idle_worker(asyncio.Event()).run())
    await asyncio.sleep(0.05)
    working.cancel()
    done, _ = await asyncio.wait({working}, timeout=5)
    assert working in done and working.cancelled()
