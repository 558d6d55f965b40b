"""Shutdown is bounded by SHUTDOWN_DEADLINE_SECONDS even when a handler never finishes."""

import asyncio
from types import SimpleNamespace
from typing import Any

from structlog.testing import capture_logs

from threadline.kit.app import BROKER_STOP_MIN_SECONDS, _shut_down

IN_HAND = "threadline.messaging.v1/3/41"


class _HangingEvents:
    """A consumer whose record in hand never finishes: stopping it waits forever."""

    def __init__(self) -> None:
        self.in_hand = [IN_HAND]

    async def stop(self) -> None:
        await asyncio.Event().wait()


class _HangingBroker:
    def __init__(self) -> None:
        self.stop_called = False

    async def stop(self) -> None:
        self.stop_called = True
        await asyncio.Event().wait()


class _Outbox:
    async def drain(self) -> None:
        return None

    async def relay_once(self, *, grace_seconds: float) -> int:
        return 0


class _Mongo:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_shutdown_abandons_a_hanging_handler_and_broker_stop_at_the_deadline() -> None:
    broker, mongo = _HangingBroker(), _Mongo()
    runtime: Any = SimpleNamespace(
        settings=SimpleNamespace(shutdown_deadline_seconds=0.2),
        events=_HangingEvents(),
        outbox=_Outbox(),
        broker=broker,
        mongo=mongo,
    )
    background = asyncio.create_task(asyncio.Event().wait())
    bound = 0.2 + BROKER_STOP_MIN_SECONDS + 20  # generous: only "finishes at all" matters
    with capture_logs() as logs:
        await asyncio.wait_for(_shut_down(runtime, [background]), timeout=bound)
    assert broker.stop_called and mongo.closed and background.cancelled()
    abandoned = [entry for entry in logs if entry.get("abandoned_records") == [IN_HAND]]
    assert [entry["event"] for entry in abandoned] == [
        "shutdown deadline reached; pending events stay for the relay",
        "broker stop abandoned at the shutdown deadline; the records in hand are not "
        "committed and will be redelivered after the restart",
    ]
