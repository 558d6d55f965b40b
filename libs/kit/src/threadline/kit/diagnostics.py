"""Where a running service's asyncio tasks wait: for a process that looks stuck.

``Task.get_stack`` shows only the outermost frame of a suspended task, which says nothing
about what it awaits. ``await_chain`` follows the awaits down to the innermost frame and the
future at the bottom. ``kill -USR1 <pid>`` makes a service log every task's chain
(``install_task_dump``), without stopping it.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import CoroutineType, FrameType, GeneratorType
from typing import Any

import structlog

__all__ = ["await_chain", "install_task_dump"]

_log = structlog.get_logger(__name__)

MAX_CHAIN = 64
"""Links followed at most (a chain never nests deeper in practice; this bounds a cycle)."""


def _frame_line(frame: FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """The task's awaits, outermost first: one ``file:line in function`` per coroutine or
    generator frame, then what the innermost one waits for (a future's repr)."""
    links: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(links) < MAX_CHAIN:
        if isinstance(awaited, CoroutineType):
            frame, awaited = awaited.cr_frame, awaited.cr_await
        elif isinstance(awaited, GeneratorType):
            frame, awaited = awaited.gi_frame, awaited.gi_yieldfrom
        else:  # a future, or an awaitable written in C: nothing deeper to follow
            links.append(f"awaiting {awaited!r}"[:300])
            break
        if frame is None:  # finished, or not started yet
            break
        links.append(_frame_line(frame))
    return links


def _dump_tasks() -> None:
    tasks = asyncio.all_tasks()
    _log.warning("asyncio task dump", tasks=len(tasks))
    for task in sorted(tasks, key=lambda task: task.get_name()):
        _log.warning("asyncio task", task=task.get_name(), awaits=await_chain(task))


def install_task_dump() -> Callable[[], None]:
    """Log every task's ``await_chain`` when SIGUSR1 arrives; returns the undo. Only from
    the main thread's running loop (signals reach no other)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGUSR1)

    return remove
