"""Waits that stay bounded even when the awaited code swallows cancellation.

``asyncio.timeout`` cancels once: code that awaits its own tasks under
``suppress(CancelledError)`` (aiokafka's fetcher does, in its ``stop()``) absorbs that cancel
and can then wait forever. Running the step as its own task and waiting for it with a timeout
bounds the caller however the step behaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

#: Steps still running after their caller gave up (asyncio holds tasks only weakly).
_LEFT_BEHIND: set[asyncio.Task[Any]] = set()


async def finish_within(step: Coroutine[Any, Any, object], seconds: float, *, name: str) -> bool:
    """Run ``step`` for at most ``seconds``; True when it finished (its exception, if any, is
    raised). When it did not, it is cancelled and left to unwind on its own: False."""
    task = asyncio.create_task(step, name=name)
    done, _ = await asyncio.wait({task}, timeout=max(seconds, 0))
    if done:
        task.result()
        return True
    task.cancel()
    _LEFT_BEHIND.add(task)
    task.add_done_callback(_LEFT_BEHIND.discard)
    return False
