"""finish_within and cancel_within bound a wait even when the awaited code swallows its
cancellation."""

import asyncio
import contextlib

import pytest

from threadline.kit.bounded import cancel_within, finish_within


async def _swallows_cancel_then_waits_forever() -> None:
    """What aiokafka's fetcher close can do: absorb the cancel, then wait again."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await asyncio.Event().wait()


async def test_a_step_that_swallows_the_cancel_is_left_behind() -> None:
    async with asyncio.timeout(5):  # asyncio.timeout alone around the step would hang here
        assert not await finish_within(_swallows_cancel_then_waits_forever(), 0.05, name="x")


async def test_a_step_that_finishes_returns_true_and_its_failure_is_raised() -> None:
    assert await finish_within(asyncio.sleep(0), 1.0, name="quick")

    async def fails() -> None:
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError, match="broken"):
        await finish_within(fails(), 1.0, name="fails")


async def test_cancel_within_ends_tasks_and_leaves_one_that_swallows_its_cancel() -> None:
    stuck = asyncio.create_task(_swallows_cancel_then_waits_forever(), name="stuck")
    waiting = asyncio.create_task(asyncio.Event().wait(), name="waiting")
    await asyncio.sleep(0)
    async with asyncio.timeout(5):  # awaiting each cancelled task in turn would hang here
        await cancel_within([stuck, waiting], within=0.05)
    assert waiting.cancelled()
    assert not stuck.done()
    stuck.cancel()
