"""Waits that stay bounded even when the awaited code swallows cancellation.

``asyncio.timeout`` cancels once: code that awaits its own tasks under
``suppress(CancelledError)`` (aiokafka's fetcher does, in its ``stop()``) absorbs that cancel
and can then wait forever. Running the step as its own task and waiting for it with a timeout
bounds the caller however the step behaves. ``cancel_within`` does the same for tasks
already running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any

import structlog

from threadline.kit.diagnostics import await_chain

__all__ = ["cancel_within", "finish_within"]

_log = structlog.get_logger(__name__)

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


async def cancel_within(tasks: Iterable[asyncio.Task[Any]], *, within: float) -> None:
    """Cancel ``tasks`` and wait for them, at most ``within`` seconds: a task whose clean-up
    hangs (a client's ``stop()`` that never returns) or that swallows its cancellation (as
    awaiting it under ``suppress(CancelledError)`` would let it) is left behind and logged
    with where it stands. A failure a task had ended with is logged too."""
    tasks = set(tasks)
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, stuck = await asyncio.wait(tasks, timeout=within)
    for task in done:
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            _log.warning("background job had failed", job=task.get_name(), exc_info=failure)
    for task in stuck:
        _log.warning(
            "background job did not stop in time", job=task.get_name(), awaits=await_chain(task)
        )
