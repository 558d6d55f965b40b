"""Background jobs keep running through failures."""

import asyncio

from threadline.kit.app import periodic


async def test_a_failing_run_is_retried_at_the_next_interval() -> None:
    runs: list[int] = []
    third_run = asyncio.Event()

    async def job() -> int:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("storage hiccup")
        if len(runs) == 3:
            third_run.set()
        return 2

    task = asyncio.create_task(periodic(job, every_seconds=0.01, what="tested")())
    await asyncio.wait_for(third_run.wait(), timeout=5)
    task.cancel()
    assert runs[:3] == [0, 1, 2], "the job ran again after its first run failed"
