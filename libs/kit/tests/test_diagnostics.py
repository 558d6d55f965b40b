"""The asyncio task dump an operator asks for with SIGUSR1 (for a service that looks stuck)."""

from __future__ import annotations

import asyncio
import os
import signal

from structlog.testing import capture_logs

from threadline.kit.diagnostics import await_chain, install_task_dump


async def _innermost(gate: asyncio.Event) -> None:
    await gate.wait()


async def _middle(gate: asyncio.Event) -> None:
    await _innermost(gate)


async def test_await_chain_follows_the_awaits_down_to_the_future() -> None:
    """Task.get_stack gives only the outer frame; the chain names every await down."""
    gate = asyncio.Event()
    task = asyncio.create_task(_middle(gate), name="waiter")
    await asyncio.sleep(0)
    chain = await_chain(task)
    names = [link.rsplit(" in ", 1)[-1] for link in chain[:-1]]
    assert names[:2] == ["_middle", "_innermost"]
    assert "wait" in names
    assert chain[-1].startswith("awaiting ")
    gate.set()
    await task
    assert await_chain(task) == []


async def test_sigusr1_logs_every_task_with_its_chain() -> None:
    gate = asyncio.Event()
    task = asyncio.create_task(_middle(gate), name="stalled-publisher")
    remove = install_task_dump()
    try:
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(50):
                await asyncio.sleep(0.01)
                if any(entry["event"] == "asyncio task" for entry in logs):
                    break
    finally:
        remove()
        gate.set()
        await task
    [stalled] = [entry for entry in logs if entry.get("task") == "stalled-publisher"]
    assert any("in _innermost" in link for link in stalled["awaits"])
    assert any(entry["event"] == "asyncio task dump" for entry in logs)
